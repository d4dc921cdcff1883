package amqpfront

import (
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
)

// The names of the system properties a device SDK puts outside the
// AMQP properties section of a telemetry message: the application
// properties iothub-creation-time-utc (an RFC 3339 time) and
// iothub-outputname (a module's output), and the message annotations
// iothub-interface-id and dt-subject. Sources: the C# device SDK's
// AmqpIotMessageConverter.cs (MessageToAmqpMessage, with the names of
// MessageSystemPropertyNames.cs) and the Node SDK's amqp_message.ts
// (fromMessage: iothub-interface-id and dt-subject as annotations) and
// device/transport/amqp/src/amqp.ts (sendOutputEvent:
// iothub-outputname).
const (
	propOutputName   = "iothub-outputname"
	annInterfaceID   = "iothub-interface-id"
	annInputName     = "x-opt-input-name"
	annLockToken     = "x-opt-lock-token"
	annDeliveryCount = "iothub-deliverycount"
)

// telemetryMessage reads a device's telemetry message as the hub's
// message model, the same one MQTT's property bag gives: message-id,
// correlation-id, user-id, to, content type and encoding and
// absolute-expiry-time from the properties; the creation time and a
// module's output name from their application properties; the Plug
// and Play interface and component from the annotations; every other
// application property by name (null kept as null).
func telemetryMessage(am *amqp.Message) *message.Message {
	m := &message.Message{Body: body(am)}
	if p := am.Properties; p != nil {
		m.MessageID = idString(p.MessageID)
		m.CorrelationID = idString(p.CorrelationID)
		m.UserID = string(p.UserID)
		if p.To != nil {
			m.To = *p.To
		}
		if p.ContentType != nil {
			m.ContentType = *p.ContentType
		}
		if p.ContentEncoding != nil {
			m.ContentEncoding = *p.ContentEncoding
		}
		if p.AbsoluteExpiryTime != nil && !p.AbsoluteExpiryTime.IsZero() {
			m.ExpiryTime = p.AbsoluteExpiryTime.UTC()
		}
		if p.CreationTime != nil && !p.CreationTime.IsZero() {
			m.CreationTime = p.CreationTime.UTC()
		}
	}
	for k, v := range am.Annotations {
		name, _ := k.(string)
		if name == "" {
			if s, ok := k.(amqp.Symbol); ok {
				name = string(s)
			}
		}
		switch name {
		case annInterfaceID:
			m.InterfaceID = str(v)
		case AnnComponentName:
			m.ComponentName = str(v)
		}
	}
	for k, v := range am.ApplicationProperties {
		switch k {
		case PropCreationTimeUTC:
			if t, err := time.Parse(time.RFC3339Nano, str(v)); err == nil {
				m.CreationTime = t.UTC()
				continue
			}
		case propOutputName:
			m.OutputName = str(v)
			continue
		}
		if v == nil {
			m.SetNull(k)
			continue
		}
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
		m.Properties[k] = propString(v)
	}
	return m
}

// c2dAMQP is a queued cloud-to-device message as IoT Hub delivers it
// to a device over AMQP: the delivery tag is the lock token's 16 bytes
// (the C# SDK reads the lock token from the tag, AmqpIotMessageConverter.cs,
// and from x-opt-lock-token), the system properties in the properties
// section, iothub-ack and the application properties in the
// application properties, and the sequence number, enqueued time,
// delivery count (and a module's input name) as annotations.
func c2dAMQP(c *registry.C2DMessage, moduleID string) *amqp.Message {
	m := &amqp.Message{
		Properties: &amqp.MessageProperties{},
		Annotations: amqp.Annotations{
			annLockToken:      c.LockToken,
			AnnSequenceNumber: int64(c.SequenceNumber),
			AnnEnqueuedTime:   c.EnqueuedTime.UTC(),
			annDeliveryCount:  int32(c.DeliveryCount),
		},
		Data: [][]byte{c.Body},
	}
	if c.Body == nil {
		m.Data = [][]byte{{}}
	}
	if u, err := uuid.Parse(c.LockToken); err == nil {
		m.DeliveryTag = u[:]
	}
	if moduleID != "" {
		// A message a service sends to a module has no input (only an
		// IoT Edge route gives one), as over MQTT, where the topic's
		// input level is empty; the Node SDK reads the annotation
		// unconditionally (amqp.ts, the "inputMessage" event).
		m.Annotations[annInputName] = ""
	}
	p := m.Properties
	if c.MessageID != "" {
		p.MessageID = c.MessageID
	}
	if c.CorrelationID != "" {
		p.CorrelationID = c.CorrelationID
	}
	if c.UserID != "" {
		p.UserID = []byte(c.UserID)
	}
	if c.To != "" {
		to := c.To
		p.To = &to
	}
	if c.ContentType != "" {
		ct := c.ContentType
		p.ContentType = &ct
	}
	if c.ContentEncoding != "" {
		ce := c.ContentEncoding
		p.ContentEncoding = &ce
	}
	if !c.ExpiryTime.IsZero() {
		exp := c.ExpiryTime.UTC()
		p.AbsoluteExpiryTime = &exp
	}
	if len(c.Properties) > 0 || (c.Ack != "" && c.Ack != message.AckNone) {
		ap := make(map[string]any, len(c.Properties)+1)
		for k, v := range c.Properties {
			ap[k] = v
		}
		if c.Ack != "" && c.Ack != message.AckNone {
			ap["iothub-ack"] = c.Ack
		}
		m.ApplicationProperties = ap
	}
	return m
}
