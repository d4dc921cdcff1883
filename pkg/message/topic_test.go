package message

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// parseTests are the topics of IoT Hub's MQTT docs
// (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub), of
// the SDKs' sources, tests and logs, and those the Node SDK sends
// (test/interop), plus the tolerant forms ParseTopic accepts.
var parseTests = []struct {
	name  string
	topic string
	want  *Topic
}{
	// Telemetry: the docs; the topic azure-iot-sdk-python's
	// azure-iot-device/azure/iot/device/iothub/pipeline/mqtt_topic_iothub.py
	// encodes for the quickstart's message; a C SDK log line
	// (Azure/azure-iot-sdk-c issue #902).
	{
		name:  "telemetry, python computed example",
		topic: "devices/d/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false",
		want: &Topic{Kind: KindTelemetry, DeviceID: "d", Message: &Message{
			ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"temperatureAlert": "false"},
		}},
	},
	{
		name:  "telemetry with an empty bag",
		topic: "devices/dev1/messages/events/",
		want:  &Topic{Kind: KindTelemetry, DeviceID: "dev1", Message: &Message{}},
	},
	{
		name:  "telemetry, csdk log line",
		topic: "devices/device_twin/messages/events/temperatureAlert=false",
		want: &Topic{Kind: KindTelemetry, DeviceID: "device_twin", Message: &Message{
			Properties: map[string]string{"temperatureAlert": "false"},
		}},
	},
	{
		name:  "telemetry, docs routing example with unencoded dollar",
		topic: "devices/dev1/messages/events/$.ct=application%2Fjson%3Bcharset%3Dutf-8",
		want: &Topic{Kind: KindTelemetry, DeviceID: "dev1", Message: &Message{
			ContentType: "application/json;charset=utf-8",
		}},
	},
	{
		name:  "module telemetry",
		topic: "devices/dev1/modules/mod1/messages/events/%24.on=out1&a=b",
		want: &Topic{Kind: KindTelemetry, DeviceID: "dev1", ModuleID: "mod1", Message: &Message{
			OutputName: "out1", Properties: map[string]string{"a": "b"},
		}},
	},
	{
		name:  "telemetry bag with a leading question mark",
		topic: "devices/dev1/messages/events/?a=1",
		want:  &Topic{Kind: KindTelemetry, DeviceID: "dev1", Message: &Message{Properties: map[string]string{"a": "1"}}},
	},
	{
		name:  "telemetry without the trailing slash",
		topic: "devices/dev1/messages/events",
		want:  &Topic{Kind: KindTelemetry, DeviceID: "dev1", Message: &Message{}},
	},
	{
		name:  "telemetry bag with a raw slash",
		topic: "devices/dev1/messages/events/a=b/c",
		want:  &Topic{Kind: KindTelemetry, DeviceID: "dev1", Message: &Message{Properties: map[string]string{"a": "b/c"}}},
	},
	{
		name:  "device ID is not percent-decoded",
		topic: "devices/a%20b?c/messages/events/",
		want:  &Topic{Kind: KindTelemetry, DeviceID: "a%20b?c", Message: &Message{}},
	},
	{
		name:  "telemetry with times",
		topic: "devices/d/messages/events/%24.exp=2021-04-21T11%3A30%3A16Z&%24.ctime=2021-04-21T11%3A00%3A00.25Z",
		want: &Topic{Kind: KindTelemetry, DeviceID: "d", Message: &Message{
			ExpiryTime:   time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC),
			CreationTime: time.Date(2021, 4, 21, 11, 0, 0, 250000000, time.UTC),
		}},
	},
	// Cloud-to-device: azure-iot-sdk-c
	// iothub_client/tests/iothubtransport_mqtt_common_ut/iothubtransport_mqtt_common_ut.c,
	// azure-iot-sdk-python tests/unit/iothub/pipeline/test_mqtt_topic_iothub.py,
	// amenzhinsky/iothub iotdevice/transport/mqtt/mqtt.go, and the docs.
	{
		name: "c2d, csdk example with null system properties",
		topic: "devices/myDeviceId/messages/devicebound/iothub-ack=Full&propName=PropValue&DeviceInfo=smokeTest" +
			"&%24.to=%2Fdevices%2FmyDeviceId%2Fmessages%2FdeviceBound&%24.cid&%24.uid",
		want: &Topic{Kind: KindC2D, DeviceID: "myDeviceId", Message: &Message{
			Ack: "Full", To: "/devices/myDeviceId/messages/deviceBound",
			Properties: map[string]string{"propName": "PropValue", "DeviceInfo": "smokeTest"},
		}},
	},
	{
		name:  "c2d, pydev example",
		topic: "devices/fake_device/messages/devicebound/%24.mid=6b822696-f75a-46f5-8b02-0680db65abf5&%24.to=%2Fdevices%2Ffake_device%2Fmessages%2Fdevicebound",
		want: &Topic{Kind: KindC2D, DeviceID: "fake_device", Message: &Message{
			MessageID: "6b822696-f75a-46f5-8b02-0680db65abf5", To: "/devices/fake_device/messages/devicebound",
		}},
	},
	{
		name:  "c2d, golib example",
		topic: "devices/dev1/messages/devicebound/%24.to=%2Fdevices%2Fdev1%2Fmessages%2FdeviceBound&a=b&b=c",
		want: &Topic{Kind: KindC2D, DeviceID: "dev1", Message: &Message{
			To: "/devices/dev1/messages/deviceBound", Properties: map[string]string{"a": "b", "b": "c"},
		}},
	},
	{
		name:  "c2d, docs null and empty values after a question mark",
		topic: "devices/dev1/messages/devicebound/?prop1&prop2=&prop3=a%20string",
		want: &Topic{Kind: KindC2D, DeviceID: "dev1", Message: &Message{
			Properties:     map[string]string{"prop1": "", "prop2": "", "prop3": "a string"},
			NullProperties: map[string]bool{"prop1": true},
		}},
	},
	{
		name:  "module input",
		topic: "devices/dev1/modules/mod1/inputs/input1/%24.mid=1&k=v",
		want: &Topic{Kind: KindModuleInput, DeviceID: "dev1", ModuleID: "mod1", Message: &Message{
			MessageID: "1", InputName: "input1", Properties: map[string]string{"k": "v"},
		}},
	},
	{
		name:  "module input without a bag",
		topic: "devices/dev1/modules/mod1/inputs/input1",
		want:  &Topic{Kind: KindModuleInput, DeviceID: "dev1", ModuleID: "mod1", Message: &Message{InputName: "input1"}},
	},
	// Direct methods, as the docs give them.
	{
		name:  "method request",
		topic: "$iothub/methods/POST/SetTelemetryInterval/?$rid=42",
		want:  &Topic{Kind: KindMethodRequest, MethodName: "SetTelemetryInterval", RequestID: "42"},
	},
	{
		name:  "method request with an escaped name",
		topic: "$iothub/methods/POST/a%2Fb%20c/?$rid=1",
		want:  &Topic{Kind: KindMethodRequest, MethodName: "a/b c", RequestID: "1"},
	},
	{
		name:  "method request with a raw percent in the name",
		topic: "$iothub/methods/POST/100%/?$rid=1",
		want:  &Topic{Kind: KindMethodRequest, MethodName: "100%", RequestID: "1"},
	},
	{
		name:  "method request without the slash before the query",
		topic: "$iothub/methods/POST/reboot?$rid=ab",
		want:  &Topic{Kind: KindMethodRequest, MethodName: "reboot", RequestID: "ab"},
	},
	{
		name:  "method response",
		topic: "$iothub/methods/res/200/?$rid=42",
		want:  &Topic{Kind: KindMethodResponse, Status: 200, RequestID: "42"},
	},
	{
		name:  "method response with a negative status and an encoded rid key",
		topic: "$iothub/methods/res/-1/?%24rid=x",
		want:  &Topic{Kind: KindMethodResponse, Status: -1, RequestID: "x"},
	},
	// Device twin, as the docs give it and the Node SDK sends it.
	{
		name:  "twin get",
		topic: "$iothub/twin/GET/?$rid=0f8a2c1e-7b7c-4c2e-9d1a-1f2e3d4c5b6a",
		want:  &Topic{Kind: KindTwinGet, RequestID: "0f8a2c1e-7b7c-4c2e-9d1a-1f2e3d4c5b6a"},
	},
	{
		name:  "twin get response",
		topic: "$iothub/twin/res/200/?$rid=7",
		want:  &Topic{Kind: KindTwinResponse, Status: 200, RequestID: "7"},
	},
	{
		name:  "twin patch reported",
		topic: "$iothub/twin/PATCH/properties/reported/?$rid=8",
		want:  &Topic{Kind: KindTwinPatchReported, RequestID: "8"},
	},
	{
		name:  "twin patch response with version",
		topic: "$iothub/twin/res/204/?$rid=8&$version=2",
		want:  &Topic{Kind: KindTwinResponse, Status: 204, RequestID: "8", Version: 2},
	},
	{
		name:  "twin response, unknown query keys ignored",
		topic: "$iothub/twin/res/429/?$rid=9&foo=bar",
		want:  &Topic{Kind: KindTwinResponse, Status: 429, RequestID: "9"},
	},
	{
		name:  "desired properties notification",
		topic: "$iothub/twin/PATCH/properties/desired/?$version=5",
		want:  &Topic{Kind: KindTwinDesired, Version: 5},
	},
	// What the Node SDK's device client (azure-iot-device-mqtt 1.16.4) sends
	// and parses in test/interop.
	{
		name:  "node telemetry",
		topic: "devices/dev1/messages/events/%24.mid=msg-abc&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c",
		want: &Topic{Kind: KindTelemetry, DeviceID: "dev1", Message: &Message{
			MessageID: "msg-abc", CorrelationID: "corr-1", ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"alert": "high", "sp ace": "a/b&c"},
		}},
	},
	{
		name:  "node c2d",
		topic: "devices/dev1/messages/devicebound/%24.mid=msg-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound&color=red",
		want: &Topic{Kind: KindC2D, DeviceID: "dev1", Message: &Message{
			MessageID: "msg-1", To: "/devices/dev1/messages/devicebound", Properties: map[string]string{"color": "red"},
		}},
	},
	{
		name:  "node twin get with uuid",
		topic: "$iothub/twin/GET/?$rid=3b5c8e1a-9f0e-4d6b-a2c4-5e7f9a1b3c5d",
		want:  &Topic{Kind: KindTwinGet, RequestID: "3b5c8e1a-9f0e-4d6b-a2c4-5e7f9a1b3c5d"},
	},
}

