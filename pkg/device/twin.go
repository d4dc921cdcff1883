package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// Twin is a device twin as the device sees it: the desired and reported
// property documents, each with its "$version".
type Twin struct {
	Desired  json.RawMessage `json:"desired"`
	Reported json.RawMessage `json:"reported"`
}

// DesiredVersion returns the desired document's $version (0 if none).
func (t *Twin) DesiredVersion() int64 { return docVersion(t.Desired) }

// ReportedVersion returns the reported document's $version (0 if none).
func (t *Twin) ReportedVersion() int64 { return docVersion(t.Reported) }

func docVersion(doc json.RawMessage) int64 {
	var v struct {
		Version int64 `json:"$version"`
	}
	_ = json.Unmarshal(doc, &v)
	return v.Version
}

// DesiredHandler receives a desired-properties patch with its version.
// The patch is the JSON the hub sent (it includes "$version"). Each
// call runs on its own goroutine; patches may arrive out of order, so
// compare versions. Desired changes made while the device was offline
// are not replayed: call GetTwin after a reconnect to catch up.
type DesiredHandler func(patch json.RawMessage, version int64)

// SetDesiredHandler sets the desired-properties callback (nil removes
// it). The client subscribes to desired patches only while one is set;
// setting one on a connected client subscribes at once.
func (c *Client) SetDesiredHandler(fn DesiredHandler) {
	c.hmu.Lock()
	was := c.desired
	c.desired = fn
	c.hmu.Unlock()
	if was == nil && fn != nil {
		c.addFilter(message.TwinDesiredFilter, 0)
	}
}

type twinResponse struct {
	status  int
	version int64
	body    []byte
}

// GetTwin asks the hub for the twin and waits for the answer. If the
// connection drops first, the request is made again on the next
// connection. Errors: *StatusError for a status of 300 or more, a
// JSON error for a body that is not a twin, ctx.Err(), ErrClosed, and
// the errors of SendEvent.
func (c *Client) GetTwin(ctx context.Context) (*Twin, error) {
	r, err := c.twinRequest(ctx, "get twin", message.TwinGetTopic, nil)
	if err != nil {
		return nil, err
	}
	var t Twin
	if err := json.Unmarshal(r.body, &t); err != nil {
		return nil, fmt.Errorf("device: get twin: the hub's answer is not a twin: %w", err)
	}
	return &t, nil
}

// UpdateReported patches the reported properties and returns their new
// $version. patch is a JSON object as []byte or json.RawMessage, or any
// value json.Marshal turns into one; members set to null are deleted.
// Errors as for GetTwin (a malformed patch is a *StatusError with 400).
func (c *Client) UpdateReported(ctx context.Context, patch any) (int64, error) {
	body, err := reportedBody(patch)
	if err != nil {
		return 0, err
	}
	r, err := c.twinRequest(ctx, "update reported properties", message.TwinPatchReportedTopic, body)
	if err != nil {
		return 0, err
	}
	return r.version, nil
}

// reportedBody is an UpdateReported patch as JSON bytes, checked to be
// an object.
func reportedBody(patch any) ([]byte, error) {
	var body []byte
	switch p := patch.(type) {
	case []byte:
		body = p
	case json.RawMessage:
		body = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("device: update reported properties: %w", err)
		}
		body = b
	}
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("device: update reported properties: the patch must be a JSON object")
	}
	return body, nil
}

// twinRequest publishes a twin request with a fresh $rid and waits for
// the response with that $rid, repeating it after a reconnect.
func (c *Client) twinRequest(ctx context.Context, op string, topic func(string) string, body []byte) (twinResponse, error) {
	for {
		cn, err := c.waitConnected(ctx)
		if err != nil {
			return twinResponse{}, err
		}
		rid := strconv.FormatUint(c.rid.Add(1), 10)
		ch := make(chan twinResponse, 1)
		c.pmu.Lock()
		if c.pending == nil {
			c.pending = make(map[string]chan twinResponse)
		}
		c.pending[rid] = ch
		c.pmu.Unlock()
		r, err := c.awaitTwin(ctx, cn, topic(rid), body, ch)
		c.pmu.Lock()
		delete(c.pending, rid)
		c.pmu.Unlock()
		switch {
		case errors.Is(err, errLost):
			continue
		case err != nil:
			if ctx.Err() == nil {
				err = fmt.Errorf("device: %s: %w", op, err)
			}
			return twinResponse{}, err
		case r.status >= 300:
			return twinResponse{}, &StatusError{Op: op, Status: r.status, Body: r.body}
		}
		return r, nil
	}
}

func (c *Client) awaitTwin(ctx context.Context, cn *conn, topic string, body []byte, ch chan twinResponse) (twinResponse, error) {
	if err := cn.publish0(topic, body); err != nil {
		return twinResponse{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-cn.lost:
		return twinResponse{}, errLost
	case <-ctx.Done():
		return twinResponse{}, ctx.Err()
	}
}

// onTwinResponse hands a response to the request waiting for it.
func (c *Client) onTwinResponse(t *message.Topic, payload []byte) {
	c.pmu.Lock()
	ch := c.pending[t.RequestID]
	c.pmu.Unlock()
	if ch == nil {
		c.cfg.log.Debug("twin response nobody waits for", "device", c.cfg.clientID, "rid", t.RequestID, "status", t.Status)
		return
	}
	select {
	case ch <- twinResponse{status: t.Status, version: t.Version, body: payload}:
	default:
	}
}

func (c *Client) onDesired(t *message.Topic, payload []byte) {
	c.hmu.RLock()
	fn := c.desired
	c.hmu.RUnlock()
	if fn == nil {
		return
	}
	v := t.Version
	if v == 0 {
		v = docVersion(payload)
	}
	start := time.Now()
	fn(json.RawMessage(payload), v)
	c.cfg.log.Debug("desired patch handled", "device", c.cfg.clientID, "version", v, "took", time.Since(start))
}
