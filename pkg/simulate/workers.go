package simulate

import (
	"runtime"
	"sync"
)

// workers run a fleet's short jobs, the sends of its MQTT devices and
// the events their connections' readers report, on a few goroutines
// instead of one each. A device's timer, when it fires, only queues
// its send, and a reader only queues its event: on a busy machine,
// where thousands of timers fire while the fleet waits for the CPU,
// the backlog is a queue of jobs (a word each), not thousands of
// goroutines with their stacks. A job must not block for long: a
// device's send only writes (its acknowledgement comes to the
// reader), and a Sink must be quick.
type workers struct {
	jobs  chan func()
	mu    sync.RWMutex
	done  bool           // close was called: do runs jobs itself
	run   sync.WaitGroup // the workers
	spill sync.WaitGroup // jobs on goroutines of their own, the queue being full
}

// newWorkers starts the workers (two per processor, at least two) with
// room in their queue for queue jobs.
func newWorkers(queue int) *workers {
	w := &workers{jobs: make(chan func(), queue)}
	for range max(2, 2*runtime.GOMAXPROCS(0)) {
		w.run.Go(func() {
			for job := range w.jobs {
				job()
			}
		})
	}
	return w
}

// do runs job on a worker, or on a goroutine of its own when the queue
// is full; it never blocks. After close it runs job on the caller's
// goroutine (a device's timer that fired as the fleet stopped).
func (w *workers) do(job func()) {
	w.mu.RLock()
	if w.done {
		w.mu.RUnlock()
		job()
		return
	}
	select {
	case w.jobs <- job:
	default:
		w.spill.Go(job)
	}
	w.mu.RUnlock()
}

// close runs the jobs queued and returns when every job given to do
// before it has ended.
func (w *workers) close() {
	w.mu.Lock()
	w.done = true
	close(w.jobs)
	w.mu.Unlock()
	w.run.Wait()
	w.spill.Wait()
}
