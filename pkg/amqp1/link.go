package amqp1

import (
	"context"
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

type linkState uint8

const (
	linkAttaching linkState = iota // waiting for Handler.Attach
	linkAttached
	linkDetached
)

// Link is one link the peer attached. Its methods are safe for concurrent
// use. Which of Receive and Send applies depends on Role.
type Link struct {
	s *session

	name       string
	inHandle   uint32 // the peer's handle
	outHandle  uint32 // ours
	role       Role   // ours
	source     *Source
	target     *Target
	properties map[string]any
	desired    []string
	offered    []string
	sndMode    uint8
	rcvMode    uint8
	peerMaxMsg uint64

	// Guarded by s.mu.
	state          linkState
	detachSent     bool
	detachReceived bool
	peerDetachErr  *Error
	closeOnAttach  bool
	closeErr       *Error
	err            error
	done           chan struct{}
	detachAck      chan struct{} // closed when the peer answered our detach

	// Receiving side (we are the receiver). Guarded by s.mu.
	deliveryCount uint32
	credit        uint32
	window        uint32
	maxMessage    uint64
	queue         []*Delivery
	partial       *Delivery
	// With HandleDeliveries: the handler, and whether a goroutine is
	// running it over the queue.
	onDelivery func(*Delivery)
	draining   bool
	// afterDone are the functions AfterDone registered.
	afterDone []func()

	// Sending side (we are the sender). Guarded by s.mu except sendSem,
	// which only a sending link has.
	sendCredit        uint32
	sendDeliveryCount uint32
	drain             bool
	sendWaiters       int
	tagCounter        uint64
	sendSem           chan struct{}
}

// Name returns the link name the peer chose.
func (l *Link) Name() string { return l.name }

// Handle returns the peer's handle for the link.
func (l *Link) Handle() uint32 { return l.inHandle }

// Role returns this side's role: RoleReceiver when the peer is sending
// (use Receive), RoleSender when the peer is receiving (use Send).
func (l *Link) Role() Role { return l.role }

// Source returns the source terminus from the peer's attach, or nil.
// During Handler.Attach the handler may set Address of a dynamic source;
// the attach answer echoes this value.
func (l *Link) Source() *Source { return l.source }

// Target returns the target terminus from the peer's attach, or nil.
// During Handler.Attach the handler may set Address of a dynamic target.
func (l *Link) Target() *Target { return l.target }

// Address returns the address of the node the link refers to on this
// server: the target's address when the peer sends, the source's when it
// receives.
func (l *Link) Address() string {
	if l.role == RoleReceiver {
		if l.target != nil {
			return l.target.Address
		}
		return ""
	}
	if l.source != nil {
		return l.source.Address
	}
	return ""
}

// Properties returns the link properties from the peer's attach (for
// example "com.microsoft:epoch"), or nil. Callers must not modify it.
func (l *Link) Properties() map[string]any { return l.properties }

// DesiredCapabilities returns the capabilities the peer desires.
func (l *Link) DesiredCapabilities() []string { return l.desired }

// OfferedCapabilities returns the capabilities the peer offers.
func (l *Link) OfferedCapabilities() []string { return l.offered }

// SenderSettleMode returns the link's sender settle mode.
func (l *Link) SenderSettleMode() SenderSettleMode { return SenderSettleMode(l.sndMode) }

// ReceiverSettleMode returns the link's receiver settle mode.
func (l *Link) ReceiverSettleMode() ReceiverSettleMode { return ReceiverSettleMode(l.rcvMode) }

// PeerMaxMessageSize returns the max-message-size from the peer's
// attach; 0 means no limit.
func (l *Link) PeerMaxMessageSize() uint64 { return l.peerMaxMsg }

// Conn returns the link's connection.
func (l *Link) Conn() *Conn { return l.s.c }

// Done returns a channel closed when the link is detached or its session
// or connection ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err returns nil while the link is usable and afterwards why it is not:
// a *LinkError, *SessionError or *ConnError.
func (l *Link) Err() error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.err
}

