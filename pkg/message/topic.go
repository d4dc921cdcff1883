package message

import "strconv"

// Subscription filters of the $iothub topics. They are the same for every
// device and module.
const (
	// MethodRequestFilter receives direct-method requests.
	MethodRequestFilter = "$iothub/methods/POST/#"
	// TwinResponseFilter receives the responses to twin GET and PATCH
	// requests.
	TwinResponseFilter = "$iothub/twin/res/#"
	// TwinDesiredFilter receives desired-property patches.
	TwinDesiredFilter = "$iothub/twin/PATCH/properties/desired/#"
)

// Kind is the kind of an IoT Hub MQTT topic. The zero value is
// KindUnknown.
type Kind int

// The topic kinds. The comment on each gives its topic and who publishes
// to it.
const (
	// KindUnknown is not an IoT Hub topic this package knows.
	KindUnknown Kind = iota
	// KindTelemetry is devices/{id}/messages/events/{bag} or
	// devices/{id}/modules/{mid}/messages/events/{bag} (device to hub).
	KindTelemetry
	// KindC2D is devices/{id}/messages/devicebound/{bag} (hub to device).
	KindC2D
	// KindModuleInput is devices/{id}/modules/{mid}/inputs/{input}/{bag}
	// (hub to module).
	KindModuleInput
	// KindMethodRequest is $iothub/methods/POST/{name}/?$rid={rid} (hub to
	// device).
	KindMethodRequest
	// KindMethodResponse is $iothub/methods/res/{status}/?$rid={rid}
	// (device to hub).
	KindMethodResponse
	// KindTwinGet is $iothub/twin/GET/?$rid={rid} (device to hub).
	KindTwinGet
	// KindTwinPatchReported is
	// $iothub/twin/PATCH/properties/reported/?$rid={rid} (device to hub).
	KindTwinPatchReported
	// KindTwinResponse is $iothub/twin/res/{status}/?$rid={rid}[&$version={v}]
	// (hub to device).
	KindTwinResponse
	// KindTwinDesired is $iothub/twin/PATCH/properties/desired/?$version={v}
	// (hub to device).
	KindTwinDesired
)

var kindNames = [...]string{
	KindUnknown:           "unknown",
	KindTelemetry:         "telemetry",
	KindC2D:               "c2d",
	KindModuleInput:       "module-input",
	KindMethodRequest:     "method-request",
	KindMethodResponse:    "method-response",
	KindTwinGet:           "twin-get",
	KindTwinPatchReported: "twin-patch-reported",
	KindTwinResponse:      "twin-response",
	KindTwinDesired:       "twin-desired",
}

// String returns a short lowercase name such as "telemetry" or
// "method-request"; out-of-range values give "kind(N)".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// FromDevice reports whether devices publish topics of kind k
// (telemetry, method responses, twin GET and twin PATCH reported).
func (k Kind) FromDevice() bool {
	switch k {
	case KindTelemetry, KindMethodResponse, KindTwinGet, KindTwinPatchReported:
		return true
	}
	return false
}

// Topic is a parsed IoT Hub MQTT topic. Which fields are set depends on
// Kind; the others are zero.
type Topic struct {
	// Kind says which topic this is.
	Kind Kind
	// DeviceID is set for KindTelemetry, KindC2D and KindModuleInput.
	DeviceID string
	// ModuleID is set for module telemetry and KindModuleInput.
	ModuleID string
	// Message holds the decoded property bag of KindTelemetry, KindC2D
	// and KindModuleInput (Body nil; for KindModuleInput, InputName is
	// the input the topic names). It is nil for the other kinds.
	Message *Message
	// MethodName is the method of a KindMethodRequest, percent-decoded.
	MethodName string
	// RequestID is the opaque $rid of the method and twin request and
	// response kinds, as it appears in the topic.
	RequestID string
	// Status is the status of KindMethodResponse and KindTwinResponse.
	Status int
	// Version is the $version of KindTwinResponse and KindTwinDesired;
	// 0 when the topic has none. IoT Hub twin versions start at 1.
	Version int64
}

// String formats t as a topic; ParseTopic(t.String()) gives t back for
// any t that ParseTopic returned. Unlike C2DTopic it does not add a
// default $.to. It returns "" for KindUnknown and out-of-range kinds.
func (t *Topic) String() string {
	switch t.Kind {
	case KindTelemetry:
		return TelemetryTopic(t.DeviceID, t.ModuleID, t.Message)
	case KindC2D:
		return deviceTopic(t.DeviceID, "", "/messages/devicebound/", t.Message)
	case KindModuleInput:
		var input string
		if t.Message != nil {
			input = t.Message.InputName
		}
		return ModuleInputTopic(t.DeviceID, t.ModuleID, input, t.Message)
	case KindMethodRequest:
		return MethodRequestTopic(t.MethodName, t.RequestID)
	case KindMethodResponse:
		return MethodResponseTopic(t.Status, t.RequestID)
	case KindTwinGet:
		return TwinGetTopic(t.RequestID)
	case KindTwinPatchReported:
		return TwinPatchReportedTopic(t.RequestID)
	case KindTwinResponse:
		return TwinResponseTopic(t.Status, t.RequestID, t.Version)
	case KindTwinDesired:
		return TwinDesiredTopic(t.Version)
	}
	return ""
}

// The builders below write device and module IDs, input names and request
// IDs as they are: IoT Hub topics never percent-encode them. The caller
// must pass valid IoT Hub IDs (no '/'; MQTT forbids '+' and '#' in topic
// names even though IoT Hub allows them in IDs). A nil *Message is an
// empty message.

