package device

import (
	"fmt"
	"strconv"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/message"
)

// Names of the AMQP message parts IoT Hub's device links use beside
// the properties section: telemetry's creation time and module output
// (application properties) and Plug and Play interface and component
// (annotations), azure-iot-sdk-csharp AmqpIotMessageConverter.cs and
// azure-iot-sdk-node amqp_message.ts; C2D's ack (application property)
// and a module's input (annotation); the method and twin names of
// azure-iot-sdk-node amqp_device_method_client.ts and amqp_twin_client.ts.
const (
	amqpCreationTime = "iothub-creation-time-utc"
	amqpOutputName   = "iothub-outputname"
	amqpAck          = "iothub-ack"
	amqpInterfaceID  = "iothub-interface-id"
	amqpComponent    = "dt-subject"
	amqpInputName    = "x-opt-input-name"
	amqpMethodName   = "IoThub-methodname"
	amqpMethodStatus = "IoThub-status"
	amqpOperation    = "operation"
	amqpResource     = "resource"
	amqpStatus       = "status"
	amqpVersion      = "version"
)

// amqpTelemetry is m as a device sends it on its telemetry link.
func amqpTelemetry(m *message.Message) *amqp.Message {
	am := &amqp.Message{Properties: &amqp.MessageProperties{}, Data: [][]byte{m.Body}}
	if m.Body == nil {
		am.Data = [][]byte{{}}
	}
	p := am.Properties
	if m.MessageID != "" {
		p.MessageID = m.MessageID
	}
	if m.CorrelationID != "" {
		p.CorrelationID = m.CorrelationID
	}
	if m.UserID != "" {
		p.UserID = []byte(m.UserID)
	}
	setStr := func(dst **string, v string) {
		if v != "" {
			*dst = &v
		}
	}
	setStr(&p.To, m.To)
	setStr(&p.ContentType, m.ContentType)
	setStr(&p.ContentEncoding, m.ContentEncoding)
	if !m.ExpiryTime.IsZero() {
		t := m.ExpiryTime.UTC()
		p.AbsoluteExpiryTime = &t
	}
	ap := make(map[string]any, len(m.Properties)+len(m.NullProperties)+2)
	for k, v := range m.Properties {
		ap[k] = v
	}
	for k := range m.NullProperties {
		ap[k] = nil
	}
	if !m.CreationTime.IsZero() {
		ap[amqpCreationTime] = m.CreationTime.UTC().Format(time.RFC3339Nano)
	}
	if m.OutputName != "" {
		ap[amqpOutputName] = m.OutputName
	}
	if len(ap) > 0 {
		am.ApplicationProperties = ap
	}
	if m.InterfaceID != "" || m.ComponentName != "" {
		am.Annotations = amqp.Annotations{}
		if m.InterfaceID != "" {
			am.Annotations[amqpInterfaceID] = m.InterfaceID
		}
		if m.ComponentName != "" {
			am.Annotations[amqpComponent] = m.ComponentName
		}
	}
	return am
}

// amqpC2D reads a cloud-to-device message as the hub delivers it.
func amqpC2D(am *amqp.Message) *message.Message {
	m := &message.Message{Body: amqpBody(am)}
	if p := am.Properties; p != nil {
		m.MessageID = amqpID(p.MessageID)
		m.CorrelationID = amqpID(p.CorrelationID)
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
	}
	for k, v := range am.ApplicationProperties {
		if k == amqpAck {
			m.Ack = amqpString(v)
			continue
		}
		if m.Properties == nil {
			m.Properties = map[string]string{}
		}
		m.Properties[k] = amqpString(v)
	}
	m.InputName = amqpString(annotation(am, amqpInputName))
	return m
}

// annotation returns the message annotation name, whether its key was
// decoded as a string or a symbol.
func annotation(am *amqp.Message, name string) any {
	if v, ok := am.Annotations[name]; ok {
		return v
	}
	return am.Annotations[amqp.Symbol(name)]
}

// amqpBody returns the data sections joined, or a string or binary
// amqp-value.
func amqpBody(am *amqp.Message) []byte {
	switch len(am.Data) {
	case 0:
	case 1:
		return am.Data[0]
	default:
		var out []byte
		for _, d := range am.Data {
			out = append(out, d...)
		}
		return out
	}
	switch v := am.Value.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// amqpID is a message or correlation id as text.
func amqpID(v any) string {
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

// amqpString is a property value as text.
func amqpString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case amqp.Symbol:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}

// amqpInt reads an int annotation or property of any AMQP integer type.
func amqpInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	}
	return 0, false
}
