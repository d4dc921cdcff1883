package message

import (
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		want int
	}{
		{"nil message", nil, 0},
		{"empty message", &Message{}, 0},
		{"body only", &Message{Body: make([]byte, 100)}, 100},
		{
			name: "body, system values and application names and values",
			m: &Message{
				Body:            []byte("12345"),
				MessageID:       "mid",                                       // 3
				ContentType:     "application/json",                          // 16
				ContentEncoding: "utf-8",                                     // 5
				Ack:             "full",                                      // 4
				Properties:      map[string]string{"alert": "high", "n": ""}, // 9 + 1
			},
			want: 5 + 3 + 16 + 5 + 4 + 9 + 1,
		},
		{
			name: "times count as written",
			m:    &Message{ExpiryTime: time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC)}, // 2021-04-21T11:30:16Z
			want: 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Size(); got != tt.want {
				t.Errorf("Size() = %d; want %d", got, tt.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	if MaxTelemetrySize != 262144 || MaxC2DSize != 65536 || MaxMethodPayload != 131072 {
		t.Errorf("limits = %d, %d, %d; want 262144, 65536, 131072", MaxTelemetrySize, MaxC2DSize, MaxMethodPayload)
	}
}

func TestNullProperties(t *testing.T) {
	var m Message
	m.SetNull("a")
	if !m.IsNull("a") {
		t.Errorf("IsNull(a) after SetNull = false; want true")
	}
	if got := EncodeBag(&m); got != "a" {
		t.Errorf("EncodeBag after SetNull = %q; want %q", got, "a")
	}
	m.Properties["a"] = "v"
	if m.IsNull("a") {
		t.Errorf("IsNull(a) with a value = true; want false")
	}
	if m.IsNull("missing") {
		t.Errorf("IsNull(missing) = true; want false")
	}
	var nilMsg *Message
	if nilMsg.IsNull("a") {
		t.Errorf("nil IsNull = true; want false")
	}
}
