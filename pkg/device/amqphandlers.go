package device

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/Azure/go-amqp"
)

// amqpHandlers are an AMQP client's handlers (both engines'): method
// handlers, the C2D and the desired-properties callbacks.
type amqpHandlers struct {
	methodTable

	hmu     sync.RWMutex
	desired DesiredHandler
	c2d     C2DHandler
}

// hasMethodHandler reports whether a method handler is set.
func (h *amqpHandlers) hasMethodHandler() bool {
	h.mmu.RLock()
	defer h.mmu.RUnlock()
	return h.defMethod != nil || len(h.methods) > 0
}

// handler is the C2D callback, nil when none is set.
func (h *amqpHandlers) handler() C2DHandler {
	h.hmu.RLock()
	defer h.hmu.RUnlock()
	return h.c2d
}

// desiredHandler is the desired-properties callback, nil when none is
// set.
func (h *amqpHandlers) desiredHandler() DesiredHandler {
	h.hmu.RLock()
	defer h.hmu.RUnlock()
	return h.desired
}

// setC2D sets the C2D callback; true when fn is the first one (its link
// is to be attached).
func (h *amqpHandlers) setC2D(fn C2DHandler) bool {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	was := h.c2d
	h.c2d = fn
	return was == nil && fn != nil
}

// setDesired sets the desired-properties callback; true when fn is the
// first one (the subscription is to be made).
func (h *amqpHandlers) setDesired(fn DesiredHandler) bool {
	h.hmu.Lock()
	defer h.hmu.Unlock()
	was := h.desired
	h.desired = fn
	return was == nil && fn != nil
}

// amqpMethodRequest is a method request as the hub sends it
// (correlation-id a uuid, the name in IoThub-methodname) and its
// correlation id, which the response carries back.
func amqpMethodRequest(am *amqp.Message) (*MethodRequest, any) {
	var cid any
	if am.Properties != nil {
		cid = am.Properties.CorrelationID
	}
	name := amqpString(am.ApplicationProperties[amqpMethodName])
	return &MethodRequest{Name: name, RequestID: amqpID(cid), Payload: amqpBody(am)}, cid
}

// amqpMethodResponse is the answer res to the request of correlation
// id cid, with IoThub-status.
func amqpMethodResponse(cid any, res MethodResponse) *amqp.Message {
	resp := &amqp.Message{
		Properties:            &amqp.MessageProperties{CorrelationID: cid},
		ApplicationProperties: map[string]any{amqpMethodStatus: int32(res.Status)},
		Data:                  [][]byte{res.Payload},
	}
	if res.Payload == nil {
		resp.Data = [][]byte{{}}
	}
	return resp
}

// amqpTwinRequest is a twin request of correlation id id.
func amqpTwinRequest(id, operation, resource string, body []byte) *amqp.Message {
	req := &amqp.Message{
		Properties:  &amqp.MessageProperties{CorrelationID: id},
		Annotations: amqp.Annotations{amqpOperation: operation},
		Data:        [][]byte{body},
	}
	if resource != "" {
		req.Annotations[amqpResource] = resource
	}
	return req
}

// amqpTwinStatus is a twin response's error: a *StatusError for a
// status of 300 or more; a response without annotations is a success
// (azure-iot-sdk-node amqp_twin_client.ts).
func amqpTwinStatus(op string, res *amqp.Message) error {
	if st, ok := amqpInt(annotation(res, amqpStatus)); ok && st >= 300 {
		return &StatusError{Op: op, Status: int(st), Body: amqpBody(res)}
	}
	return nil
}

// amqpCorrelationID is a message's correlation id, nil when it has
// none (a desired-properties notification on the twin link).
func amqpCorrelationID(am *amqp.Message) any {
	if am.Properties == nil {
		return nil
	}
	return am.Properties.CorrelationID
}

// amqpDesired is a desired-properties notification's patch and
// version.
func amqpDesired(am *amqp.Message) (json.RawMessage, int64) {
	v, _ := amqpInt(annotation(am, amqpVersion))
	patch := json.RawMessage(amqpBody(am))
	if v == 0 {
		v = docVersion(patch)
	}
	return patch, v
}

// amqpTwin is the twin a GET's response carries.
func amqpTwin(res *amqp.Message) (*Twin, error) {
	var t Twin
	if err := json.Unmarshal(amqpBody(res), &t); err != nil {
		return nil, fmt.Errorf("device: get twin: the hub's answer is not a twin: %w", err)
	}
	return &t, nil
}

