package registry

import "sync"

// signal wakes every goroutine waiting on the channel it handed out.
// The zero value is ready to use.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel that is closed at the next notify.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// notify closes the channel handed out by wait, if any.
func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// FeedbackAdded returns a channel that is closed the next time feedback
// records become available: new records are committed, or a batch is
// given back with AbandonFeedback. A waiter takes the channel before
// calling TakeFeedback, so that nothing committed in between is missed,
// and takes a new one after each wake-up. Records whose lock merely
// expires do not close it. Safe for concurrent use.
func (s *Store) FeedbackAdded() <-chan struct{} { return s.feedbackSignal.wait() }
