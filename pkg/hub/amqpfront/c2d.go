package amqpfront

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// IoT Hub's AMQP error conditions for rejected C2D messages. The
// mapping from IoT Hub error codes follows the one IoT Edge's hub uses
// to imitate IoT Hub (AmqpErrorMapper in Azure/iotedge), and the
// service SDKs map them back: the Node SDK gives DeviceNotFoundError,
// DeviceMaximumQueueDepthExceededError, MessageTooLargeError,
// InvalidOperationError and ArgumentError.
const (
	// CondArgumentError rejects a message IoT Hub finds invalid
	// (400004 ArgumentInvalid), e.g. an unknown iothub-ack value.
	CondArgumentError amqp1.ErrCond = "com.microsoft:argument-error"
	// CondArgumentOutOfRange is IoT Hub's ArgumentOutOfRange.
	CondArgumentOutOfRange amqp1.ErrCond = "com.microsoft:argument-out-of-range"
	// CondThrottled is IoT Hub's ThrottlingException (429001).
	CondThrottled amqp1.ErrCond = "com.microsoft:device-container-throttled"
)

// c2dInflight bounds the messages of one link being queued at once.
// The registry batches concurrent writes into one transaction, so
// queueing several at a time is what makes a busy sender fast.
const c2dInflight = 128

// serveC2D queues the messages a service sends to /messages/devicebound
// and settles each once it is queued (accepted) or refused (rejected
// with IoT Hub's condition). Messages for one device are queued in the
// order they arrived; messages for different devices concurrently.
func (cs *conn) serveC2D(ctx context.Context, l *amqp1.Link) {
	sem := make(chan struct{}, c2dInflight)
	// last holds, per device, a channel closed when the latest message
	// for it has been queued, so the next one waits for it.
	last := map[string]chan struct{}{}
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		deviceID, moduleID, m, rej := c2dMessage(d.Message, cs.f.now())
		if rej != nil {
			_ = d.Reject(rej)
			continue
		}
		key := deviceID + "\x00" + moduleID
		prev := last[key]
		done := make(chan struct{})
		last[key] = done
		if len(last) > 4*c2dInflight {
			for k, ch := range last {
				select {
				case <-ch:
					delete(last, k)
				default:
				}
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		go func() {
			defer func() { <-sem }()
			defer close(done)
			if prev != nil {
				<-prev
			}
			cs.enqueue(d, deviceID, moduleID, m)
		}()
	}
}

// enqueue queues one message and settles its delivery.
func (cs *conn) enqueue(d *amqp1.Delivery, deviceID, moduleID string, m *registry.C2DMessage) {
	f := cs.f
	stored, err := f.reg.Enqueue(deviceID, moduleID, m)
	if err != nil {
		e := c2dError(err)
		f.log.Debug("amqp c2d rejected", "device", deviceID, "module", moduleID, "condition", e.Condition, "err", err)
		_ = d.Reject(e)
		return
	}
	if err := d.Accept(); err != nil {
		f.log.Debug("amqp c2d accept not sent", "device", deviceID, "err", err)
	}
	f.log.Debug("amqp c2d enqueued", "device", deviceID, "module", moduleID, "messageId", stored.MessageID)
	if f.opts.C2DEnqueued != nil {
		f.opts.C2DEnqueued(deviceID, moduleID)
	}
}

// c2dError maps a registry error to the AMQP error IoT Hub rejects
// the message with.
func c2dError(err error) *amqp1.Error {
	var re *registry.Error
	if !errors.As(err, &re) {
		return &amqp1.Error{Condition: amqp1.ErrCondInternalError, Description: "internal error queueing the message"}
	}
	desc := fmt.Sprintf("%s (%d): %s", re.Name, re.Code, re.Message)
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound), errors.Is(err, registry.ErrModuleNotFound):
		return &amqp1.Error{Condition: amqp1.ErrCondNotFound, Description: desc}
	case errors.Is(err, registry.ErrQueueFull):
		return &amqp1.Error{Condition: amqp1.ErrCondResourceLimitExceeded, Description: desc}
	case errors.Is(err, registry.ErrMessageTooLarge):
		return &amqp1.Error{Condition: amqp1.ErrCondMessageSizeExceeded, Description: desc}
	case errors.Is(err, registry.ErrArgumentInvalid):
		return &amqp1.Error{Condition: CondArgumentError, Description: desc}
	case errors.Is(err, registry.ErrThrottled):
		return &amqp1.Error{Condition: CondThrottled, Description: desc}
	}
	return &amqp1.Error{Condition: amqp1.ErrCondInternalError, Description: desc}
}

