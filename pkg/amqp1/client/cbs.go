package client

import (
	"context"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/internal/cbs"
)

// cbsLinks are the connection's $cbs pair, on its first session, and
// the put-token requests waiting for their answer.
type cbsLinks struct {
	snd     *Sender
	rcv     *Receiver
	pending map[string]chan *amqp.Message // by message-id; under c.mu
}

// openCBS begins the connection's first session and attaches $cbs on
// it. When the peer detaches either link no token can be put any
// more, so the connection ends.
func (c *Conn) openCBS(ctx context.Context) error {
	s, err := c.NewSession(ctx)
	if err != nil {
		return err
	}
	lost := func(err error) { go c.fail(&ConnError{Err: err}) }
	l := &cbsLinks{pending: map[string]chan *amqp.Message{}}
	c.mu.Lock()
	c.cbs = l
	c.mu.Unlock()
	if l.snd, err = s.NewSender(ctx, "$cbs", &LinkOptions{OnDetach: lost}); err != nil {
		return err
	}
	l.rcv, err = s.NewReceiver(ctx, "$cbs", &LinkOptions{OnDetach: lost, Credit: 100}, c.cbsAnswer)
	return err
}

// cbsAnswer hands a put-token answer to its request (on the reader).
func (c *Conn) cbsAnswer(payload []byte) {
	var res amqp.Message
	if res.UnmarshalBinary(payload) != nil {
		return
	}
	id := cbs.ResponseID(&res)
	c.mu.Lock()
	ch := c.cbs.pending[id]
	delete(c.cbs.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- &res
	}
}

// PutToken puts token for audience on the connection's $cbs node
// (internal/cbs.Request) and waits for the answer within ctx: nil for
// status 200 or 202, a *cbs.StatusError for another status (401 for a
// refused token), else the link's or the connection's error. Requests
// of many devices may be in flight at once.
func (c *Conn) PutToken(ctx context.Context, typ, audience, token string, expiry time.Time) error {
	id := uuid.NewString()
	payload, err := cbs.Request(id, typ, audience, token, expiry).MarshalBinary()
	if err != nil {
		return err
	}
	ch := make(chan *amqp.Message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.cbs.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.cbs.pending, id)
		c.mu.Unlock()
	}()
	if err := c.cbs.snd.Send(ctx, payload); err != nil {
		return err
	}
	select {
	case res := <-ch:
		return cbs.Result(res)
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}
