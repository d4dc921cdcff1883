package stacks

import "testing"

func parkHere(ready chan<- struct{}, release <-chan struct{}) {
	ready <- struct{}{}
	<-release
}

func TestCountFindsParkedGoroutines(t *testing.T) {
	const n = 3
	ready, release := make(chan struct{}), make(chan struct{})
	for range n {
		go parkHere(ready, release)
		<-ready
	}
	if got := Count("stacks.parkHere"); got != n {
		t.Errorf("Count(parkHere) with %d parked = %d", n, got)
	}
	if got := Count("stacks.noSuchFunction", "stacks.parkHere"); got != n {
		t.Errorf("Count(two names) = %d; want %d, each goroutine once", got, n)
	}
	close(release)
}
