package message

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The HTTPS device API carries a message's properties in headers
// (https://learn.microsoft.com/rest/api/iothub/device/send-device-event;
// azure-iot-sdk-csharp iothub/device/src/Common/WebApi/CustomHeaderConstants.cs,
// azure-iot-sdk-node device/transport/http/src/http.ts).
const (
	// HTTPAppPrefix prefixes an application property's header name.
	HTTPAppPrefix = "iothub-app-"
	// HTTPBatchContentType is the Content-Type of a batch of messages
	// (a JSON array of HTTPBatchItem).
	HTTPBatchContentType = "application/vnd.microsoft.iothub.json"

	headerMessageID       = "iothub-messageid"
	headerCorrelationID   = "iothub-correlationid"
	headerUserID          = "iothub-userid"
	headerTo              = "iothub-to"
	headerExpiry          = "iothub-expiry"
	headerAck             = "iothub-ack"
	headerContentType     = "iothub-contenttype"
	headerContentEncoding = "iothub-contentencoding"
	headerCreationTime    = "iothub-creationtimeutc"
	headerInterfaceID     = "iothub-interface-id"
	// headerComponent has no prefix: the SDKs send "dt-subject".
	headerComponent = "dt-subject"
)

// EncodeHTTP writes m's system and application properties into h as a
// device's HTTPS request carries them. Application property names are
// sent as they are; HTTP header names are case-insensitive, so the hub
// reads them back in lower case.
func EncodeHTTP(m *Message, h http.Header) {
	for k, v := range m.systemHTTP() {
		h.Set(k, v)
	}
	for k, v := range m.Properties {
		h.Set(HTTPAppPrefix+k, v)
	}
}

func (m *Message) systemHTTP() map[string]string {
	out := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	set(headerMessageID, m.MessageID)
	set(headerCorrelationID, m.CorrelationID)
	set(headerUserID, m.UserID)
	set(headerTo, m.To)
	set(headerAck, m.Ack)
	set(headerContentType, m.ContentType)
	set(headerContentEncoding, m.ContentEncoding)
	set(headerInterfaceID, m.InterfaceID)
	set(headerComponent, m.ComponentName)
	if !m.ExpiryTime.IsZero() {
		out[headerExpiry] = formatTime(m.ExpiryTime)
	}
	if !m.CreationTime.IsZero() {
		out[headerCreationTime] = formatTime(m.CreationTime)
	}
	return out
}

// DecodeHTTP reads a device-to-cloud message's properties from the
// headers of an HTTPS request (the body is not touched). Application
// property names come back in lower case. A time that is not RFC 3339
// gives an error naming the header.
func DecodeHTTP(h http.Header) (*Message, error) {
	pairs := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) > 0 {
			pairs[strings.ToLower(k)] = vs[0]
		}
	}
	return decodeHTTPPairs(pairs)
}

func decodeHTTPPairs(pairs map[string]string) (*Message, error) {
	m := &Message{}
	for k, v := range pairs {
		lk := strings.ToLower(k)
		var err error
		switch lk {
		case headerMessageID:
			m.MessageID = v
		case headerCorrelationID:
			m.CorrelationID = v
		case headerUserID:
			m.UserID = v
		case headerTo:
			// The SDKs set iothub-to to the request's own path
			// (/devices/{id}/messages/events): it names the endpoint, not
			// a property of the message, as in IoT Hub's stored messages.
			if !strings.HasSuffix(strings.ToLower(v), "/messages/events") {
				m.To = v
			}
		case headerAck:
			m.Ack = v
		case headerContentType:
			m.ContentType = v
		case headerContentEncoding:
			m.ContentEncoding = v
		case headerInterfaceID:
			m.InterfaceID = v
		case headerComponent:
			m.ComponentName = v
		case headerExpiry:
			m.ExpiryTime, err = parseTime(v)
		case headerCreationTime:
			m.CreationTime, err = parseTime(v)
		default:
			if name, ok := strings.CutPrefix(lk, HTTPAppPrefix); ok && name != "" {
				if m.Properties == nil {
					m.Properties = map[string]string{}
				}
				m.Properties[name] = v
			}
		}
		if err != nil {
			return nil, fmt.Errorf("message: header %s: %q is not an RFC 3339 time", k, v)
		}
	}
	return m, nil
}

// HTTPBatchItem is one message of a batch (HTTPBatchContentType), as
// the SDKs write it (azure-iot-sdk-node device/transport/http/src/http.ts
// sendEventBatch, azure-iot-sdk-csharp HttpTransportHandler.ToJson,
// azure-iot-sdk-c iothubtransporthttp.c).
type HTTPBatchItem struct {
	// Body is the payload, base64 unless Base64Encoded is false.
	Body string `json:"body"`
	// Base64Encoded says how Body is written; absent means true.
	Base64Encoded *bool `json:"base64Encoded,omitempty"`
	// Properties are application properties (iothub-app-{name}) and
	// system properties under their header names.
	Properties map[string]string `json:"properties,omitempty"`
}

// EncodeHTTPBatch writes messages as a batch body.
func EncodeHTTPBatch(ms []*Message) ([]byte, error) {
	items := make([]HTTPBatchItem, len(ms))
	for i, m := range ms {
		props := m.systemHTTP()
		for k, v := range m.Properties {
			props[HTTPAppPrefix+k] = v
		}
		if len(props) == 0 {
			props = nil
		}
		items[i] = HTTPBatchItem{Body: base64.StdEncoding.EncodeToString(m.Body), Properties: props}
	}
	return json.Marshal(items)
}

// DecodeHTTPBatch reads a batch body. An empty array, a body that is
// not one, or an item whose body is not base64 (when it says it is)
// is an error that names the item.
func DecodeHTTPBatch(body []byte) ([]*Message, error) {
	var items []HTTPBatchItem
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("message: a batch is a JSON array of {\"body\", \"properties\"}: %w", err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("message: the batch holds no message")
	}
	out := make([]*Message, len(items))
	for i, it := range items {
		m, err := decodeHTTPPairs(it.Properties)
		if err != nil {
			return nil, fmt.Errorf("message: batch item %d: %w", i, err)
		}
		if it.Base64Encoded == nil || *it.Base64Encoded {
			m.Body, err = base64.StdEncoding.DecodeString(it.Body)
			if err != nil {
				return nil, fmt.Errorf("message: batch item %d: body is not base64 (set \"base64Encoded\": false for text): %w", i, err)
			}
		} else {
			m.Body = []byte(it.Body)
		}
		out[i] = m
	}
	return out, nil
}
