package device

import (
	"github.com/iotctl/iotctl/pkg/message"
)

// C2DHandler receives a cloud-to-device message (for a module: a
// message on one of its inputs, InputName set) with its body and
// properties. It runs on its own goroutine; the message is
// acknowledged (completed on the hub) when the handler returns.
type C2DHandler func(m *message.Message)

// SetC2DHandler sets the cloud-to-device callback (nil removes it). The
// client subscribes to C2D messages only while one is set, so a client
// without one leaves them queued on the hub; setting one on a connected
// client subscribes at once.
func (c *Client) SetC2DHandler(fn C2DHandler) {
	c.hmu.Lock()
	was := c.c2d
	c.c2d = fn
	c.hmu.Unlock()
	if was == nil && fn != nil {
		c.addFilter(c.c2dFilter(), 1)
	}
}

// onMessage handles a PUBLISH from the hub. It runs on a goroutine of
// its own per message, so handlers may block; a QoS 1 message is
// acknowledged when it returns.
func (c *Client) onMessage(cn *conn, topic string, payload []byte) {
	t, err := message.ParseTopic(topic)
	if err != nil {
		c.cfg.log.Warn("unexpected topic from the hub", "device", c.cfg.clientID, "err", err)
		return
	}
	switch t.Kind {
	case message.KindMethodRequest:
		c.onMethod(cn, t, payload)
	case message.KindTwinResponse:
		c.onTwinResponse(t, payload)
	case message.KindTwinDesired:
		c.onDesired(t, payload)
	case message.KindC2D, message.KindModuleInput:
		c.hmu.RLock()
		fn := c.c2d
		c.hmu.RUnlock()
		if fn == nil {
			c.cfg.log.Debug("c2d message without a handler", "device", c.cfg.clientID)
			return
		}
		t.Message.Body = payload
		fn(t.Message)
	default:
		c.cfg.log.Debug("ignored topic", "device", c.cfg.clientID, "kind", t.Kind.String())
	}
}
