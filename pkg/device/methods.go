package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// HandleMethod registers fn for the method name, replacing any earlier
// handler; a nil fn removes it. It may be called at any time.
func (c *Client) HandleMethod(name string, fn MethodHandler) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
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
func (c *Client) SetDefaultMethodHandler(fn MethodHandler) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.defMethod = fn
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
	c.hmu.RLock()
	fn := c.methods[t.MethodName]
	if fn == nil {
		fn = c.defMethod
	}
	c.hmu.RUnlock()
	req := &MethodRequest{Name: t.MethodName, RequestID: t.RequestID, Payload: payload}
	var res MethodResponse
	if fn == nil {
		res = NotDefined(t.MethodName)
	} else {
		res = c.callMethod(fn, req)
	}
	// Answer on the connection the request came on, or on the next one
	// if it dropped meanwhile (the hub matches answers by $rid).
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.connTimeout)
	defer cancel()
	topic := message.MethodResponseTopic(res.Status, t.RequestID)
	for {
		err := cn.publish(ctx, topic, 0, res.Payload)
		if errors.Is(err, errLost) {
			if cn, err = c.waitConnected(ctx, false); err == nil {
				continue
			}
		}
		if err != nil {
			c.cfg.log.Warn("method response not sent", "device", c.cfg.clientID, "method", t.MethodName, "err", err)
		}
		return
	}
}

// callMethod runs fn, turning a panic into a 500 answer.
func (c *Client) callMethod(fn MethodHandler, req *MethodRequest) MethodResponse {
	return callHandler(c.ctx, c.cfg, fn, req)
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
