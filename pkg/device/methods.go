package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// MethodRequest is a direct-method call from the hub.
type MethodRequest struct {
	// Name is the method name.
	Name string
	// RequestID is the hub's $rid, opaque.
	RequestID string
	// Payload is the JSON payload as sent (possibly empty).
	Payload []byte
}

// MethodResponse is a handler's answer.
type MethodResponse struct {
	// Status is the status the caller sees, for example 200, 400, 404.
	Status int
	// Payload is the JSON payload; nil sends an empty body. It should
	// be valid JSON: the service side parses it.
	Payload []byte
}

// MethodHandler answers a direct method. It runs on its own goroutine
// (handlers may run concurrently) with a ctx cancelled by Close. The
// hub waits for the answer only for the caller's response timeout.
type MethodHandler func(ctx context.Context, req *MethodRequest) MethodResponse

// methodTable holds a client's method handlers; the MQTT and AMQP
// clients embed it.
type methodTable struct {
	mmu       sync.RWMutex
	methods   map[string]MethodHandler
	defMethod MethodHandler
}

// HandleMethod registers fn for the method name, replacing any earlier
// handler; a nil fn removes it. It may be called at any time.
func (c *methodTable) HandleMethod(name string, fn MethodHandler) {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	if fn == nil {
		delete(c.methods, name)
		return
	}
	if c.methods == nil {
		c.methods = make(map[string]MethodHandler)
	}
	c.methods[name] = fn
}

// SetDefaultMethodHandler sets the handler for methods without their
// own. Without one, such a method is answered with 404 and
// {"Response":"Direct method NAME not defined"} (as the quickstart
// device does), so the caller never waits for a timeout.
func (c *methodTable) SetDefaultMethodHandler(fn MethodHandler) {
	c.mmu.Lock()
	defer c.mmu.Unlock()
	c.defMethod = fn
}

// answer runs the handler of req's method (or the default one) with
// ctx, or answers NotDefined when there is none.
func (c *methodTable) answer(ctx context.Context, cfg *config, req *MethodRequest) MethodResponse {
	c.mmu.RLock()
	fn := c.methods[req.Name]
	if fn == nil {
		fn = c.defMethod
	}
	c.mmu.RUnlock()
	if fn == nil {
		return NotDefined(req.Name)
	}
	return callHandler(ctx, cfg, fn, req)
}

// NotDefined is the answer to a method nobody handles: 404 and
// {"Response":"Direct method NAME not defined"}.
func NotDefined(name string) MethodResponse {
	return MethodResponse{Status: 404, Payload: ResponseJSON("Direct method " + name + " not defined")}
}

// ResponseJSON returns {"Response":text}, the payload shape the
// quickstart device answers with.
func ResponseJSON(text string) []byte {
	b, _ := json.Marshal(struct {
		Response string `json:"Response"`
	}{text})
	return b
}

// onMethod runs on the goroutine of the request's PUBLISH.
func (c *Client) onMethod(cn *conn, t *message.Topic, payload []byte) {
	req := &MethodRequest{Name: t.MethodName, RequestID: t.RequestID, Payload: payload}
	res := c.answer(c.ctx, c.cfg, req)
	// Answer on the connection the request came on, or on the next one
	// if it dropped meanwhile (the hub matches answers by $rid).
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.connTimeout)
	defer cancel()
	topic := message.MethodResponseTopic(res.Status, t.RequestID)
	for {
		err := cn.publish0(topic, res.Payload)
		if errors.Is(err, errLost) {
			if cn, err = c.waitConnected(ctx); err == nil {
				continue
			}
		}
		if err != nil {
			c.cfg.log.Warn("method response not sent", "device", c.cfg.clientID, "method", t.MethodName, "err", err)
		}
		return
	}
}

// callHandler runs fn with ctx, turning a panic into a 500 answer.
func callHandler(ctx context.Context, cfg *config, fn MethodHandler, req *MethodRequest) (res MethodResponse) {
	defer func() {
		if r := recover(); r != nil {
			cfg.log.Error("method handler panicked", "device", cfg.clientID, "method", req.Name, "panic", fmt.Sprint(r))
			res = MethodResponse{Status: 500, Payload: ResponseJSON("Direct method " + req.Name + " failed")}
		}
	}()
	start := time.Now()
	res = fn(ctx, req)
	cfg.log.Debug("method handled", "device", cfg.clientID, "method", req.Name, "status", res.Status, "took", time.Since(start))
	return res
}
