package amqpfront

import (
	"errors"
	"testing"
	"time"
)

func TestParseSelector(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want position
	}{
		{"", position{kind: posStart}},
		{"amqp.annotation.x-opt-offset > '-1'", position{kind: posStart}},
		{"amqp.annotation.x-opt-offset >= '-1'", position{kind: posStart}},
		{"amqp.annotation.x-opt-offset > '@latest'", position{kind: posEnd}},
		{"amqp.annotation.x-opt-offset > '41'", position{kind: posSeq, seq: 42}},
		{"amqp.annotation.x-opt-offset >= '41'", position{kind: posSeq, seq: 41}},
		{"AMQP.ANNOTATION.X-OPT-OFFSET>'0'", position{kind: posSeq, seq: 1}},
		{"amqp.annotation.x-opt-offset >= '0'", position{kind: posStart}},
		{"x-opt-offset = 7", position{kind: posSeq, seq: 7}},
		{"amqp.annotation.x-opt-sequence-number > '9'", position{kind: posSeq, seq: 10}},
		{"amqp.annotation.x-opt-sequence-number >= '9'", position{kind: posSeq, seq: 9}},
		{"amqp.annotation.x-opt-sequence-number > '-1'", position{kind: posStart}},
		{"amqp.annotation.x-opt-enqueued-time > '1700000000000'", position{kind: posTime, t: time.UnixMilli(1700000000001)}},
		{"amqp.annotation.x-opt-enqueued-time >= '1700000000000'", position{kind: posTime, t: time.UnixMilli(1700000000000)}},
		// The older annotation name, quoted (Microsoft's amqp10
		// samples) and not (azure-event-hubs-c, uamqp).
		{"amqp.annotation.x-opt-enqueuedtimeutc > '1700000000000'", position{kind: posTime, t: time.UnixMilli(1700000000001)}},
		{"amqp.annotation.x-opt-enqueuedtimeutc > 1518731960545", position{kind: posTime, t: time.UnixMilli(1518731960546)}},
		{"amqp.annotation.x-opt-enqueuedtimeutc >= '1700000000000'", position{kind: posTime, t: time.UnixMilli(1700000000000)}},
		{"amqp.annotation.x-opt-offset >= '@latest'", position{kind: posEnd}},
	} {
		got, err := parseSelector(tc.in)
		if err != nil || got.kind != tc.want.kind || got.seq != tc.want.seq || !got.t.Equal(tc.want.t) {
			t.Errorf("parseSelector(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"amqp.annotation.x-opt-offset < '5'",
		"amqp.annotation.x-opt-offset > 'abc'",
		"amqp.annotation.x-opt-partition-key > '5'",
		"amqp.annotation.x-opt-offset",
		"> '5'",
		"amqp.annotation.x-opt-enqueued-time > 'yesterday'",
		"amqp.annotation.x-opt-enqueuedtimeutc > '2024-01-01T00:00:00Z'",
		"amqp.annotation.x-opt-offset > '5' AND 1=1",
	} {
		if _, err := parseSelector(in); !errors.Is(err, ErrSelector) {
			t.Errorf("parseSelector(%q) error = %v; want ErrSelector", in, err)
		}
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{
		"amqp.annotation.x-opt-offset > '-1'",
		"amqp.annotation.x-opt-offset > '@latest'",
		"amqp.annotation.x-opt-sequence-number >= '9223372036854775807'",
		"amqp.annotation.x-opt-enqueued-time > '9223372036854775807'",
		"x-opt-offset='it''s'",
		"amqp.annotation.x-opt-enqueuedtimeutc > 1518731960545",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseSelector(s)
		if err != nil {
			if !errors.Is(err, ErrSelector) {
				t.Fatalf("parseSelector(%q) error %v does not wrap ErrSelector", s, err)
			}
			return
		}
		if p.kind == posSeq && p.seq <= 0 {
			t.Fatalf("parseSelector(%q) = %v: a sequence position must be positive", s, p)
		}
	})
}
