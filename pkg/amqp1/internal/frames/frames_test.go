package frames

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
)

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }

func sampleBodies() []struct {
	typ  uint8
	body Body
} {
	settled := true
	rcv := RcvSecond
	selector := encoding.Described{Descriptor: uint64(0x0000468C00000004), Value: "amqp.annotation.x-opt-offset > '123'"}
	return []struct {
		typ  uint8
		body Body
	}{
		{TypeAMQP, &Open{ContainerID: "c1", Hostname: "hub.local", MaxFrameSize: 65536, ChannelMax: 255, IdleTimeout: 30000,
			OfferedCapabilities: []encoding.Symbol{"ANONYMOUS-RELAY"}, Properties: map[encoding.Symbol]any{"com.microsoft:client-version": "x/1"}}},
		{TypeAMQP, &Open{ContainerID: "c2", MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}},
		{TypeAMQP, &Begin{RemoteChannel: u16(3), NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 100, HandleMax: 1023}},
		{TypeAMQP, &Attach{Name: "l", Handle: 2, Role: RoleReceiver, SndSettleMode: SndMixed, RcvSettleMode: RcvFirst,
			Source:               &Source{Address: "/messages/events", Filter: map[encoding.Symbol]any{"apache.org:selector-filter:string": selector}, Capabilities: []encoding.Symbol{"x"}},
			Target:               &Target{Address: "t", Dynamic: true},
			InitialDeliveryCount: u32(0), MaxMessageSize: 1 << 20,
			DesiredCapabilities: []encoding.Symbol{"com.microsoft:enable-receiver-runtime-metric"},
			Properties:          map[encoding.Symbol]any{"com.microsoft:epoch": int64(1)}}},
		{TypeAMQP, &Attach{Name: "refused", Handle: 0, Role: RoleSender, SndSettleMode: SndUnsettled}},
		{TypeAMQP, &Flow{NextIncomingID: u32(4), IncomingWindow: 10, NextOutgoingID: 2, OutgoingWindow: 3, Handle: u32(1),
			DeliveryCount: u32(7), LinkCredit: u32(100), Drain: true, Echo: true}},
		{TypeAMQP, &Transfer{Handle: 1, DeliveryID: u32(9), DeliveryTag: []byte{1, 2}, MessageFormat: u32(0), Settled: &settled,
			More: true, RcvSettleMode: &rcv, State: &Received{SectionNumber: 1, SectionOffset: 2}, Payload: []byte{0x00, 0x53, 0x75, 0xa0, 0x01, 'x'}}},
		{TypeAMQP, &Disposition{Role: RoleReceiver, First: 1, Last: u32(5), Settled: true, State: &Accepted{}}},
		{TypeAMQP, &Disposition{Role: RoleReceiver, First: 1, State: &Rejected{Error: &Error{Condition: "amqp:decode-error", Description: "bad"}}}},
		{TypeAMQP, &Disposition{Role: RoleSender, First: 1, State: &Released{}}},
		{TypeAMQP, &Disposition{Role: RoleReceiver, First: 1, State: &Modified{DeliveryFailed: true, MessageAnnotations: map[encoding.Symbol]any{"k": "v"}}}},
		{TypeAMQP, &Detach{Handle: 1, Closed: true, Error: &Error{Condition: "amqp:link:redirect",
			Info: map[encoding.Symbol]any{"hostname": "h", "network-host": "n", "port": int32(5671), "address": "amqps://h:5671/hub/$management"}}}},
		{TypeAMQP, &End{}},
		{TypeAMQP, &Close{Error: &Error{Condition: "amqp:connection:forced"}}},
		{TypeSASL, &SASLMechanisms{Mechanisms: []encoding.Symbol{"ANONYMOUS", "PLAIN", "MSSBCBS"}}},
		{TypeSASL, &SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00user\x00pass"), Hostname: "h"}},
		{TypeSASL, &SASLChallenge{Challenge: []byte("c")}},
		{TypeSASL, &SASLResponse{Response: []byte{}}},
		{TypeSASL, &SASLOutcome{Code: SASLAuth}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range sampleBodies() {
		t.Run(reflect.TypeOf(tt.body).Elem().Name(), func(t *testing.T) {
			var payload []byte
			if tr, ok := tt.body.(*Transfer); ok {
				payload = tr.Payload
			}
			b, err := Append(nil, tt.typ, 7, tt.body, payload)
			if err != nil {
				t.Fatalf("Append(%#v): %v", tt.body, err)
			}
			h, err := ParseHeader(b, uint32(len(b)))
			if err != nil {
				t.Fatalf("ParseHeader(%x): %v", b, err)
			}
			if h.Size != uint32(len(b)) || h.Channel != 7 || h.Type != tt.typ {
				t.Fatalf("ParseHeader(%x) = %+v", b, h)
			}
			got, err := Parse(h.Type, b[h.DataOffset*4:])
			if err != nil {
				t.Fatalf("Parse(%x): %v", b, err)
			}
			if tr, ok := got.(*Transfer); ok {
				// the values the pointers point to are compared; where
				// they are stored is Parse's business
				c := *tr
				c.deliveryID, c.messageFormat, c.settled, c.rcvSettleMode = 0, 0, false, 0
				got = &c
			}
			if !reflect.DeepEqual(got, tt.body) {
				t.Fatalf("Parse(Append(x)) = %#v; want %#v", got, tt.body)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  uint32
	}{
		{"short", []byte{0, 0, 0, 8}, 512},
		{"size below 8", []byte{0, 0, 0, 7, 2, 0, 0, 0}, 512},
		{"too big", []byte{0, 0, 2, 1, 2, 0, 0, 0}, 512},
		{"doff below 2", []byte{0, 0, 0, 8, 1, 0, 0, 0}, 512},
		{"doff past size", []byte{0, 0, 0, 12, 4, 0, 0, 0}, 512},
	}
	for _, tt := range tests {
		if _, err := ParseHeader(tt.in, tt.max); !errors.Is(err, ErrFraming) {
			t.Errorf("%s: ParseHeader(%x) error = %v; want ErrFraming", tt.name, tt.in, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		typ  uint8
		in   []byte
		want error
	}{
		{"unknown performative", TypeAMQP, []byte{0x00, 0x53, 0x30, 0x45}, ErrUnknownPerformative},
		{"sasl code in amqp frame", TypeAMQP, []byte{0x00, 0x53, 0x40, 0x45}, ErrUnknownPerformative},
		{"unknown symbolic", TypeAMQP, []byte{0x00, 0xa3, 1, 'x', 0x45}, ErrUnknownPerformative},
		{"not described", TypeAMQP, []byte{0x45}, encoding.ErrDecode},
		{"open without container id", TypeAMQP, []byte{0x00, 0x53, 0x10, 0x45}, ErrInvalidField},
		{"attach role wrong type", TypeAMQP, []byte{0x00, 0x53, 0x12, 0xc0, 0x06, 0x03, 0xa1, 0x01, 'n', 0x43, 0x43}, encoding.ErrDecode},
		{"truncated list", TypeAMQP, []byte{0x00, 0x53, 0x18, 0xc0, 0x05, 0x01}, encoding.ErrDecode},
		{"trailing bytes", TypeAMQP, []byte{0x00, 0x53, 0x18, 0x45, 0x40}, encoding.ErrDecode},
	}
	for _, tt := range tests {
		if _, err := Parse(tt.typ, tt.in); !errors.Is(err, tt.want) {
			t.Errorf("%s: Parse(%x) error = %v; want %v", tt.name, tt.in, err, tt.want)
		}
	}
}

func TestEmptyBodyIsHeartbeat(t *testing.T) {
	b, err := Append(nil, TypeAMQP, 0, nil, nil)
	if err != nil || len(b) != 8 {
		t.Fatalf("Append(heartbeat) = %x, %v", b, err)
	}
	if body, err := Parse(TypeAMQP, b[8:]); body != nil || err != nil {
		t.Fatalf("Parse(empty) = %v, %v; want nil, nil", body, err)
	}
}
