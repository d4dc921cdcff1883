package device

import (
	"context"
	"errors"
	"testing"
)

// Contexts derived from a lifetime end with it, and a derived context
// that ended first leaves nothing registered.
func TestLifetimeEndsDerivedContexts(t *testing.T) {
	t.Parallel()
	l := newLifetime()
	_, cancelDone := context.WithCancel(l)
	cancelDone()
	l.mu.Lock()
	left := len(l.after)
	l.mu.Unlock()
	if left != 0 {
		t.Errorf("%d functions registered after the derived context ended; want none", left)
	}
	live, cancelLive := context.WithCancel(l)
	defer cancelLive()
	called := make(chan struct{})
	context.AfterFunc(l, func() { close(called) })
	if l.Err() != nil || live.Err() != nil {
		t.Fatal("the lifetime or its child ended before cancel")
	}
	l.cancel()
	l.cancel() // idempotent
	<-live.Done()
	<-called
	if !errors.Is(l.Err(), context.Canceled) || !errors.Is(live.Err(), context.Canceled) {
		t.Errorf("Err() = %v, child %v; want context.Canceled", l.Err(), live.Err())
	}
	late, cancelLate := context.WithCancel(l)
	defer cancelLate()
	if !errors.Is(late.Err(), context.Canceled) {
		t.Errorf("a context derived after the end: Err() = %v; want context.Canceled", late.Err())
	}
}
