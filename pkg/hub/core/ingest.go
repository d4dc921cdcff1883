package core

import (
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/message"
)

// maxPendingAppends is how many telemetry messages of one connection
// may wait for the log on disk; the next Session.Ingest waits for a
// slot, which stops the transport reading from the device.
const maxPendingAppends = 256

// ErrTooLarge refuses a device-to-cloud message over
// message.MaxTelemetrySize (256 KB), as IoT Hub does.
var ErrTooLarge = fmt.Errorf("hub: message over %d bytes", message.MaxTelemetrySize)

// Sender is who sent a message, as the Event Hub-compatible endpoint
// annotates it.
type Sender struct {
	Identity
	// AuthMethod is "sas" or "x509".
	AuthMethod string
	// Transport names how the message came, for Events ("https").
	Transport string
}

// Ingest stores a message a connected device sent. With a durable log
// it returns (true, nil) without waiting and calls done once the event
// is synced or failed; the device's messages are acknowledged in order
// by the transport from done, which runs on the log's committing
// goroutine and must not block. In memory (or for a message the core
// refuses) it returns (false, err) after storing, without calling done.
// A message that could not be stored closes the connection (the device
// sends it again after reconnecting); a message over 256 KB gives
// ErrTooLarge and the transport decides.
func (s *Session) Ingest(m *message.Message, done func(error)) (pending bool, err error) {
	s.Touch()
	if m.Size() > message.MaxTelemetrySize {
		return false, ErrTooLarge
	}
	c := s.c
	ev := telemetry.Event{DeviceID: s.DeviceID, ModuleID: s.ModuleID, AuthMethod: s.authMethod,
		GenerationID: s.generation, Message: m}
	if c.telemetry.Durable() {
		s.slots <- struct{}{} // freed by the log's callback, which always comes
		c.telemetry.AppendAsync(ev, func(_ telemetry.Event, err error) {
			<-s.slots
			if err != nil {
				c.log.Info("device disconnected: telemetry not stored", "device", s.DeviceID, "module", s.ModuleID, "err", err)
				s.conn.Close(err)
			} else {
				c.events.MessageStored(s.transport)
			}
			done(err)
		})
		return true, nil
	}
	if _, err := c.telemetry.Append(ev); err != nil {
		c.log.Info("device disconnected: telemetry not stored", "device", s.DeviceID, "module", s.ModuleID, "err", err)
		s.conn.Close(err)
		return false, err
	}
	c.events.MessageStored(s.transport)
	return false, nil
}

// Ingest stores a message from a device that holds no connection
// (HTTPS) and returns once it is stored (synced, on disk). Errors:
// ErrTooLarge, or the log's.
func (c *Core) Ingest(from Sender, m *message.Message) error {
	return c.IngestBatch(from, []*message.Message{m})
}

// IngestBatch stores a batch of messages from one device (HTTPS batch
// send) and returns once every one is stored. The batch is refused
// whole, before anything is stored, when one message is over 256 KB.
func (c *Core) IngestBatch(from Sender, ms []*message.Message) error {
	for _, m := range ms {
		if m.Size() > message.MaxTelemetrySize {
			return ErrTooLarge
		}
	}
	gen, err := c.generationID(from.Identity)
	if err != nil {
		return err
	}
	stored := make(chan error, len(ms))
	for _, m := range ms {
		ev := telemetry.Event{DeviceID: from.DeviceID, ModuleID: from.ModuleID, AuthMethod: from.AuthMethod,
			GenerationID: gen, Message: m}
		c.telemetry.AppendAsync(ev, func(_ telemetry.Event, err error) { stored <- err })
	}
	var errs []error
	for range ms {
		err := <-stored
		if err == nil {
			c.events.MessageStored(from.Transport)
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("hub: telemetry not stored: %w", err)
	}
	return nil
}
