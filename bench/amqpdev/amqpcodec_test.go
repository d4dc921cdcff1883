package main

import (
	"encoding/binary"
	"reflect"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var e enc
	var idAt int
	e.frame(frameAMQP, 7, codeTransfer, func(e *enc) int {
		e.uint(3)
		idAt = e.uint(0)
		e.binary([]byte{1, 2, 3, 4})
		e.bool(false)
		e.null()
		e.sym("x")
		e.ubyte(9)
		e.ushort(300)
		e.described(codeAccepted, func(*enc) int { return 0 })
		return 9
	}, []byte("payload"))
	binary.BigEndian.PutUint32(e.b[idAt:], 42)
	if got := binary.BigEndian.Uint32(e.b); int(got) != len(e.b) {
		t.Fatalf("frame size %d; want %d", got, len(e.b))
	}
	if e.b[4] != 2 || e.b[5] != frameAMQP || binary.BigEndian.Uint16(e.b[6:]) != 7 {
		t.Fatalf("frame header % x", e.b[:8])
	}
	code, fields, payload, err := performative(e.b[8:])
	if err != nil {
		t.Fatal(err)
	}
	want := []any{uint32(3), uint32(42), []byte{1, 2, 3, 4}, false, nil, "x", uint8(9), uint16(300),
		described{code: codeAccepted, value: []any{}}}
	if code != codeTransfer || !reflect.DeepEqual(fields, want) || string(payload) != "payload" {
		t.Fatalf("performative = 0x%x %#v %q; want 0x%x %#v %q", code, fields, payload, codeTransfer, want, "payload")
	}
}

func TestDecodeCompactForms(t *testing.T) {
	// a disposition as a peer may send it: list8, smalluint, uint0,
	// list0 for the accepted state
	b := []byte{0x00, 0x53, codeDisposition, 0xc0, 0x0a, 0x05, 0x41, 0x52, 0x07, 0x43, 0x41, 0x00, 0x53, codeAccepted, 0x45}
	code, f, _, err := performative(b)
	if err != nil {
		t.Fatal(err)
	}
	if code != codeDisposition || fieldUint(f, 1, 99) != 7 || fieldUint(f, 2, 99) != 0 || field(f, 4).(described).code != codeAccepted {
		t.Fatalf("performative(% x) = 0x%x %#v", b, code, f)
	}
	if fieldUint(f, 9, 5) != 5 {
		t.Fatalf("fieldUint of a missing field = %d; want the default", fieldUint(f, 9, 5))
	}
}

func FuzzPerformative(f *testing.F) {
	f.Add([]byte{0x00, 0x53, 0x15, 0xc0, 0x02, 0x01, 0x41})
	f.Add([]byte{0x00, 0x53, 0x40, 0xc0, 0x0e, 0x01, 0xe0, 0x0b, 0x01, 0xa3, 0x09, 'A', 'N', 'O', 'N', 'Y', 'M', 'O', 'U', 'S'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, _ = performative(b) // never panics
	})
}
