package amqpfront

import (
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/telemetry"
)

// Message annotations IoT Hub puts on telemetry read from its Event
// Hub-compatible endpoint
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-messages-construct),
// and those Event Hubs adds (azure-sdk-for-python
// sdk/eventhub/azure-eventhub/azure/eventhub/_constants.py).
const (
	AnnDeviceID          = "iothub-connection-device-id"
	AnnModuleID          = "iothub-connection-module-id" // modules only
	AnnAuthMethod        = "iothub-connection-auth-method"
	AnnAuthGenerationID  = "iothub-connection-auth-generation-id"
	AnnEnqueuedTime      = "iothub-enqueuedtime"
	AnnMessageSource     = "iothub-message-source" // "Telemetry"
	AnnInterfaceName     = "iothub-interface-name" // from $.ifid, when set
	AnnComponentName     = "dt-subject"            // from $.sub, when set
	AnnSequenceNumber    = "x-opt-sequence-number" // a long
	AnnOffset            = "x-opt-offset"          // a string
	AnnEventEnqueuedTime = "x-opt-enqueued-time"   // a timestamp
)

// PropCreationTimeUTC is the application property that carries a
// message's $.ctime (RFC 3339) on the Event Hub-compatible endpoint.
const PropCreationTimeUTC = "iothub-creation-time-utc"

const messageSourceTelemetry = "Telemetry"

// authMethod is the iothub-connection-auth-method annotation: a JSON
// object as a string, e.g.
// {"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}.
// X.509 devices get type "x509Certificate" and issuer "external".
func authMethod(ev *telemetry.Event) string {
	scope := "device"
	if ev.ModuleID != "" {
		scope = "module"
	}
	typ, issuer := "sas", "iothub"
	if ev.AuthMethod != "" && ev.AuthMethod != "sas" {
		typ, issuer = "x509Certificate", "external"
	}
	return `{"scope":"` + scope + `","type":"` + typ + `","issuer":"` + issuer + `","acceptingIpFilterRule":null}`
}

// eventMessage is a telemetry event as Event Hubs clients read it: the
// payload in one data section; message-id, correlation-id, user-id,
// content-type and content-encoding in the properties; the device's
// application properties (null ones as null, $.ctime as
// iothub-creation-time-utc); and IoT Hub's and Event Hubs' annotations
// (sequence number as a long, offset as a string, times as
// timestamps).
func eventMessage(ev *telemetry.Event) *amqp.Message {
	m := ev.Message
	ann := amqp.Annotations{
		AnnDeviceID:          ev.DeviceID,
		AnnAuthMethod:        authMethod(ev),
		AnnAuthGenerationID:  ev.GenerationID,
		AnnEnqueuedTime:      ev.EnqueuedTime,
		AnnMessageSource:     messageSourceTelemetry,
		AnnSequenceNumber:    ev.SequenceNumber,
		AnnOffset:            ev.Offset,
		AnnEventEnqueuedTime: ev.EnqueuedTime,
	}
	if ev.ModuleID != "" {
		ann[AnnModuleID] = ev.ModuleID
	}
	out := &amqp.Message{Annotations: ann, Data: [][]byte{{}}}
	if m == nil {
		return out
	}
	if m.Body != nil {
		out.Data[0] = m.Body
	}
	if m.InterfaceID != "" {
		ann[AnnInterfaceName] = m.InterfaceID
	}
	if m.ComponentName != "" {
		ann[AnnComponentName] = m.ComponentName
	}
	p := &amqp.MessageProperties{}
	set := false
	if m.MessageID != "" {
		p.MessageID, set = m.MessageID, true
	}
	if m.CorrelationID != "" {
		p.CorrelationID, set = m.CorrelationID, true
	}
	if m.UserID != "" {
		p.UserID, set = []byte(m.UserID), true
	}
	if m.ContentType != "" {
		ct := m.ContentType
		p.ContentType, set = &ct, true
	}
	if m.ContentEncoding != "" {
		ce := m.ContentEncoding
		p.ContentEncoding, set = &ce, true
	}
	if set {
		out.Properties = p
	}
	if len(m.Properties) > 0 || !m.CreationTime.IsZero() {
		ap := make(map[string]any, len(m.Properties)+1)
		for k, v := range m.Properties {
			if v == "" && m.IsNull(k) {
				ap[k] = nil
			} else {
				ap[k] = v
			}
		}
		if !m.CreationTime.IsZero() {
			ap[PropCreationTimeUTC] = m.CreationTime.UTC().Format(time.RFC3339Nano)
		}
		out.ApplicationProperties = ap
	}
	return out
}

// addRuntimeMetrics adds the delivery annotations Event Hubs sends to
// receivers that desire com.microsoft:enable-receiver-runtime-metric.
func addRuntimeMetrics(m *amqp.Message, info telemetry.PartitionInfo, now time.Time) {
	last := time.Unix(0, 0).UTC()
	if info.Count > 0 {
		last = info.LastEnqueued
	}
	m.DeliveryAnnotations = amqp.Annotations{
		"last_enqueued_sequence_number":   info.Last,
		"last_enqueued_offset":            formatSeq(info.Last),
		"last_enqueued_time_utc":          last,
		"runtime_info_retrieval_time_utc": now.UTC(),
	}
}