func TestParseTopic(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopic(tt.topic)
			if err != nil {
				t.Fatalf("ParseTopic(%q) error %v", tt.topic, err)
			}
			if !sameTopic(got, tt.want) {
				t.Errorf("ParseTopic(%q) = %+v (message %+v); want %+v (message %+v)", tt.topic, got, got.Message, tt.want, tt.want.Message)
			}
		})
	}
}

func TestTopicStringRoundTrip(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.want.String()
			got, err := ParseTopic(s)
			if err != nil {
				t.Fatalf("ParseTopic(%q) error %v", s, err)
			}
			if !sameTopic(got, tt.want) {
				t.Errorf("ParseTopic(%q) = %+v; want %+v", s, got, tt.want)
			}
		})
	}
}

func TestBuilders(t *testing.T) {
	node := &Message{
		MessageID: "msg-abc", CorrelationID: "corr-1", ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: map[string]string{"alert": "high", "sp ace": "a/b&c"},
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"telemetry, python computed example",
			TelemetryTopic("d", "", &Message{ContentType: "application/json", ContentEncoding: "utf-8",
				Properties: map[string]string{"temperatureAlert": "false"}}),
			"devices/d/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false"},
		{"telemetry, node example",
			TelemetryTopic("dev1", "", node),
			"devices/dev1/messages/events/%24.mid=msg-abc&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c"},
		{"telemetry, nil message keeps the trailing slash", TelemetryTopic("dev1", "", nil), "devices/dev1/messages/events/"},
		{"module telemetry", TelemetryTopic("dev1", "mod1", &Message{OutputName: "out1"}),
			"devices/dev1/modules/mod1/messages/events/%24.on=out1"},
		{"c2d adds the default to, node example",
			C2DTopic("dev1", &Message{MessageID: "msg-1", Properties: map[string]string{"color": "red"}}),
			"devices/dev1/messages/devicebound/%24.mid=msg-1&%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound&color=red"},
		{"c2d keeps an explicit to", C2DTopic("dev1", &Message{To: "/x", Ack: AckFull}),
			"devices/dev1/messages/devicebound/%24.to=%2Fx&iothub-ack=full"},
		{"c2d nil message", C2DTopic("dev1", nil),
			"devices/dev1/messages/devicebound/%24.to=%2Fdevices%2Fdev1%2Fmessages%2Fdevicebound"},
		{"c2d filter", C2DFilter("dev1"), "devices/dev1/messages/devicebound/#"},
		{"module input", ModuleInputTopic("dev1", "mod1", "input1", &Message{MessageID: "1"}),
			"devices/dev1/modules/mod1/inputs/input1/%24.mid=1"},
		{"module input filter", ModuleInputFilter("dev1", "mod1"), "devices/dev1/modules/mod1/inputs/#"},
		{"method request", MethodRequestTopic("SetTelemetryInterval", "42"), "$iothub/methods/POST/SetTelemetryInterval/?$rid=42"},
		{"method request escapes what a topic level cannot hold", MethodRequestTopic("a/b c%#+?é", "1"),
			"$iothub/methods/POST/a%2Fb%20c%25%23%2B%3F%C3%A9/?$rid=1"},
		{"method request keeps other punctuation", MethodRequestTopic("do-it_now.v2!*~", "1"),
			"$iothub/methods/POST/do-it_now.v2!*~/?$rid=1"},
		{"method response", MethodResponseTopic(200, "42"), "$iothub/methods/res/200/?$rid=42"},
		{"twin get", TwinGetTopic("r1"), "$iothub/twin/GET/?$rid=r1"},
		{"twin patch reported", TwinPatchReportedTopic("r2"), "$iothub/twin/PATCH/properties/reported/?$rid=r2"},
		{"twin get response has no version", TwinResponseTopic(200, "r1", 0), "$iothub/twin/res/200/?$rid=r1"},
		{"twin patch response has a version", TwinResponseTopic(204, "r2", 2), "$iothub/twin/res/204/?$rid=r2&$version=2"},
		{"twin desired", TwinDesiredTopic(5), "$iothub/twin/PATCH/properties/desired/?$version=5"},
		{"method request filter", MethodRequestFilter, "$iothub/methods/POST/#"},
		{"twin response filter", TwinResponseFilter, "$iothub/twin/res/#"},
		{"twin desired filter", TwinDesiredFilter, "$iothub/twin/PATCH/properties/desired/#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q; want %q", tt.got, tt.want)
			}
		})
	}
}