// Close detaches the link with closed=true and e (nil for no error) and
// waits for the peer's detach until ctx is done. Called during
// Handler.Attach it makes the link detach right after its attach is
// answered, without waiting. Closing a link that already ended returns
// nil. A cancelled ctx returns ctx.Err(); the link is closed anyway.
func (l *Link) Close(ctx context.Context, e *Error) error {
	s := l.s
	s.mu.Lock()
	if l.state == linkAttaching {
		l.closeOnAttach, l.closeErr = true, e
		s.mu.Unlock()
		return nil
	}
	if l.detachSent || l.err != nil {
		ack := l.detachAck
		s.mu.Unlock()
		if ack == nil {
			return nil
		}
		select {
		case <-ack:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	}
	l.sendDetach(e)
	ack := l.detachAck
	s.mu.Unlock()
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sendDetach sends our detach with closed=true and ends the link for its
// users. Call with s.mu held.
func (l *Link) sendDetach(e *Error) {
	l.s.send(&frames.Detach{Handle: l.outHandle, Closed: true, Error: e.toFrame()}, nil)
	l.detachSent = true
	l.state = linkDetached
	l.detachAck = make(chan struct{})
	l.fail(&LinkError{LocalErr: e})
	l.s.broadcast()
}

// detachWithError detaches the link because the peer broke a link rule.
// Call with s.mu held.
func (l *Link) detachWithError(cond ErrCond, desc string) {
	l.s.c.log.Debug("amqp link error", "link", l.name, "condition", cond, "description", desc)
	l.sendDetach(&Error{Condition: cond, Description: desc})
}

// fail ends the link for its users with err. Call with s.mu held.
func (l *Link) fail(err error) {
	if l.detachAck != nil && !errors.As(err, new(*LinkError)) {
		close(l.detachAck) // the session or connection ended: nobody will answer
		l.detachAck = nil
	}
	if l.err != nil {
		return
	}
	l.err = err
	l.queue = nil
	l.partial = nil
	close(l.done)
	for _, f := range l.afterDone {
		go f()
	}
	l.afterDone = nil
}

// AfterDone arranges for f to run in its own goroutine once the link
// ended (when Done is closed), or at once if it has. Unlike a goroutine
// waiting on Done, a registered function costs no goroutine while the
// link lives.
func (l *Link) AfterDone(f func()) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.err != nil {
		go f()
		return
	}
	l.afterDone = append(l.afterDone, f)
}

// onAttach handles the peer's attach. Call with s.mu held.
func (s *session) onAttach(b *frames.Attach) {
	if b.Handle > defaultHandleMax {
		s.c.protocolError(ErrCondFramingError, fmt.Errorf("attach handle %d above handle-max %d", b.Handle, defaultHandleMax))
		return
	}
	if _, used := s.byInput[b.Handle]; used {
		s.endWithError(ErrCondHandleInUse, fmt.Errorf("attach on handle %d, which is in use", b.Handle))
		return
	}
	opts := &s.c.opts
	l := &Link{
		s:          s,
		name:       b.Name,
		inHandle:   b.Handle,
		role:       Role(!b.Role),
		source:     sourceFromFrame(b.Source),
		target:     targetFromFrame(b.Target),
		properties: stringKeys(b.Properties),
		desired:    symbolsToStrings(b.DesiredCapabilities),
		offered:    symbolsToStrings(b.OfferedCapabilities),
		sndMode:    b.SndSettleMode,
		rcvMode:    b.RcvSettleMode,
		peerMaxMsg: b.MaxMessageSize,
		done:       make(chan struct{}),
		window:     opts.LinkCredit,
		maxMessage: opts.MaxMessageSize,
	}
	if l.role == RoleSender {
		l.sendSem = make(chan struct{}, 1)
	}
	if l.sndMode > frames.SndMixed || l.rcvMode > frames.RcvSecond {
		s.endWithError(ErrCondInvalidField, fmt.Errorf("attach with settle modes %d/%d", l.sndMode, l.rcvMode))
		return
	}
	if l.role == RoleReceiver && b.InitialDeliveryCount != nil {
		l.deliveryCount = *b.InitialDeliveryCount
	}
	s.byInput[b.Handle] = l
	s.c.log.Debug("amqp link attach", "link", l.name, "role", l.role, "address", l.Address())
	h := s.c.handler
	s.c.handlers.Add(1)
	go func() {
		defer s.c.handlers.Done()
		err := h.Attach(s.c.ctx, l)
		s.finishAttach(l, err)
	}()
}

// finishAttach answers the attach once the handler decided.
func (s *session) finishAttach(l *Link, herr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.endSent {
		l.fail(s.err)
		return
	}
	out := uint32(0)
	for ; out <= s.peerHandleMax && out <= defaultHandleMax; out++ {
		if _, used := s.byOutput[out]; !used {
			break
		}
	}
	if out > s.peerHandleMax || out > defaultHandleMax {
		s.endWithError(ErrCondResourceLimitExceeded, errors.New("no free link handle"))
		return
	}
	l.outHandle = out
	s.byOutput[out] = l

	var refuse, detachErr *Error
	var daa *DetachAfterAttach
	detach := false
	switch {
	case herr == nil:
		detach, detachErr = l.closeOnAttach, l.closeErr
	case errors.As(herr, &daa):
		detach, detachErr = true, daa.Err
	case errors.As(herr, &refuse) && refuse != nil:
	default:
		refuse = &Error{Condition: ErrCondInternalError, Description: herr.Error()}
	}
	a := &frames.Attach{
		Name:          l.name,
		Handle:        out,
		Role:          bool(l.role),
		SndSettleMode: l.sndMode,
		RcvSettleMode: l.rcvMode,
		Source:        l.source.toFrame(),
		Target:        l.target.toFrame(),
	}
	if l.role == RoleSender {
		zero := uint32(0)
		a.InitialDeliveryCount = &zero
	} else {
		a.MaxMessageSize = l.maxMessage
	}
	if refuse != nil {
		// Refused: no terminus on either side, as Azure's brokers
		// answer (go-amqp then returns the detach's error from
		// NewReceiver or NewSender).
		a.Source, a.Target = nil, nil
	}
	s.send(a, nil)
	l.state = linkAttached

	switch {
	case refuse != nil:
		l.sendDetach(refuse)
	case detach:
		l.sendDetach(detachErr)
	case l.detachReceived:
		// the peer gave up while the handler ran: answer its detach
		s.send(&frames.Detach{Handle: out, Closed: true}, nil)
		l.state = linkDetached
		l.fail(&LinkError{RemoteErr: l.peerDetachErr})
	case l.role == RoleReceiver:
		l.credit = l.window
		s.sendFlow(l, false)
	default:
		l.maybeDrain() // a drain that arrived before our answer
	}
	if l.detachReceived { // both sides have detached
		delete(s.byOutput, out)
		if l.detachAck != nil {
			close(l.detachAck)
			l.detachAck = nil
		}
	}
	s.broadcast()
}

// onDetach handles the peer's detach. Call with s.mu held.
func (s *session) onDetach(b *frames.Detach) {
	l := s.byInput[b.Handle]
	if l == nil {
		s.endWithError(ErrCondUnattachedHandle, fmt.Errorf("detach on handle %d, which is not attached", b.Handle))
		return
	}
	delete(s.byInput, b.Handle)
	remote := errorFromFrame(b.Error)
	l.detachReceived = true
	l.peerDetachErr = remote
	switch {
	case l.state == linkAttaching:
		// answered in finishAttach
	case l.detachSent:
		// the answer to our detach
		delete(s.byOutput, l.outHandle)
		if l.detachAck != nil {
			close(l.detachAck)
			l.detachAck = nil
		}
	default:
		s.send(&frames.Detach{Handle: l.outHandle, Closed: b.Closed}, nil)
		delete(s.byOutput, l.outHandle)
		l.state = linkDetached
		l.fail(&LinkError{RemoteErr: remote})
		s.c.log.Debug("amqp link detached by peer", "link", l.name, "err", remote)
	}
	// deliveries we sent on this link will get no outcome now
	for id, st := range s.unsettledOut {
		if st.l == l {
			st.resolve(l.err)
			delete(s.unsettledOut, id)
		}
	}
	s.broadcast()
}
