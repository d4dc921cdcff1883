package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of a direct-method call, as IoT Hub reports them.
var (
	// ErrDeviceNotOnline: the device is not connected or does not
	// listen for methods (404103).
	ErrDeviceNotOnline = errors.New("hub: device not online")
	// ErrMethodTimeout: the device did not answer in time (504101).
	ErrMethodTimeout = errors.New("hub: timed out waiting for the device")
)

// errClosingNotOnline ends the calls in progress when the hub closes:
// it drops the devices they wait for.
var errClosingNotOnline = fmt.Errorf("%w: the hub is shutting down", ErrDeviceNotOnline)

type methodResult struct {
	status  int
	payload []byte
}

type pendingCall struct {
	session *Session
	ch      chan methodResult
}

// methodBus matches method responses to the calls waiting for them by
// request id.
type methodBus struct {
	mu      sync.Mutex
	pending map[string]pendingCall
	next    atomic.Uint64
}

func (b *methodBus) register(s *Session) (string, chan methodResult) {
	rid := strconv.FormatUint(b.next.Add(1), 10)
	ch := make(chan methodResult, 1)
	b.mu.Lock()
	b.pending[rid] = pendingCall{session: s, ch: ch}
	b.mu.Unlock()
	return rid, ch
}

func (b *methodBus) cancel(rid string) {
	b.mu.Lock()
	delete(b.pending, rid)
	b.mu.Unlock()
}

// MethodResponse delivers the device's answer to the request rid; an
// answer to an unknown request, or to a request sent to another
// identity, is dropped.
func (s *Session) MethodResponse(rid string, status int, payload []byte) {
	b := &s.c.methods
	b.mu.Lock()
	p, ok := b.pending[rid]
	ok = ok && p.session.Identity == s.Identity
	if ok {
		delete(b.pending, rid)
	}
	b.mu.Unlock()
	if ok {
		p.ch <- methodResult{status: status, payload: bytes.Clone(payload)}
	}
}

// InvokeMethod calls a direct method on a connected device or module
// and waits for its answer. When the device is not connected and
// listening for methods it waits up to connectTimeout for it (0: not at
// all) and then returns ErrDeviceNotOnline; when the device does not
// answer within responseTimeout it returns ErrMethodTimeout. payload
// nil is sent as JSON null. The result is the device's status and its
// payload as JSON: an empty body is null, and a body that is not JSON
// is returned as a JSON string.
func (c *Core) InvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage, connectTimeout, responseTimeout time.Duration) (_ int, _ json.RawMessage, err error) {
	defer func() { c.events.MethodCalled(err) }()
	s, err := c.waitForMethods(ctx, Identity{deviceID, moduleID}, connectTimeout)
	if err != nil {
		return 0, nil, err
	}
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	rid, ch := c.methods.register(s)
	defer c.methods.cancel(rid)
	c.log.Info("method invoked", "device", deviceID, "module", moduleID, "method", name, "rid", rid)
	if err := s.conn.SendMethod(name, rid, payload); err != nil {
		return 0, nil, ErrDeviceNotOnline
	}
	timer := time.NewTimer(responseTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.status, jsonOrString(r.payload), nil
	case <-timer.C:
		c.log.Info("method timed out", "device", deviceID, "module", moduleID, "method", name, "rid", rid)
		return 0, nil, ErrMethodTimeout
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-c.closing:
		return 0, nil, errClosingNotOnline
	}
}

func (c *Core) waitForMethods(ctx context.Context, id Identity, connectTimeout time.Duration) (*Session, error) {
	key := id.Key()
	ready := func() *Session {
		if s := c.sessions.get(key); s != nil && s.conn.Listening(Methods) {
			return s
		}
		return nil
	}
	if s := ready(); s != nil || connectTimeout <= 0 {
		if s == nil {
			return nil, ErrDeviceNotOnline
		}
		return s, nil
	}
	deadline := time.Now().Add(connectTimeout)
	for {
		changed := c.sessions.wait(key)
		if s := ready(); s != nil {
			return s, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, ErrDeviceNotOnline
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-c.closing:
			t.Stop()
			return nil, errClosingNotOnline
		}
		t.Stop()
	}
}

func jsonOrString(b []byte) json.RawMessage {
	if len(bytes.TrimSpace(b)) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}
