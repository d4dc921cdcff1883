package hub

import (
	"net"
	"sync"
)

// workers are the goroutines the hub starts (connections, HTTP
// handlers, C2D deliveries, token expiries, sweeps), so that Close can
// wait for every one of them before it closes the registry. Once
// closed it starts no more.
type workers struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// add counts one more running worker, or reports false once the hub is
// closing; every add that returns true is matched by a done.
func (w *workers) add() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.wg.Add(1)
	return true
}

func (w *workers) done() { w.wg.Done() }

// goFunc runs f on a new goroutine, or reports false (and does not run
// it) once the hub is closing.
func (w *workers) goFunc(f func()) bool {
	if !w.add() {
		return false
	}
	go func() {
		defer w.wg.Done()
		f()
	}()
	return true
}

// closeAndWait refuses new workers and waits for the running ones.
func (w *workers) closeAndWait() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
}

// connSet holds the connections handed to a protocol, so that Close
// can end those that no protocol shutdown reaches (an MQTT client that
// stalls before its CONNECT is complete is in no session yet).
type connSet struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (s *connSet) add(c net.Conn) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[net.Conn]struct{}{}
	}
	s.m[c] = struct{}{}
	s.mu.Unlock()
}

func (s *connSet) remove(c net.Conn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

// closeAll closes every connection still held.
func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.m {
		_ = c.Close()
	}
}
