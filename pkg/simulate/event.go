package simulate

import (
	"encoding/json"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
)

// The event types, Event.Type. New types and fields may be added;
// existing ones keep their meaning.
const (
	EventConnected    = "connected"    // a device connected (again)
	EventDisconnected = "disconnected" // a device lost its connection (Error says why) or closed
	EventReconnecting = "reconnecting" // a device is about to reconnect (Attempt, DelaySeconds, Reason)
	EventSent         = "sent"         // a message was acknowledged (QoS 1) or written (QoS 0)
	EventMethod       = "method"       // a direct method was answered
	EventTwin         = "twin"         // reported properties were set, or a desired change was echoed
	EventC2D          = "c2d"          // a cloud-to-device message arrived
	EventError        = "error"        // something failed (Error); the simulation goes on
	EventStats        = "stats"        // periodic counters (Stats)
	EventSummary      = "summary"      // final counters (Stats), the last event
	// EventProvisioned (provision.go): DPS assigned a fleet device.
)

// Event is one thing that happened in a simulation, as written to the
// JSON Lines output. Fields that do not apply to a type are omitted.
type Event struct {
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	DeviceID string    `json:"deviceId,omitempty"`

	// Seq is the message number of the device (sent).
	Seq int64 `json:"seq,omitempty"`
	// Body is the message body (sent, c2d): the JSON itself when it is
	// valid JSON, else a JSON string.
	Body json.RawMessage `json:"body,omitempty"`
	// Properties are the application properties (sent, c2d). A sent
	// event's map is shared with other events: read it, never change it.
	Properties map[string]string `json:"properties,omitempty"`
	// MessageID is $.mid (c2d).
	MessageID string `json:"messageId,omitempty"`

	// Method is the method name, Payload its request payload, Status
	// and Response the answer (method).
	Method   string          `json:"method,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	Status   int             `json:"status,omitempty"`
	Response json.RawMessage `json:"response,omitempty"`
	// IntervalSeconds is the telemetry interval after a successful
	// SetTelemetryInterval (method).
	IntervalSeconds float64 `json:"intervalSeconds,omitempty"`

	// Desired is a desired-properties patch and Version its version;
	// Reported is what the device reported and ReportedVersion the
	// version the hub gave it (twin).
	Desired         json.RawMessage `json:"desired,omitempty"`
	Version         int64           `json:"version,omitempty"`
	Reported        json.RawMessage `json:"reported,omitempty"`
	ReportedVersion int64           `json:"reportedVersion,omitempty"`

	// Reason, Attempt and DelaySeconds describe connection changes;
	// Reason is written in words ("connection lost", "token renewal").
	Reason       device.Reason `json:"reason,omitempty"`
	Attempt      int           `json:"attempt,omitempty"`
	DelaySeconds float64       `json:"delaySeconds,omitempty"`
	// Error is the error message (error, disconnected, and failed
	// twin updates).
	Error string `json:"error,omitempty"`

	// AssignedHub is the hub DPS assigned the device (provisioned).
	AssignedHub string `json:"assignedHub,omitempty"`

	// Stats are the counters (stats, summary).
	Stats *Stats `json:"stats,omitempty"`
}

// Stats are a simulation's counters. Read them at any time with
// Fleet.Stats.
type Stats struct {
	// Devices is the number of simulated devices.
	Devices int `json:"devices"`
	// Connected is how many are connected now.
	Connected int64 `json:"connected"`
	// Sent is how many messages were handed to the client.
	Sent int64 `json:"sent"`
	// Acked is how many of them the hub acknowledged (QoS 1) or were
	// written (QoS 0).
	Acked int64 `json:"acked"`
	// Errors counts failed sends, connects and twin updates.
	Errors int64 `json:"errors"`
	// Methods counts direct-method calls answered.
	Methods int64 `json:"methods"`
	// Twin counts desired changes received.
	Twin int64 `json:"twin"`
	// C2D counts cloud-to-device messages received.
	C2D int64 `json:"c2d"`
	// Reconnects counts reconnections after a lost connection or for
	// token renewal.
	Reconnects int64 `json:"reconnects"`
	// Provisioned counts the devices DPS assigned (a fleet that
	// onboards through DPS, Options.Provision).
	Provisioned int64 `json:"provisioned,omitempty"`
	// ElapsedSeconds is the time since Run started.
	ElapsedSeconds float64 `json:"elapsedSeconds"`
	// MsgsPerSecond is the acknowledged messages per second: over the
	// last stats interval while running, over the whole run in the
	// summary.
	MsgsPerSecond float64 `json:"msgsPerSecond"`
}

// BodyJSON returns b as a JSON value for Event.Body: b itself if it is
// valid JSON, else b as a JSON string; nil for an empty b.
func BodyJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	s, _ := json.Marshal(string(b))
	return s
}
