package simulate

import "sync"

// deviceSet is a fleet's started devices, which the end of its run
// stops: one callback on the run's context for the whole fleet, where a
// context.AfterFunc for each device cost it about 150 bytes for the
// whole run (the callback's context and its place among the run
// context's children). The devices are an intrusive list, two
// pointers in each.
type deviceSet struct {
	mu    sync.Mutex
	head  *simDevice
	ended bool // stopAll ran: no device is added any more
}

// add lists d, unless stopAll has run: then it reports false and the
// caller stops d itself.
func (s *deviceSet) add(d *simDevice) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	d.prev, d.next, d.listed = nil, s.head, true
	if s.head != nil {
		s.head.prev = d
	}
	s.head = d
	return true
}

// remove takes d off the list, if it is on it.
func (s *deviceSet) remove(d *simDevice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !d.listed {
		return
	}
	if d.prev != nil {
		d.prev.next = d.next
	} else {
		s.head = d.next
	}
	if d.next != nil {
		d.next.prev = d.prev
	}
	d.prev, d.next, d.listed = nil, nil, false
}

// stopAll stops every listed device, each on a goroutine of its own
// (as a context.AfterFunc each did: a device's stop may close its
// connection, which waits for the hub), and lists none after.
func (s *deviceSet) stopAll() {
	s.mu.Lock()
	s.ended = true
	var ds []*simDevice
	for d := s.head; d != nil; {
		next := d.next
		d.prev, d.next, d.listed = nil, nil, false
		ds = append(ds, d)
		d = next
	}
	s.head = nil
	s.mu.Unlock()
	for _, d := range ds {
		go d.stop()
	}
}
