package core

import (
	"context"
	"errors"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// maxInflight bounds the unsettled C2D messages handed to one
// connection.
const maxInflight = 50

// ExpirySweep is how often Sweep drops the expired C2D messages of
// every queue, so that a message to a device that never connects still
// ends with its Expired feedback, as on IoT Hub, and delivers the
// messages whose lock expired to their connected devices.
const ExpirySweep = 5 * time.Second

// Sweep sweeps the C2D queues every interval (ExpirySweep when not
// positive) until ctx is done.
func (c *Core) Sweep(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = ExpirySweep
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := c.reg.ExpireC2D()
		if err != nil {
			c.log.Warn("c2d expiry sweep failed", "err", err)
			continue
		}
		if n > 0 {
			c.log.Debug("c2d messages expired", "count", n)
		}
		// Locks expire without an event: deliver what they free.
		ids, err := c.reg.DeliverableC2D()
		if err != nil {
			c.log.Warn("c2d queue scan failed", "err", err)
			continue
		}
		for _, id := range ids {
			c.C2DEnqueued(id.DeviceID, id.ModuleID)
		}
	}
}

// C2DEnqueued wakes the delivery of a connected device after a message
// was queued for it.
func (c *Core) C2DEnqueued(deviceID, moduleID string) {
	if s := c.sessions.get(Identity{deviceID, moduleID}.Key()); s != nil {
		s.KickC2D()
	}
}

// KickC2D makes sure a delivery of the session's queued C2D messages
// runs after this call: it starts one on a goroutine of its own, or has
// the running one go round again. Kicks come on attach, subscribe,
// enqueue, settlement, a replaced connection's abandoned messages, and
// from Sweep for queues whose locks expired, so an idle device costs no
// goroutine.
func (s *Session) KickC2D() {
	s.mu.Lock()
	if s.delivering {
		s.again = true
		s.mu.Unlock()
		return
	}
	s.delivering = true
	s.mu.Unlock()
	if !s.c.spawn(s.deliverC2D) {
		// The hub is closing: nothing more is delivered.
		s.mu.Lock()
		s.delivering = false
		s.mu.Unlock()
	}
}

// deliverC2D delivers until nothing is left to hand out and no kick
// came meanwhile.
func (s *Session) deliverC2D() {
	for {
		s.deliverPending()
		s.mu.Lock()
		if !s.again {
			s.delivering = false
			s.mu.Unlock()
			return
		}
		s.again = false
		s.mu.Unlock()
	}
}

// deliverPending hands the session's deliverable C2D messages to its
// connection, once the device listens for them, until the queue has
// none left, maxInflight wait for their settlement, or the connection
// takes no more.
func (s *Session) deliverPending() {
	c := s.c
	if !s.conn.Listening(C2D) {
		return
	}
	for {
		select {
		case <-s.done:
			return
		case <-c.closing:
			return
		default:
		}
		s.mu.Lock()
		full := len(s.inflight) >= maxInflight
		s.mu.Unlock()
		if full {
			return
		}
		m, err := c.reg.Receive(s.DeviceID, s.ModuleID)
		if err != nil {
			c.log.Warn("c2d queue read failed", "device", s.DeviceID, "err", err)
			return
		}
		if m == nil {
			return
		}
		s.mu.Lock()
		s.inflight[m.LockToken] = struct{}{}
		s.mu.Unlock()
		if err := s.conn.SendC2D(m); err != nil {
			// Not handed over: the lock goes back at once.
			s.settleInflight(m.LockToken, Abandon)
			if !errors.Is(err, ErrNoCredit) {
				c.log.Debug("c2d delivery", "device", s.DeviceID, "module", s.ModuleID, "err", err)
			}
			return
		}
		c.events.C2D(C2DDelivered)
		c.log.Debug("c2d delivered", "device", s.DeviceID, "module", s.ModuleID, "messageId", m.MessageID)
	}
}

// Outcome is how a device settles a C2D message.
type Outcome int

// The outcomes of IoT Hub's C2D settlement: complete (feedback
// Success), reject (feedback Rejected, never delivered again) and
// abandon (delivered again, up to the maximum delivery count).
const (
	Complete Outcome = iota
	Reject
	Abandon
)

func (o Outcome) String() string {
	switch o {
	case Complete:
		return "complete"
	case Reject:
		return "reject"
	}
	return "abandon"
}

// CompleteC2D completes the message the session was handed with
// lockToken; errors as for SettleC2D.
func (s *Session) CompleteC2D(lockToken string) error { return s.settle(lockToken, Complete) }

// RejectC2D rejects it; errors as for SettleC2D.
func (s *Session) RejectC2D(lockToken string) error { return s.settle(lockToken, Reject) }

// AbandonC2D abandons it; errors as for SettleC2D.
func (s *Session) AbandonC2D(lockToken string) error { return s.settle(lockToken, Abandon) }

// settle settles a message handed to this session, then delivers the
// next ones.
func (s *Session) settle(lockToken string, o Outcome) error {
	s.mu.Lock()
	_, ok := s.inflight[lockToken]
	delete(s.inflight, lockToken)
	s.mu.Unlock()
	if !ok {
		return registry.ErrDeviceMessageLockLost
	}
	err := s.c.SettleC2D(s.DeviceID, s.ModuleID, lockToken, o)
	if err != nil {
		s.c.log.Info("c2d "+o.String()+" failed", "device", s.DeviceID, "module", s.ModuleID, "err", err)
	}
	s.KickC2D()
	return err
}

// settleInflight forgets lockToken and settles it in the registry.
func (s *Session) settleInflight(lockToken string, o Outcome) {
	s.mu.Lock()
	delete(s.inflight, lockToken)
	s.mu.Unlock()
	if err := s.c.SettleC2D(s.DeviceID, s.ModuleID, lockToken, o); err != nil {
		s.c.log.Debug("c2d "+o.String()+" failed", "device", s.DeviceID, "err", err)
	}
}

// abandonInflight returns a disconnected device's unsettled messages
// to its queue so they are delivered again on reconnect.
func (s *Session) abandonInflight() {
	s.mu.Lock()
	locks := make([]string, 0, len(s.inflight))
	for l := range s.inflight {
		locks = append(locks, l)
	}
	s.mu.Unlock()
	for _, l := range locks {
		s.settleInflight(l, Abandon)
	}
}

// ReceiveC2D locks and returns the identity's next deliverable message,
// for transports the device polls (HTTPS); nil when there is none. The
// lock lasts lock (0: the registry's C2DLockDuration). Errors match
// registry.ErrDeviceNotFound or registry.ErrModuleNotFound.
func (c *Core) ReceiveC2D(id Identity, lock time.Duration) (*registry.C2DMessage, error) {
	m, err := c.reg.ReceiveFor(id.DeviceID, id.ModuleID, lock)
	if m != nil {
		c.events.C2D(C2DDelivered)
	}
	return m, err
}

// SettleC2D settles a received message by its lock token. An unknown
// token, or one whose lock expired, gives an error matching
// registry.ErrDeviceMessageLockLost and leaves the queue as it was.
// Abandon wakes the delivery of a connected device.
func (c *Core) SettleC2D(deviceID, moduleID, lockToken string, o Outcome) error {
	switch o {
	case Complete:
		err := c.reg.Complete(deviceID, moduleID, lockToken)
		if err == nil {
			c.events.C2D(C2DCompleted)
		}
		return err
	case Reject:
		return c.reg.Reject(deviceID, moduleID, lockToken)
	}
	return c.reg.Abandon(deviceID, moduleID, lockToken)
}
