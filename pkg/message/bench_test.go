package message

import "testing"

// BenchmarkTelemetryTopic builds and parses a typical telemetry topic:
// the one the Node SDK (azure-iot-device-mqtt 1.16.4) sends for the message
// test/interop/js/device.js builds.
func BenchmarkTelemetryTopic(b *testing.B) {
	m := &Message{
		MessageID: "msg-abc", CorrelationID: "corr-1", ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: map[string]string{"alert": "high", "sp ace": "a/b&c"},
	}
	b.ReportAllocs()
	for b.Loop() {
		topic := TelemetryTopic("dev1", "", m)
		t, err := ParseTopic(topic)
		if err != nil || t.Message.MessageID != "msg-abc" {
			b.Fatalf("ParseTopic(%q) = %+v, %v", topic, t, err)
		}
	}
}

func BenchmarkEncodeTelemetryTopic(b *testing.B) {
	m := &Message{
		MessageID: "msg-abc", CorrelationID: "corr-1", ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: map[string]string{"alert": "high", "sp ace": "a/b&c"},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = TelemetryTopic("dev1", "", m)
	}
}

func BenchmarkParseTelemetryTopic(b *testing.B) {
	topic := "devices/dev1/messages/events/%24.mid=msg-abc&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&sp%20ace=a%2Fb%26c"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTopic(topic); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeBag encodes the property bag of a small telemetry
// message, as the telemetry log does for every message it stores.
func BenchmarkEncodeBag(b *testing.B) {
	m := &Message{ContentType: "application/json", Properties: map[string]string{"n": "1"}}
	b.ReportAllocs()
	for range b.N {
		bagSink = EncodeBag(m)
	}
}

// bagSink keeps BenchmarkEncodeBag's result alive, as the log keeps it.
var bagSink string