// twinRequester sends a twin request on links l and waits for its
// response (a client's twinRequest).
type twinRequester[L any] func(ctx context.Context, l *L, op, operation, resource string, body []byte) (*amqp.Message, error)

// attachLate attaches, with attach, the links a handler set now needs
// on the live links, if there are any (else the next connect does), on
// a goroutine of the client.
func (c *amqpBase[L]) attachLate(what string, attach func(context.Context, *L) error) {
	c.goOnLive(func(l *L) {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.connTimeout)
		defer cancel()
		if err := attach(ctx, l); err != nil && c.ctx.Err() == nil {
			c.cfg.log.Warn("late "+what+" attach failed", "device", c.cfg.clientID, "err", amqpErr(err))
		}
	})
}

// subscribeDesired subscribes l to desired-property notifications
// (a twin PUT of /notifications/twin/properties/desired) with req.
func (c *amqpBase[L]) subscribeDesired(ctx context.Context, l *L, req twinRequester[L]) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.connTimeout)
	defer cancel()
	_, err := req(ctx, l, "subscribe to desired properties", "PUT", "/notifications/twin/properties/desired", []byte(" "))
	return err
}

// goSubscribeDesired subscribes the live links, if any, on a goroutine
// of the client (a desired handler was just set).
func (c *amqpBase[L]) goSubscribeDesired(req twinRequester[L]) {
	c.goOnLive(func(l *L) {
		if err := c.subscribeDesired(c.ctx, l, req); err != nil && c.ctx.Err() == nil {
			c.cfg.log.Warn("desired-properties subscription failed", "device", c.cfg.clientID, "err", err)
		}
	})
}

// getTwin asks for the twin with req (a GET on the twin link).
func (c *amqpBase[L]) getTwin(ctx context.Context, req twinRequester[L]) (*Twin, error) {
	l, err := c.live(ctx)
	if err != nil {
		return nil, err
	}
	res, err := req(ctx, l, "get twin", "GET", "", []byte(" "))
	if err != nil {
		return nil, err
	}
	return amqpTwin(res)
}

// updateReported patches the reported properties with req (a PATCH of
// /properties/reported) and returns their new version.
func (c *amqpBase[L]) updateReported(ctx context.Context, req twinRequester[L], patch any) (int64, error) {
	body, err := reportedBody(patch)
	if err != nil {
		return 0, err
	}
	l, err := c.live(ctx)
	if err != nil {
		return 0, err
	}
	res, err := req(ctx, l, "update reported properties", "PATCH", "/properties/reported", body)
	if err != nil {
		return 0, err
	}
	v, _ := amqpInt(annotation(res, amqpVersion))
	return v, nil
}

// twinPending are the twin requests of a device's links that wait for
// their response, by correlation id. The zero value is ready. Its map
// is made by the first request and dropped when the last is answered:
// most devices of a fleet make a twin request or two at connect, then
// none for hours.
type twinPending struct {
	mu    sync.Mutex
	m     map[string]chan *amqp.Message
	ended bool
}

// add registers the request id; false once the links ended.
func (p *twinPending) add(id string) (chan *amqp.Message, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return nil, false
	}
	if p.m == nil {
		p.m = map[string]chan *amqp.Message{}
	}
	ch := make(chan *amqp.Message, 1)
	p.m[id] = ch
	return ch, true
}

// remove forgets the request id.
func (p *twinPending) remove(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(id)
}

// forgetLocked deletes id, and the map once it is empty (p.mu held).
func (p *twinPending) forgetLocked(id string) {
	delete(p.m, id)
	if len(p.m) == 0 {
		p.m = nil
	}
}

// deliver hands the response am to the request id, if it waits; it
// never blocks.
func (p *twinPending) deliver(id string, am *amqp.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch := p.m[id]; ch != nil {
		p.forgetLocked(id)
		ch <- am // buffered, and only this sends on it
	}
}

// end closes every waiting request's channel (the links ended) and
// refuses new ones.
func (p *twinPending) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range p.m {
		close(ch)
	}
	p.m, p.ended = nil, true
}

// wait waits for the response on ch within ctx; lostErr when the links
// ended first; a status of 300 or more is a *StatusError.
func (p *twinPending) wait(ctx context.Context, ch chan *amqp.Message, op string, lostErr error) (*amqp.Message, error) {
	select {
	case res, ok := <-ch:
		if !ok {
			return nil, lostErr
		}
		if err := amqpTwinStatus(op, res); err != nil {
			return nil, err
		}
		return res, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
