package device

import (
	"context"
	"fmt"
	"strings"

	"github.com/iotctl/iotctl/pkg/message"
)

// Conn is a device (or module) client over any of IoT Hub's device
// transports: MQTT (*Client), AMQP 1.0 or HTTPS. Open makes one for
// Options.Transport. All methods are safe for concurrent use.
//
// What a transport cannot do it says with an error wrapping
// ErrNotSupported: over HTTPS, IoT Hub has no direct methods and no
// twin (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-protocols),
// so GetTwin and UpdateReported fail and method and desired handlers
// are never called.
type Conn interface {
	// DeviceID returns the device id the client connects as.
	DeviceID() string
	// ModuleID returns the module id, "" for a device.
	ModuleID() string
	// Connect makes the first connection (see Client.Connect).
	Connect(ctx context.Context) error
	// SendEvent sends one device-to-cloud message and returns when the
	// hub took it.
	SendEvent(ctx context.Context, m *message.Message) error
	// SetC2DHandler sets the cloud-to-device callback; the message is
	// settled as Options.C2DSettle says when it returns.
	SetC2DHandler(fn C2DHandler)
	// HandleMethod registers a direct-method handler.
	HandleMethod(name string, fn MethodHandler)
	// SetDefaultMethodHandler sets the handler of methods without one.
	SetDefaultMethodHandler(fn MethodHandler)
	// SetDesiredHandler sets the desired-properties callback.
	SetDesiredHandler(fn DesiredHandler)
	// GetTwin reads the device's twin.
	GetTwin(ctx context.Context) (*Twin, error)
	// UpdateReported patches the reported properties.
	UpdateReported(ctx context.Context, patch any) (int64, error)
	// Connected reports whether the client is connected now.
	Connected() bool
	// Done is closed when the client stops for good.
	Done() <-chan struct{}
	// Err says why the client stopped, nil while it runs.
	Err() error
	// Close stops the client; it is idempotent.
	Close(ctx context.Context) error
}

var _ Conn = (*Client)(nil)

// Open checks opts and returns a client, not connected yet, for
// opts.Transport: a *Client for MQTT, else the AMQP or HTTPS client.
// Errors are those of New.
func Open(opts *Options) (Conn, error) {
	if opts == nil {
		return New(opts)
	}
	switch opts.Transport {
	case TransportMQTT:
		return New(opts)
	case TransportAMQP:
		return newAMQP(opts)
	case TransportHTTPS:
		return newHTTPS(opts)
	}
	return nil, fmt.Errorf("device: transport %d: use TransportMQTT, TransportAMQP or TransportHTTPS", opts.Transport)
}

// Transport is the protocol a device speaks to the hub.
type Transport int

// The transports. The zero value is MQTT.
const (
	// TransportMQTT is MQTT 3.1.1 on TLS (port 8883), or over a
	// WebSocket with Options.WebSocket.
	TransportMQTT Transport = iota
	// TransportAMQP is AMQP 1.0 on TLS (port 5671), or over a
	// WebSocket with Options.WebSocket, authenticated by a CBS
	// put-token per device.
	TransportAMQP
	// TransportHTTPS is IoT Hub's device REST API on port 443:
	// telemetry and cloud-to-device messages polled, without direct
	// methods or twin.
	TransportHTTPS
)

var transportNames = [...]string{"mqtt", "amqp", "https"}

// TransportNames are the names ParseTransport takes, in order.
var TransportNames = transportNames[:]

// String returns "mqtt", "amqp" or "https".
func (t Transport) String() string {
	if t >= 0 && int(t) < len(transportNames) {
		return transportNames[t]
	}
	return fmt.Sprintf("transport(%d)", int(t))
}

// ParseTransport accepts "mqtt", "amqp" and "https" in any case ("" is
// MQTT).
func ParseTransport(s string) (Transport, error) {
	if s == "" {
		return TransportMQTT, nil
	}
	for i, n := range transportNames {
		if strings.EqualFold(s, n) {
			return Transport(i), nil
		}
	}
	return 0, fmt.Errorf("device: transport %q: use mqtt, amqp or https", s)
}

// Settle is what a client does with a cloud-to-device message once its
// handler returned (azure-iot-sdk-node device/core/src/device_client.ts
// complete, reject, abandon).
type Settle int

// The settlements. The zero value completes.
const (
	// SettleComplete removes the message from the device's queue; with
	// an ack of "positive" or "full" the service gets a Success feedback.
	SettleComplete Settle = iota
	// SettleReject removes the message as rejected (feedback Rejected
	// for ack "negative" or "full"). Not possible over MQTT.
	SettleReject
	// SettleAbandon puts the message back in the queue to be delivered
	// again, its delivery count raised. Not possible over MQTT.
	SettleAbandon
)

var settleNames = [...]string{"complete", "reject", "abandon"}

// SettleNames are the names ParseSettle takes, in order.
var SettleNames = settleNames[:]

// String returns "complete", "reject" or "abandon".
func (s Settle) String() string {
	if s >= 0 && int(s) < len(settleNames) {
		return settleNames[s]
	}
	return fmt.Sprintf("settle(%d)", int(s))
}

// ParseSettle accepts "complete", "reject" and "abandon" in any case
// ("" is complete).
func ParseSettle(s string) (Settle, error) {
	if s == "" {
		return SettleComplete, nil
	}
	for i, n := range settleNames {
		if strings.EqualFold(s, n) {
			return Settle(i), nil
		}
	}
	return 0, fmt.Errorf("device: C2D settlement %q: use complete, reject or abandon", s)
}
