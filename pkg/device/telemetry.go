package device

import (
	"context"
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/message"
)

// SendEvent sends m as device-to-cloud telemetry on
// devices/{id}/messages/events/{bag} (or the module's topic), with m's
// system and application properties in the bag (see
// message.EncodeBag). With QoS 1 (the default) it returns when the hub
// acknowledged the message; with QoS 0 when it was written.
//
// While the client is reconnecting SendEvent waits for the new
// connection; if the connection drops before the PUBACK the message is
// sent again on the next one (at least once). Cancelling ctx stops the
// wait and returns ctx.Err() (the message may still have reached the
// hub). Other errors: ErrTooLarge, ErrNotConnected before Connect,
// ErrClosed, or the *ConnectError of a refused reconnect.
func (c *Client) SendEvent(ctx context.Context, m *message.Message) error {
	if m == nil {
		m = &message.Message{}
	}
	if m.Size() > message.MaxTelemetrySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, m.Size(), message.MaxTelemetrySize)
	}
	topic := message.TelemetryTopic(c.cfg.deviceID, c.cfg.moduleID, m)
	for {
		cn, err := c.waitConnected(ctx, true)
		if err != nil {
			return err
		}
		err = cn.publish(ctx, topic, c.cfg.qos, m.Body)
		c.untrack()
		if errors.Is(err, errLost) {
			continue
		}
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("device: send event: %w", err)
		}
		return err
	}
}
