package device

import (
	"context"
	"slices"
	"sync"
	"time"
)

// lifetime is a client's life as a context: cancel (its Close) ends
// it. It is what context.WithCancel(context.Background()) is, with one
// difference that matters in a fleet: it implements AfterFunc, which
// context.propagateCancel uses for the contexts derived from it (a
// connect attempt's, a token renewal's), so none of them stays behind
// once done. A *context.cancelCtx keeps its children in a map that
// never shrinks: a few hundred bytes for every device whose context
// ever had a child, about a tenth of what a telemetry-only AMQP device
// costs on the lean engine.
type lifetime struct {
	mu    sync.Mutex
	done  chan struct{}
	err   error
	after []*func() // functions to call when it ends; nil when none
}

func newLifetime() *lifetime { return &lifetime{done: make(chan struct{})} }

func (l *lifetime) Deadline() (time.Time, bool) { return time.Time{}, false }
func (l *lifetime) Done() <-chan struct{}       { return l.done }
func (l *lifetime) Value(any) any               { return nil }

func (l *lifetime) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// AfterFunc arranges for f to run on its own goroutine once l ends (at
// once if it has); stop cancels that, reporting whether it did.
func (l *lifetime) AfterFunc(f func()) (stop func() bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		go f()
		return func() bool { return false }
	}
	p := &f
	l.after = append(l.after, p)
	return func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		i := slices.Index(l.after, p)
		if i < 0 {
			return false
		}
		l.after = slices.Delete(l.after, i, i+1)
		if len(l.after) == 0 {
			l.after = nil
		}
		return true
	}
}

// cancel ends l with context.Canceled, once.
func (l *lifetime) cancel() {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = context.Canceled
	fns := l.after
	l.after = nil
	close(l.done)
	l.mu.Unlock()
	for _, f := range fns {
		go (*f)()
	}
}

var _ context.Context = (*lifetime)(nil)
