package device

import (
	"context"
	"errors"
	"sync"
	"time"
)

// amqpBase is what both AMQP device clients (go-amqp's amqpClient and
// the lean engine's leanClient) keep and do the same way around their
// links L: the connect, token renewal and close life cycle.
type amqpBase[L any] struct {
	cfg    *config
	shared *AMQPShared // the leanClient's; nil for the amqpClient, on a connection of its own

	ctx    context.Context // ended by Close: a *lifetime, cheap to derive from
	cancel func()
	wg     sync.WaitGroup // what the client runs: loops, handlers, reconnects

	liveState[L]
}

func newAMQPBase[L any](cfg *config, shared *AMQPShared) amqpBase[L] {
	lt := newLifetime()
	return amqpBase[L]{cfg: cfg, shared: shared, ctx: lt, cancel: lt.cancel, liveState: newLiveState[L]()}
}

func (c *amqpBase[L]) DeviceID() string      { return c.cfg.deviceID }
func (c *amqpBase[L]) ModuleID() string      { return c.cfg.moduleID }
func (c *amqpBase[L]) Done() <-chan struct{} { return c.stopped }
func (c *amqpBase[L]) emit(e Event)          { c.cfg.emit(e) }

func (c *amqpBase[L]) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// install makes l the live links and plans the renewal of a token that
// needs it (renew, after renewIn); false: the client is closed.
func (c *amqpBase[L]) install(l *L, renewIn time.Duration, renew func()) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.cur = l
	close(c.ready)
	if renewIn > 0 {
		c.renew = time.AfterFunc(renewIn, renew)
	}
	c.mu.Unlock()
	c.cfg.log.Debug("connected", "device", c.cfg.clientID, "address", c.cfg.address, "transport", "amqp")
	c.emit(Event{State: StateConnected})
	return true
}

// renewToken puts a fresh token with p while l is live (no reconnect:
// azure-iot-sdk-node amqp.ts updateSharedAccessSignature) and plans the
// next; a failed put is tried again after the minimum retry delay, and
// a refused one runs refused on a goroutine of the client (which ends
// l: the reconnect then tells the refusal).
func (c *amqpBase[L]) renewToken(l *L, p tokenPutter, refused func()) {
	c.mu.Lock()
	if c.cur != l || c.closed {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	renewIn, err := putToken(c.ctx, c.cfg, p)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != l || c.closed {
		return
	}
	again := func() { c.renewToken(l, p, refused) }
	switch {
	case errors.Is(err, ErrUnauthorized):
		c.cfg.log.Warn("token renewal refused", "device", c.cfg.clientID, "err", err)
		c.spawnLocked(refused)
	case err != nil:
		c.cfg.log.Warn("token renewal failed", "device", c.cfg.clientID, "err", err)
		c.renew = time.AfterFunc(c.cfg.minDelay, again)
	default:
		c.renew = time.AfterFunc(renewIn, again)
	}
}

// close is Close around end, which ends the live links if there are
// any: the client stops, what it runs finishes, its place on a shared
// connection is given back. It is idempotent.
func (c *amqpBase[L]) close(end func(l *L)) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.fatal == nil {
		close(c.stopped)
	}
	l := c.cur
	c.dropLocked()
	c.mu.Unlock()
	c.cancel()
	if l != nil {
		end(l)
	}
	c.wg.Wait()
	if c.shared != nil {
		c.shared.release()
	}
	c.emit(Event{State: StateClosed, Reason: ReasonClosed})
}

// reconnectFrom drops l, which ended with err, if it is the live links,
// and reconnects with attempt on a goroutine of the client.
func (c *amqpBase[L]) reconnectFrom(l *L, err error, attempt func(context.Context) error) {
	c.mu.Lock()
	if c.cur != l || c.closed {
		c.mu.Unlock()
		return
	}
	c.dropLocked()
	c.wg.Add(1)
	c.mu.Unlock()
	err = amqpErr(err)
	c.cfg.log.Debug("connection lost", "device", c.cfg.clientID, "err", err)
	c.emit(Event{State: StateDisconnected, Reason: ReasonConnectionLost, Err: err})
	go func() {
		defer c.wg.Done()
		c.reconnect(c.ctx, c.cfg, attempt)
	}()
}

// goOnLive runs fn on a goroutine of the client with the live links,
// if there are any (else the next connect does what fn would).
func (c *amqpBase[L]) goOnLive(fn func(l *L)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l := c.cur; l != nil {
		c.spawnLocked(func() { fn(l) })
	}
}

// spawn runs fn on a goroutine of the client unless it is closed.
func (c *amqpBase[L]) spawn(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spawnLocked(fn)
}

// spawnLocked is spawn with mu held.
func (c *amqpBase[L]) spawnLocked(fn func()) {
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
}