func TestC2DTopicDoesNotChangeMessage(t *testing.T) {
	m := &Message{MessageID: "1"}
	C2DTopic("dev1", m)
	if m.To != "" {
		t.Errorf("C2DTopic set m.To = %q; want it unchanged", m.To)
	}
}

func TestMethodNameRoundTrip(t *testing.T) {
	for _, name := range []string{"SetTelemetryInterval", "a/b c", "100%", "%25", "é?#+", "\x00\x7f"} {
		topic := MethodRequestTopic(name, "1")
		got, err := ParseTopic(topic)
		if err != nil || got.MethodName != name {
			t.Errorf("ParseTopic(%q) = %+v, %v; want method name %q", topic, got, err, name)
		}
	}
}

func TestParseTopicErrors(t *testing.T) {
	tests := []struct {
		name     string
		topic    string
		want     error
		wantText string
	}{
		{"empty topic", "", ErrUnknownTopic, `message: unknown topic ""`},
		{"other namespace", "foo/bar", ErrUnknownTopic, ""},
		{"sys topic", "$SYS/broker/uptime", ErrUnknownTopic, ""},
		{"devices without more levels", "devices/d", ErrUnknownTopic, ""},
		{"unknown devices topic", "devices/d/messages/foo/", ErrUnknownTopic, ""},
		{"modules do not get devicebound", "devices/d/modules/m/messages/devicebound/", ErrUnknownTopic, ""},
		{"unknown module topic", "devices/d/modules/m/outputs/x/", ErrUnknownTopic, ""},
		{"events must be a whole level", "devices/d/messages/eventsx/", ErrUnknownTopic, ""},
		{"empty device ID", "devices//messages/events/", ErrMalformedTopic, "empty device ID"},
		{"empty module ID", "devices/d/modules//messages/events/", ErrMalformedTopic, "empty module ID"},
		{"empty input name", "devices/d/modules/m/inputs//a=1", ErrMalformedTopic, "empty input name"},
		{"malformed escape in the bag", "devices/d/messages/events/a%zz=1", ErrEscape,
			`message: malformed topic "devices/d/messages/events/a%zz=1": malformed percent escape "%zz" in property "a%zz=1"`},
		{"bad time in the bag", "devices/d/messages/devicebound/%24.exp=0", ErrTime, "malformed time"},
		{"status not an integer", "$iothub/methods/res/abc/?$rid=1", ErrMalformedTopic,
			`message: malformed topic "$iothub/methods/res/abc/?$rid=1": status "abc" is not an integer`},
		{"twin status not an integer", "$iothub/twin/res/2x/?$rid=1", ErrMalformedTopic, "is not an integer"},
		{"method response without rid", "$iothub/methods/res/200/", ErrMalformedTopic, "missing $rid"},
		{"method response with empty rid", "$iothub/methods/res/200/?$rid=", ErrMalformedTopic, "missing $rid"},
		{"twin get without rid", "$iothub/twin/GET/", ErrMalformedTopic, "missing $rid"},
		{"twin patch with another key only", "$iothub/twin/PATCH/properties/reported/?rid=1", ErrMalformedTopic, "missing $rid"},
		{"method request without rid", "$iothub/methods/POST/m/", ErrMalformedTopic, "missing $rid"},
		{"empty method name", "$iothub/methods/POST//?$rid=1", ErrMalformedTopic, "empty method name"},
		{"no method name", "$iothub/methods/POST/?$rid=1", ErrMalformedTopic, "empty method name"},
		{"method name with a slash", "$iothub/methods/POST/a/b/?$rid=1", ErrUnknownTopic, ""},
		{"version not an integer", "$iothub/twin/res/204/?$rid=1&$version=x", ErrMalformedTopic, `$version "x"`},
		{"negative version", "$iothub/twin/PATCH/properties/desired/?$version=-1", ErrMalformedTopic, "non-negative"},
		{"unknown twin topic", "$iothub/twin/PATCH/properties/foo/?$rid=1", ErrUnknownTopic, ""},
		{"iothub prefix only", "$iothub/", ErrUnknownTopic, ""},
		{"method status missing", "$iothub/methods/res/?$rid=1", ErrUnknownTopic, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTopic(tt.topic)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseTopic(%q) = %+v, %v; want error %v", tt.topic, got, err, tt.want)
			}
			var te *TopicError
			if !errors.As(err, &te) || te.Topic != tt.topic {
				t.Errorf("ParseTopic(%q) error %#v; want *TopicError for the topic", tt.topic, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("ParseTopic(%q) error %q; want it to contain %q", tt.topic, err, tt.wantText)
			}
		})
	}
}

