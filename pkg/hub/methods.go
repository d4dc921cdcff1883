package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/rest"
	"github.com/iotctl/iotctl/pkg/message"
)

// Errors of a direct-method call, as IoT Hub reports them.
var (
	// ErrDeviceNotOnline: the device is not connected or has not
	// subscribed to methods (404103).
	ErrDeviceNotOnline = rest.ErrDeviceNotOnline
	// ErrMethodTimeout: the device did not answer in time (504101).
	ErrMethodTimeout = rest.ErrTimeout
)

// errClosingNotOnline ends the calls in progress when the hub closes:
// it drops the devices they wait for.
var errClosingNotOnline = fmt.Errorf("%w: the hub is shutting down", ErrDeviceNotOnline)

type methodResult struct {
	status  int
	payload []byte
}

type pendingCall struct {
	clientID string
	ch       chan methodResult
}

// methodBus matches method responses to the calls waiting for them by
// request id.
type methodBus struct {
	mu      sync.Mutex
	pending map[string]pendingCall
	next    atomic.Uint64
}

func newMethodBus() *methodBus { return &methodBus{pending: map[string]pendingCall{}} }

func (b *methodBus) register(clientID string) (string, chan methodResult) {
	rid := strconv.FormatUint(b.next.Add(1), 10)
	ch := make(chan methodResult, 1)
	b.mu.Lock()
	b.pending[rid] = pendingCall{clientID: clientID, ch: ch}
	b.mu.Unlock()
	return rid, ch
}

func (b *methodBus) cancel(rid string) {
	b.mu.Lock()
	delete(b.pending, rid)
	b.mu.Unlock()
}

// respond delivers a device's response; a response for an unknown
// request, or from another client than the one asked, is dropped.
func (b *methodBus) respond(clientID, rid string, status int, payload []byte) {
	b.mu.Lock()
	p, ok := b.pending[rid]
	if ok && p.clientID == clientID {
		delete(b.pending, rid)
	}
	b.mu.Unlock()
	if ok && p.clientID == clientID {
		p.ch <- methodResult{status: status, payload: append([]byte(nil), payload...)}
	}
}

// InvokeMethod calls a direct method on a connected device or module
// and waits for its answer. When the device is not connected and
// subscribed to methods it waits up to connectTimeout for it (0: not at
// all) and then returns ErrDeviceNotOnline; when the device does not
// answer within responseTimeout it returns ErrMethodTimeout. payload
// nil is sent as JSON null. The result is the device's status and its
// payload as JSON: an empty body is null, and a body that is not JSON
// is returned as a JSON string.
func (h *Hub) InvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage, connectTimeout, responseTimeout time.Duration) (_ int, _ json.RawMessage, err error) {
	defer func() { h.meter.methodCall(err) }()
	id := clientKey(deviceID, moduleID)
	s, err := h.waitForMethods(ctx, id, connectTimeout)
	if err != nil {
		return 0, nil, err
	}
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	rid, ch := h.methods.register(id)
	defer h.methods.cancel(rid)
	h.log.Info("method invoked", "device", deviceID, "module", moduleID, "method", name, "rid", rid)
	if err := s.write(message.MethodRequestTopic(name, rid), payload, 0, 0); err != nil {
		return 0, nil, ErrDeviceNotOnline
	}
	timer := time.NewTimer(responseTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.status, jsonOrString(r.payload), nil
	case <-timer.C:
		h.log.Info("method timed out", "device", deviceID, "module", moduleID, "method", name, "rid", rid)
		return 0, nil, ErrMethodTimeout
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-h.closing():
		return 0, nil, errClosingNotOnline
	}
}

func (h *Hub) waitForMethods(ctx context.Context, id string, connectTimeout time.Duration) (*session, error) {
	ready := func() *session {
		if s := h.sessions.get(id); s != nil && s.subscribed(message.MethodRequestFilter) {
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
		changed := h.sessions.wait(id)
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
		case <-h.closing():
			t.Stop()
			return nil, errClosingNotOnline
		}
		t.Stop()
	}
}

// closing is closed when the hub begins to close (nil before Start).
func (h *Hub) closing() <-chan struct{} {
	if h.ctx == nil {
		return nil
	}
	return h.ctx.Done()
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