// TelemetryTopic returns the topic a device (moduleID "") or a module
// publishes m on: devices/{deviceID}/messages/events/{bag} or
// devices/{deviceID}/modules/{moduleID}/messages/events/{bag}, with the
// bag from EncodeBag and no "?". An empty bag leaves the trailing "/".
func TelemetryTopic(deviceID, moduleID string, m *Message) string {
	return deviceTopic(deviceID, moduleID, "/messages/events/", m)
}

// C2DTopic returns the topic the hub delivers a cloud-to-device message
// to: devices/{deviceID}/messages/devicebound/{bag}. When m.To is empty
// the bag gets the $.to IoT Hub sets, /devices/{deviceID}/messages/devicebound
// (m itself is not changed).
func C2DTopic(deviceID string, m *Message) string {
	if m == nil || m.To == "" {
		c := Message{}
		if m != nil {
			c = *m
		}
		c.To = "/devices/" + deviceID + "/messages/devicebound"
		m = &c
	}
	return deviceTopic(deviceID, "", "/messages/devicebound/", m)
}

// C2DFilter returns the filter a device subscribes to for cloud-to-device
// messages: devices/{deviceID}/messages/devicebound/#.
func C2DFilter(deviceID string) string {
	return "devices/" + deviceID + "/messages/devicebound/#"
}

// ModuleInputTopic returns the topic the hub delivers a message for a
// module's input to:
// devices/{deviceID}/modules/{moduleID}/inputs/{inputName}/{bag}.
// m.InputName is not used (it is not a bag property).
func ModuleInputTopic(deviceID, moduleID, inputName string, m *Message) string {
	return deviceTopic(deviceID, moduleID, "/inputs/"+inputName+"/", m)
}

// ModuleInputFilter returns the filter a module subscribes to for its
// inputs: devices/{deviceID}/modules/{moduleID}/inputs/#.
func ModuleInputFilter(deviceID, moduleID string) string {
	return "devices/" + deviceID + "/modules/" + moduleID + "/inputs/#"
}

// deviceTopic writes devices/{deviceID}[/modules/{moduleID}]{middle}{bag}.
func deviceTopic(deviceID, moduleID, middle string, m *Message) string {
	b := make([]byte, 0, 64+len(deviceID)+len(moduleID)+len(middle)+bagSizeHint(m))
	b = append(b, "devices/"...)
	b = append(b, deviceID...)
	if moduleID != "" {
		b = append(b, "/modules/"...)
		b = append(b, moduleID...)
	}
	b = append(b, middle...)
	b = AppendBag(b, m)
	return string(b)
}

// bagSizeHint guesses the encoded bag length of m to size buffers.
func bagSizeHint(m *Message) int {
	if m == nil {
		return 0
	}
	return m.Size() - len(m.Body) + 8*len(m.Properties) + 64
}

// MethodRequestTopic returns the topic the hub sends a direct-method
// request on: $iothub/methods/POST/{name}/?$rid={requestID}. Bytes of name
// that cannot stand in a topic level ('/', '?', '#', '+', '%', space,
// control and non-ASCII bytes) are percent-encoded; ParseTopic decodes
// them. Method names IoT Hub accepts never need it.
func MethodRequestTopic(name, requestID string) string {
	b := make([]byte, 0, 32+len(name)+len(requestID))
	b = append(b, "$iothub/methods/POST/"...)
	b = appendLevelEscaped(b, name)
	b = append(b, "/?$rid="...)
	b = append(b, requestID...)
	return string(b)
}

// MethodResponseTopic returns the topic a device answers a direct method
// on: $iothub/methods/res/{status}/?$rid={requestID}.
func MethodResponseTopic(status int, requestID string) string {
	return "$iothub/methods/res/" + strconv.Itoa(status) + "/?$rid=" + requestID
}

// TwinGetTopic returns the topic a device asks for its twin on:
// $iothub/twin/GET/?$rid={requestID}.
func TwinGetTopic(requestID string) string {
	return "$iothub/twin/GET/?$rid=" + requestID
}

// TwinPatchReportedTopic returns the topic a device updates its reported
// properties on: $iothub/twin/PATCH/properties/reported/?$rid={requestID}.
func TwinPatchReportedTopic(requestID string) string {
	return "$iothub/twin/PATCH/properties/reported/?$rid=" + requestID
}

// TwinResponseTopic returns the topic the hub answers a twin request on:
// $iothub/twin/res/{status}/?$rid={requestID}, followed by
// &$version={version} when version > 0 (the new reported version after a
// PATCH; GET responses and errors have none).
func TwinResponseTopic(status int, requestID string, version int64) string {
	s := "$iothub/twin/res/" + strconv.Itoa(status) + "/?$rid=" + requestID
	if version > 0 {
		s += "&$version=" + strconv.FormatInt(version, 10)
	}
	return s
}

// TwinDesiredTopic returns the topic the hub sends a desired-property
// patch on: $iothub/twin/PATCH/properties/desired/?$version={version}.
func TwinDesiredTopic(version int64) string {
	return "$iothub/twin/PATCH/properties/desired/?$version=" + strconv.FormatInt(version, 10)
}

// appendLevelEscaped appends s with the bytes that cannot stand in an
// MQTT topic level, or would be misread by ParseTopic, written as %XX.
func appendLevelEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '+' || c == '%':
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return b
}