func TestParseTopicBagErrorIsMalformedAndPropertyError(t *testing.T) {
	_, err := ParseTopic("devices/d/messages/events/=x")
	var pe *PropertyError
	if !errors.Is(err, ErrMalformedTopic) || !errors.Is(err, ErrEmptyName) || !errors.As(err, &pe) {
		t.Fatalf("ParseTopic error %v; want ErrMalformedTopic, ErrEmptyName and a *PropertyError", err)
	}
	if pe.Pair != "=x" {
		t.Errorf("PropertyError.Pair = %q; want %q", pe.Pair, "=x")
	}
}

func TestTopicErrorShortensLongTopics(t *testing.T) {
	topic := "devices/d/messages/events/" + strings.Repeat("a", 10000) + "%"
	_, err := ParseTopic(topic)
	if err == nil {
		t.Fatalf("ParseTopic(long) = nil error; want one")
	}
	if n := len(err.Error()); n > 1000 {
		t.Errorf("error message is %d bytes; want it shortened", n)
	}
}

func TestParseDeviceTopic(t *testing.T) {
	tests := []struct {
		topic string
		want  Kind
	}{
		{"devices/dev1/messages/events/a=1", KindTelemetry},
		{"devices/dev1/modules/m/messages/events/", KindTelemetry},
		{"$iothub/methods/res/200/?$rid=1", KindMethodResponse},
		{"$iothub/twin/GET/?$rid=1", KindTwinGet},
		{"$iothub/twin/PATCH/properties/reported/?$rid=1", KindTwinPatchReported},
		{"devices/dev1/messages/devicebound/", KindUnknown},
		{"devices/dev1/modules/m/inputs/i/", KindUnknown},
		{"$iothub/methods/POST/m/?$rid=1", KindUnknown},
		{"$iothub/twin/res/200/?$rid=1", KindUnknown},
		{"$iothub/twin/PATCH/properties/desired/?$version=1", KindUnknown},
	}
	for _, tt := range tests {
		got, err := ParseDeviceTopic(tt.topic)
		if tt.want == KindUnknown {
			if !errors.Is(err, ErrUnknownTopic) {
				t.Errorf("ParseDeviceTopic(%q) = %+v, %v; want ErrUnknownTopic", tt.topic, got, err)
			}
			continue
		}
		if err != nil || got.Kind != tt.want {
			t.Errorf("ParseDeviceTopic(%q) = %+v, %v; want kind %v", tt.topic, got, err, tt.want)
		}
	}
	if _, err := ParseDeviceTopic("devices//messages/events/"); !errors.Is(err, ErrMalformedTopic) {
		t.Errorf("ParseDeviceTopic(empty ID) error %v; want ErrMalformedTopic", err)
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		k    Kind
		want string
	}{
		{KindUnknown, "unknown"},
		{KindTelemetry, "telemetry"},
		{KindC2D, "c2d"},
		{KindModuleInput, "module-input"},
		{KindMethodRequest, "method-request"},
		{KindMethodResponse, "method-response"},
		{KindTwinGet, "twin-get"},
		{KindTwinPatchReported, "twin-patch-reported"},
		{KindTwinResponse, "twin-response"},
		{KindTwinDesired, "twin-desired"},
		{Kind(99), "kind(99)"},
		{Kind(-1), "kind(-1)"},
	}
	for _, tt := range tests {
		if got := tt.k.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q; want %q", int(tt.k), got, tt.want)
		}
	}
}

func TestUnknownTopicStringIsEmpty(t *testing.T) {
	if got := (&Topic{}).String(); got != "" {
		t.Errorf("(&Topic{}).String() = %q; want \"\"", got)
	}
}