// errNoDevice is IoT Hub's answer to a C2D message whose "to" does not
// name a device (400003 InvalidOperation, amqp:not-allowed).
var errNoDevice = &amqp1.Error{Condition: amqp1.ErrCondNotAllowed,
	Description: "Amqp Message.Properties.To must contain the device identifier"}

// c2dMessage reads the C2D message a service sent: the device (and
// module) from properties.to (the queued message gets the registry's
// canonical "to", as IoT Hub rewrites it), and the message's system and
// application properties and body (a header TTL counts from now when
// there is no absolute-expiry-time). It returns the rejection for a
// message without a valid "to".
func c2dMessage(am *amqp.Message, now time.Time) (deviceID, moduleID string, m *registry.C2DMessage, rej *amqp1.Error) {
	p := am.Properties
	if p == nil || p.To == nil {
		return "", "", nil, errNoDevice
	}
	deviceID, moduleID, ok := c2dTarget(*p.To)
	if !ok {
		return "", "", nil, errNoDevice
	}
	m = &registry.C2DMessage{
		MessageID:     idString(p.MessageID),
		CorrelationID: idString(p.CorrelationID),
		UserID:        string(p.UserID),
		Body:          body(am),
	}
	if p.ContentType != nil {
		m.ContentType = *p.ContentType
	}
	if p.ContentEncoding != nil {
		m.ContentEncoding = *p.ContentEncoding
	}
	if p.AbsoluteExpiryTime != nil && !p.AbsoluteExpiryTime.IsZero() {
		m.ExpiryTime = p.AbsoluteExpiryTime.UTC()
	} else if h := am.Header; h != nil && h.TTL > 0 {
		m.ExpiryTime = now.Add(h.TTL).UTC()
	}
	for k, v := range am.ApplicationProperties {
		if strings.EqualFold(k, "iothub-ack") {
			m.Ack = strings.ToLower(str(v))
			continue
		}
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
		m.Properties[k] = propString(v)
	}
	return deviceID, moduleID, m, nil
}

// idString writes a message-id or correlation-id (string, UUID, ulong
// or binary) as the string IoT Hub shows: a UUID in its canonical
// form.
func idString(v any) string {
	switch id := v.(type) {
	case nil:
		return ""
	case string:
		return id
	case amqp.UUID:
		return id.String()
	case []byte:
		return string(id)
	case uint64:
		return strconv.FormatUint(id, 10)
	}
	return fmt.Sprint(v)
}

// propString writes an application property value as the string IoT
// Hub keeps: strings as they are, other scalars in their usual text
// form, null as "".
func propString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case amqp.Symbol:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(x)
	case amqp.UUID:
		return x.String()
	case int64: // the integers as fmt.Sprint writes them, without its cost
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int16:
		return strconv.FormatInt(int64(x), 10)
	case int8:
		return strconv.FormatInt(int64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case uint32:
		return strconv.FormatUint(uint64(x), 10)
	case uint16:
		return strconv.FormatUint(uint64(x), 10)
	case uint8:
		return strconv.FormatUint(uint64(x), 10)
	}
	return fmt.Sprint(v)
}

// body is a message's payload: its data sections joined, or an
// amqp-value string or binary.
func body(m *amqp.Message) []byte {
	if len(m.Data) == 1 {
		return m.Data[0]
	}
	if len(m.Data) > 1 {
		var n int
		for _, d := range m.Data {
			n += len(d)
		}
		out := make([]byte, 0, n)
		for _, d := range m.Data {
			out = append(out, d...)
		}
		return out
	}
	switch v := m.Value.(type) {
	case string:
		return []byte(v)
	case []byte:
		return v
	}
	return nil
}
