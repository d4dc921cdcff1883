package client

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// Session is an AMQP session of a Conn: the links of the devices that
// share it. It holds no goroutine and no queue; its state is under the
// connection's lock.
type Session struct {
	c      *Conn
	ch     uint16 // ours
	begun  chan struct{}
	remote bool  // the peer's begin came
	err    error // why it ended

	// under c.mu
	remoteCh             uint16
	handleMax            uint32 // the peer's
	nextOutgoingID       uint32 // our next transfer-id
	remoteIncomingWindow uint32
	nextIncomingID       uint32 // the peer's next transfer-id
	incomingWindow       uint32
	nextDeliveryID       uint32
	links                []*link // by our handle
	byRemote             remoteLinks
	attaching            map[string]*link // by name, until the peer's attach
	unsettled            map[uint32]*delivery
	names                uint64
}

// NewSession begins a session and waits for the peer's begin, within
// ctx. Errors: ctx's, or the connection's end.
func (c *Conn) NewSession(ctx context.Context) (*Session, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	ch := len(c.sessions)
	for i, s := range c.sessions {
		if s == nil {
			ch = i
			break
		}
	}
	if ch > math.MaxUint16 {
		c.mu.Unlock()
		return nil, errors.New("amqp client: no channel left")
	}
	s := &Session{c: c, ch: uint16(ch), begun: make(chan struct{}), incomingWindow: sessionWindow,
		attaching: map[string]*link{}, unsettled: map[uint32]*delivery{}}
	if ch == len(c.sessions) {
		c.sessions = append(c.sessions, s)
	} else {
		c.sessions[ch] = s
	}
	c.mu.Unlock()
	if err := c.write(frames.TypeAMQP, s.ch, &frames.Begin{IncomingWindow: sessionWindow,
		OutgoingWindow: math.MaxUint32, HandleMax: math.MaxUint32}, nil); err != nil {
		return nil, err
	}
	select {
	case <-s.begun:
		c.mu.Lock()
		err := s.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return s, nil
	case <-c.done:
		return nil, c.Err()
	case <-ctx.Done():
		// The begin may still come: the session stays, unused.
		return nil, ctx.Err()
	}
}

// Err returns why the session ended (the peer's end, as a *LinkError,
// or the connection's end), nil while it is open.
func (s *Session) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.err
}

// failLocked ends s and its links with err (c.mu held).
func (s *Session) failLocked(err error) {
	if s.err != nil {
		return
	}
	s.err = err
	if !s.remote {
		s.remote = true
		close(s.begun)
	}
	for _, l := range s.links {
		if l != nil {
			l.failLocked(err)
		}
	}
	for _, l := range s.attaching {
		l.failLocked(err)
	}
}

// flowLocked is a flow frame with s's session state, for link l (nil:
// the session only).
func (s *Session) flowLocked(l *link) *frames.Flow {
	next := s.nextIncomingID
	f := &frames.Flow{NextIncomingID: &next, IncomingWindow: s.incomingWindow,
		NextOutgoingID: s.nextOutgoingID, OutgoingWindow: math.MaxUint32}
	if l != nil {
		h, dc, cr := l.handle, l.deliveryCount, l.credit
		f.Handle, f.DeliveryCount, f.LinkCredit = &h, &dc, &cr
	}
	return f
}

