package message

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHTTPHeadersRoundTrip(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	in := &Message{MessageID: "m1", CorrelationID: "c1", UserID: "u", ContentType: "application/json", ContentEncoding: "utf-8",
		Ack: "full", ExpiryTime: exp, InterfaceID: "dtmi:x;1", ComponentName: "thermo", Properties: map[string]string{"color": "red"}}
	h := http.Header{}
	EncodeHTTP(in, h)
	out, err := DecodeHTTP(h)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("DecodeHTTP(EncodeHTTP(m)) = %+v; want %+v", out, in)
	}
}

func TestDecodeHTTPSDKHeaders(t *testing.T) {
	// As azure-iot-device-http writes them: mixed case, iothub-to the
	// request's own path, dt-subject without a prefix.
	h := http.Header{}
	for k, v := range map[string]string{"IoTHub-MessageId": "m", "iothub-to": "/devices/d/messages/events",
		"iothub-app-Temperature Alert": "true", "dt-subject": "c", "User-Agent": "x"} {
		h[k] = []string{v}
	}
	m, err := DecodeHTTP(h)
	if err != nil {
		t.Fatal(err)
	}
	if m.MessageID != "m" || m.To != "" || m.ComponentName != "c" || len(m.Properties) != 1 || m.Properties["temperature alert"] != "true" {
		t.Errorf("DecodeHTTP = %+v", m)
	}
	h.Set("iothub-expiry", "tomorrow")
	if _, err := DecodeHTTP(h); err == nil || !strings.Contains(err.Error(), "iothub-expiry") {
		t.Errorf("a bad expiry: %v; want an error naming the header", err)
	}
}

func TestHTTPBatch(t *testing.T) {
	b, err := EncodeHTTPBatch([]*Message{{Body: []byte("one"), Properties: map[string]string{"k": "v"}}, {Body: []byte{0, 1}, MessageID: "m2"}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := DecodeHTTPBatch(b)
	if err != nil || len(ms) != 2 || string(ms[0].Body) != "one" || ms[0].Properties["k"] != "v" || ms[1].MessageID != "m2" || string(ms[1].Body) != "\x00\x01" {
		t.Fatalf("DecodeHTTPBatch(%s) = %+v, %v", b, ms, err)
	}
	// The C SDK sends text as it is with base64Encoded false.
	ms, err = DecodeHTTPBatch([]byte(`[{"body":"plain text","base64Encoded":false,"properties":{"iothub-app-a":"b"}}]`))
	if err != nil || string(ms[0].Body) != "plain text" || ms[0].Properties["a"] != "b" {
		t.Errorf("base64Encoded false: %+v, %v", ms, err)
	}
	for _, bad := range []string{`[]`, `{}`, `[{"body":"%%%"}]`} {
		if _, err := DecodeHTTPBatch([]byte(bad)); err == nil {
			t.Errorf("DecodeHTTPBatch(%s) = nil error", bad)
		}
	}
}

func FuzzDecodeHTTPBatch(f *testing.F) {
	f.Add([]byte(`[{"body":"b25l","properties":{"iothub-app-k":"v","iothub-expiry":"2030-01-01T00:00:00Z"}}]`))
	f.Add([]byte(`[{"body":"x","base64Encoded":false}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := DecodeHTTPBatch(b)
		if err == nil && len(ms) == 0 {
			t.Fatal("no error and no message")
		}
	})
}
