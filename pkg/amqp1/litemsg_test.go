package amqp1

import (
	"reflect"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

// liteCases are messages as go-amqp encodes them, and whether
// decodeLite takes them (or leaves them to go-amqp).
func liteCases() []struct {
	name string
	msg  *amqp.Message
	lite bool
} {
	str := func(s string) *string { return &s }
	ts := time.UnixMilli(1700000000123)
	seq := uint32(7)
	uuid := amqp.UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return []struct {
		name string
		msg  *amqp.Message
		lite bool
	}{
		{"data", &amqp.Message{Data: [][]byte{[]byte(`{"temperature":21.5}`)}}, true},
		{"empty data", &amqp.Message{Data: [][]byte{{}}}, true},
		{"two data sections", &amqp.Message{Data: [][]byte{[]byte("a"), []byte("bc")}}, true},
		{"application properties of every primitive", &amqp.Message{Data: [][]byte{[]byte("x")}, ApplicationProperties: map[string]any{
			"s": "v", "sym": amqp.Symbol("sy"), "b": true, "f": false, "i8": int8(-3), "i16": int16(-300), "i32": int32(-70000),
			"i32s": int32(5), "i64": int64(-1 << 40), "i64s": int64(1), "u8": uint8(200), "u16": uint16(60000), "u32": uint32(1 << 31),
			"u32s": uint32(7), "u320": uint32(0), "u64": uint64(1 << 60), "u64s": uint64(9), "u640": uint64(0), "f32": float32(1.5),
			"f64": 2.25, "t": ts, "uuid": uuid, "bin": []byte{1, 2}, "null": nil, "long": string(make([]byte, 300)),
		}}, true},
		{"properties", &amqp.Message{Value: "token", Properties: &amqp.MessageProperties{MessageID: "m1", UserID: []byte("u"),
			To: str("/devices/d/messages/events"), Subject: str("s"), ReplyTo: str("r"), CorrelationID: uint64(42),
			ContentType: str("application/json"), ContentEncoding: str("utf-8"), AbsoluteExpiryTime: &ts, CreationTime: &ts,
			GroupID: str("g"), GroupSequence: &seq, ReplyToGroupID: str("rg")}}, true},
		{"uuid and binary ids", &amqp.Message{Properties: &amqp.MessageProperties{MessageID: uuid, CorrelationID: []byte{9}},
			Data: [][]byte{[]byte("x")}}, true},
		{"annotations", &amqp.Message{Annotations: amqp.Annotations{"iothub-interface-id": "dtmi:x;1", "dt-subject": "c",
			"x-opt-n": int64(3), int64(5): "five"}, Data: [][]byte{[]byte("x")}}, true},
		{"header", &amqp.Message{Header: &amqp.MessageHeader{Durable: true, Priority: 9, TTL: 5 * time.Second, FirstAcquirer: true,
			DeliveryCount: 3}, Data: [][]byte{[]byte("x")}}, true},
		{"header with the default priority", &amqp.Message{Header: &amqp.MessageHeader{Priority: 4}, Value: int32(5)}, true},
		{"value binary", &amqp.Message{Value: []byte{1}}, true},
		{"value map", &amqp.Message{Value: map[string]any{"a": int32(1)}}, false},
		{"application property list", &amqp.Message{ApplicationProperties: map[string]any{"l": []int32{1, 2}}, Data: [][]byte{{1}}}, false},
		{"delivery annotations", &amqp.Message{DeliveryAnnotations: amqp.Annotations{"x": "y"}, Data: [][]byte{{1}}}, false},
		{"footer", &amqp.Message{Footer: amqp.Annotations{"x": "y"}, Data: [][]byte{{1}}}, false},
		{"sequence", &amqp.Message{Sequence: [][]any{{"a"}}}, false},
	}
}

func TestDecodeLiteMatchesGoAMQP(t *testing.T) {
	for _, tt := range liteCases() {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var want amqp.Message
			if err := want.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			var got amqp.Message
			if ok := decodeLite(&got, b); ok != tt.lite {
				t.Fatalf("decodeLite(%x) = %v; want %v", b, ok, tt.lite)
			}
			if tt.lite && !reflect.DeepEqual(&got, &want) {
				t.Fatalf("decodeLite(%x) = %#v; go-amqp decodes %#v", b, got, want)
			}
		})
	}
}

// FuzzDecodeLite checks that whatever decodeLite takes, go-amqp takes
// too and decodes to the same message.
func FuzzDecodeLite(f *testing.F) {
	for _, tt := range liteCases() {
		b, err := tt.msg.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got amqp.Message
		if !decodeLite(&got, b) {
			return
		}
		var want amqp.Message
		if err := unmarshalMessage(&want, b); err != nil {
			t.Fatalf("decodeLite(%x) took what go-amqp refuses: %v", b, err)
		}
		if !reflect.DeepEqual(&got, &want) {
			t.Fatalf("decodeLite(%x) = %#v; go-amqp decodes %#v", b, got, want)
		}
	})
}