// dispatch handles a frame of the peer on s's channel (on the reader).
func (s *Session) dispatch(b frames.Body) error {
	c := s.c
	switch f := b.(type) {
	case *frames.End:
		err := &LinkError{Remote: remoteErr(f.Error)}
		c.mu.Lock()
		delete(c.byRemote, s.remoteCh)
		var fns []func(error)
		for _, l := range s.links {
			if l != nil && l.onDetach != nil && l.err == nil && !l.closing {
				fns = append(fns, l.onDetach)
			}
		}
		s.failLocked(err)
		c.cond.Broadcast()
		c.mu.Unlock()
		werr := c.write(frames.TypeAMQP, s.ch, &frames.End{}, nil)
		c.mu.Lock()
		c.sessions[s.ch] = nil
		c.mu.Unlock()
		for _, fn := range fns {
			fn(err)
		}
		return werr
	case *frames.Attach:
		return s.attached(f)
	case *frames.Detach:
		return s.detached(f)
	case *frames.Flow:
		c.mu.Lock()
		next := uint32(0)
		if f.NextIncomingID != nil {
			next = *f.NextIncomingID
		}
		w := int64(next) + int64(f.IncomingWindow) - int64(s.nextOutgoingID)
		s.remoteIncomingWindow = uint32(max(0, min(w, math.MaxUint32)))
		var reply *frames.Flow
		if f.Handle != nil {
			if l := s.byRemote.get(*f.Handle); l != nil && !l.receiver {
				dc := uint32(0)
				if f.DeliveryCount != nil {
					dc = *f.DeliveryCount
				}
				if f.LinkCredit != nil {
					l.credit = dc + *f.LinkCredit - l.deliveryCount
				}
				if f.Echo {
					reply = s.flowLocked(l)
				}
			}
		} else if f.Echo {
			reply = s.flowLocked(nil)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if reply != nil {
			return c.write(frames.TypeAMQP, s.ch, reply, nil)
		}
		return nil
	case *frames.Transfer:
		return s.transfer(f)
	case *frames.Disposition:
		s.disposition(f)
		return nil
	}
	return &ConnError{Err: errors.New("unexpected " + typeName(b) + " on a session")}
}

func typeName(b frames.Body) string { return fmt.Sprintf("%T", b) }

// disposition settles our deliveries the peer settled.
func (s *Session) disposition(f *frames.Disposition) {
	if f.Role != frames.RoleReceiver {
		return // settlements of the peer's deliveries: we settle first
	}
	last := f.First
	if f.Last != nil {
		last = *f.Last
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if last-f.First < uint32(len(s.unsettled)) {
		for id := f.First; ; id++ {
			if d := s.unsettled[id]; d != nil {
				delete(s.unsettled, id)
				d.done <- result{state: f.State}
			}
			if id == last {
				break
			}
		}
		return
	}
	for id, d := range s.unsettled {
		if id-f.First <= last-f.First {
			delete(s.unsettled, id)
			d.done <- result{state: f.State}
		}
	}
}

// denseHandles bounds the peer's handles kept in remoteLinks' slice
// (32 KB of it at most): the local hub gives the lowest free handle
// (pkg/amqp1 finishAttach), so a session's handles stay below its
// links' count, about 600 with pkg/device's 100 devices a session.
const denseHandles = 4096

// remoteLinks are a session's links by the peer's handle: in a slice
// indexed by handle (a pointer a link, where a map costs about four
// times that), and in a map for a handle past denseHandles, which a
// peer may give (our begin's handle-max is the largest) but none does.
// The zero value is ready; it is under the connection's lock.
type remoteLinks struct {
	dense  []*link
	sparse map[uint32]*link
}

func (r *remoteLinks) get(h uint32) *link {
	if h < denseHandles {
		if int(h) < len(r.dense) {
			return r.dense[h]
		}
		return nil
	}
	return r.sparse[h]
}

func (r *remoteLinks) set(h uint32, l *link) {
	if h >= denseHandles {
		if r.sparse == nil {
			r.sparse = map[uint32]*link{}
		}
		r.sparse[h] = l
		return
	}
	if int(h) >= len(r.dense) {
		r.dense = append(r.dense, make([]*link, int(h)+1-len(r.dense))...)
	}
	r.dense[h] = l
}

func (r *remoteLinks) delete(h uint32) {
	if h >= denseHandles {
		delete(r.sparse, h)
		return
	}
	if int(h) < len(r.dense) {
		r.dense[h] = nil
	}
}
