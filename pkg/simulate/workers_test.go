package simulate

import (
	"sync/atomic"
	"testing"
)

// do never blocks: with every worker busy and the queue full, a job
// runs on a goroutine of its own; close runs every job given before
// it, and after close do runs a job on the caller's goroutine.
func TestWorkersNeverBlockAndCloseRunsEverything(t *testing.T) {
	t.Parallel()
	w := newWorkers(1)
	release := make(chan struct{})
	var ran atomic.Int64
	blocked := func() { <-release; ran.Add(1) }
	// Far more blocking jobs than workers and queue: if do waited for
	// room, this loop would never end.
	const n = 100
	for range n {
		w.do(blocked)
	}
	spilled := make(chan struct{})
	w.do(func() { close(spilled) })
	recv(t, spilled, "a job given to do while every worker is busy")
	close(release)
	w.close()
	if got := ran.Load(); got != n {
		t.Fatalf("close returned after %d of %d jobs", got, n)
	}
	inline := false
	w.do(func() { inline = true })
	if !inline {
		t.Fatal("do after close did not run the job before returning")
	}
}
