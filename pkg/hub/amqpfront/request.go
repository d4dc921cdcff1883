package amqpfront

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
)

// replyTimeout bounds the sending of one reply (credit, outcome).
const replyTimeout = 30 * time.Second

// response is the answer to a request on $cbs or $management.
type response struct {
	status      int32
	description string
	body        any // an amqp-value, or nil for none
}

// serveRequests reads requests from a peer's sender on node ($cbs or
// $management), answers each with handle and sends the answer to the
// peer's receiver on the same node, with correlation-id = the request's
// message-id and the application properties status-code (an AMQP int)
// and status-description.
func (cs *conn) serveRequests(ctx context.Context, l *amqp1.Link, node string, handle func(*amqp.Message) response) {
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		req := d.Message
		res := handle(req)
		_ = d.Accept()
		var id, replyTo any
		if p := req.Properties; p != nil {
			id = p.MessageID
			if id == nil {
				id = p.CorrelationID
			}
			if p.ReplyTo != nil {
				replyTo = *p.ReplyTo
			}
		}
		msg := &amqp.Message{
			Properties: &amqp.MessageProperties{CorrelationID: id},
			ApplicationProperties: map[string]any{
				"status-code":        res.status,
				"status-description": res.description,
			},
			Value: res.body,
		}
		rt, _ := replyTo.(string)
		if rt != "" {
			msg.Properties.To = &rt
		}
		cs.sendReply(ctx, node, rt, msg)
	}
}

// sendReply sends msg to the peer's receiver on node for replyTo (see
// replyLink), waiting at most replyTimeout; a reply that cannot go out
// is logged and dropped.
func (cs *conn) sendReply(ctx context.Context, node, replyTo string, msg *amqp.Message) {
	cs.reply(ctx, node, replyTo, msg, true)
}

// reply sends msg as sendReply says, waiting for the peer's outcome
// only when wait is set.
func (cs *conn) reply(ctx context.Context, node, replyTo string, msg *amqp.Message, wait bool) {
	rl := cs.replyLink(ctx, node, replyTo)
	if rl == nil {
		cs.f.log.Debug("amqp reply dropped: the peer has no receiver on "+node, "replyTo", replyTo)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, replyTimeout)
	var err error
	if wait {
		err = rl.Send(sctx, msg)
	} else {
		_, err = rl.Start(sctx, msg)
	}
	cancel()
	if err != nil {
		cs.f.log.Debug("amqp reply not delivered", "node", node, "err", err)
	}
}

// str reads a string-like AMQP value (string or symbol).
func str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case amqp.Symbol:
		return string(s)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// bodyString reads a message body that carries text: an amqp-value
// string (or binary) or data sections.
func bodyString(m *amqp.Message) string {
	switch v := m.Value.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return string(bytes.Join(m.Data, nil))
}
