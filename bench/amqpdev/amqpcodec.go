package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The few pieces of AMQP 1.0 the lean client encodes and decodes by
// hand: primitive values (OASIS AMQP 1.0, part 1, "Types", 1.6 "Encodings"),
// described lists (the performatives and the terminus), and frames
// (part 2, "Transport", 2.3 "Framing": a 4-byte size, data offset 2,
// the frame type, the channel, then the body).

// Frame types (part 2, 2.3.1 and part 5, 5.3.1).
const (
	frameAMQP = 0
	frameSASL = 1
)

// Descriptor codes of the performatives and types the lean client
// meets (part 2, 2.7; part 3, 3.4 and 3.5; part 5, 5.3.3).
const (
	codeOpen           = 0x10
	codeBegin          = 0x11
	codeAttach         = 0x12
	codeFlow           = 0x13
	codeTransfer       = 0x14
	codeDisposition    = 0x15
	codeDetach         = 0x16
	codeEnd            = 0x17
	codeClose          = 0x18
	codeAccepted       = 0x24
	codeSource         = 0x28
	codeTarget         = 0x29
	codeSASLMechanisms = 0x40
	codeSASLInit       = 0x41
	codeSASLOutcome    = 0x44
)

// Protocol headers (part 2, 2.2; part 5, 5.3.1: protocol id 3 is SASL).
var (
	headerSASL = []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
	headerAMQP = []byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
)

// enc appends AMQP values to a byte slice.
type enc struct{ b []byte }

func (e *enc) null() { e.b = append(e.b, 0x40) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 0x41)
	} else {
		e.b = append(e.b, 0x42)
	}
}
func (e *enc) ubyte(v uint8)   { e.b = append(e.b, 0x50, v) }
func (e *enc) ushort(v uint16) { e.b = binary.BigEndian.AppendUint16(append(e.b, 0x60), v) }

// uint encodes v in its fixed 4-byte form, so that it can be patched in
// place, and returns where those 4 bytes are.
func (e *enc) uint(v uint32) int {
	e.b = append(e.b, 0x70)
	at := len(e.b)
	e.b = binary.BigEndian.AppendUint32(e.b, v)
	return at
}

func (e *enc) binary(v []byte) int {
	e.b = append(e.b, 0xa0, byte(len(v))) // vbin8: callers give short values
	at := len(e.b)
	e.b = append(e.b, v...)
	return at
}

func (e *enc) str(v string) {
	e.b = binary.BigEndian.AppendUint32(append(e.b, 0xb1), uint32(len(v)))
	e.b = append(e.b, v...)
}

func (e *enc) sym(v string) {
	e.b = binary.BigEndian.AppendUint32(append(e.b, 0xb3), uint32(len(v)))
	e.b = append(e.b, v...)
}

// described appends a described list (list32) with descriptor code,
// whose fields fields appends; it returns the number of fields.
func (e *enc) described(code uint8, fields func(e *enc) int) {
	e.b = append(e.b, 0x00, 0x53, code, 0xd0)
	at := len(e.b)
	e.b = append(e.b, 0, 0, 0, 0, 0, 0, 0, 0) // size, count
	n := fields(e)
	binary.BigEndian.PutUint32(e.b[at:], uint32(len(e.b)-at-4))
	binary.BigEndian.PutUint32(e.b[at+4:], uint32(n))
}

// frame appends a frame of type typ on channel ch with a performative
// (the described list fields fills) and payload after it.
func (e *enc) frame(typ uint8, ch uint16, code uint8, fields func(e *enc) int, payload []byte) {
	start := len(e.b)
	e.b = append(e.b, 0, 0, 0, 0, 2, typ)
	e.b = binary.BigEndian.AppendUint16(e.b, ch)
	e.described(code, fields)
	e.b = append(e.b, payload...)
	binary.BigEndian.PutUint32(e.b[start:], uint32(len(e.b)-start))
}

// described is a decoded described value.
type described struct {
	code  uint64
	value any
}

// performative decodes a frame body: the descriptor code and the
// fields of its list (missing trailing fields are absent), and the
// payload that follows them (a transfer's message).
func performative(body []byte) (code uint64, fields []any, payload []byte, err error) {
	d := dec{b: body}
	v, err := d.value()
	if err != nil {
		return 0, nil, nil, err
	}
	p, ok := v.(described)
	if !ok {
		return 0, nil, nil, fmt.Errorf("frame body %T is not a described value", v)
	}
	fields, _ = p.value.([]any)
	return p.code, fields, body[d.off:], nil
}

// field returns fields[i], or nil when the list is shorter.
func field(fields []any, i int) any {
	if i < len(fields) {
		return fields[i]
	}
	return nil
}

// fieldUint returns fields[i] as a uint32, or def when it is absent.
func fieldUint(fields []any, i int, def uint32) uint32 {
	switch v := field(fields, i).(type) {
	case uint32:
		return v
	case uint16:
		return uint32(v)
	case uint8:
		return uint32(v)
	}
	return def
}

// dec decodes AMQP values from b.
type dec struct {
	b   []byte
	off int
}

var errShort = errors.New("amqp value cut short")

func (d *dec) take(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.off < n {
		return nil, errShort
	}
	v := d.b[d.off : d.off+n]
	d.off += n
	return v, nil
}

func (d *dec) value() (any, error) {
	c, err := d.take(1)
	if err != nil {
		return nil, err
	}
	if c[0] == 0x00 {
		desc, err := d.value()
		if err != nil {
			return nil, err
		}
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		code, _ := desc.(uint64)
		return described{code: code, value: v}, nil
	}
	return d.typed(c[0])
}

// fixed are the widths of the fixed-width encodings.
var fixed = map[byte]int{0x50: 1, 0x51: 1, 0x52: 1, 0x53: 1, 0x54: 1, 0x55: 1, 0x56: 1,
	0x60: 2, 0x61: 2, 0x70: 4, 0x71: 4, 0x72: 4, 0x73: 4, 0x74: 4,
	0x80: 8, 0x81: 8, 0x82: 8, 0x83: 8, 0x84: 8, 0x94: 16, 0x98: 16}

// typed decodes a value of constructor c.
func (d *dec) typed(c byte) (any, error) {
	switch c {
	case 0x40:
		return nil, nil
	case 0x41:
		return true, nil
	case 0x42:
		return false, nil
	case 0x43:
		return uint32(0), nil
	case 0x44:
		return uint64(0), nil
	case 0x45:
		return []any{}, nil
	}
	if n, ok := fixed[c]; ok {
		b, err := d.take(n)
		if err != nil {
			return nil, err
		}
		switch c {
		case 0x50:
			return b[0], nil
		case 0x52:
			return uint32(b[0]), nil
		case 0x53:
			return uint64(b[0]), nil
		case 0x56:
			return b[0] != 0, nil
		case 0x60:
			return binary.BigEndian.Uint16(b), nil
		case 0x70:
			return binary.BigEndian.Uint32(b), nil
		case 0x80:
			return binary.BigEndian.Uint64(b), nil
		case 0x71:
			return int32(binary.BigEndian.Uint32(b)), nil
		case 0x54:
			return int32(int8(b[0])), nil
		case 0x81:
			return int64(binary.BigEndian.Uint64(b)), nil
		case 0x55:
			return int64(int8(b[0])), nil
		case 0x82:
			return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
		}
		return b, nil // other fixed-width values: their bytes
	}
	var size int
	switch c & 0xf0 {
	case 0xa0, 0xc0, 0xe0:
		b, err := d.take(1)
		if err != nil {
			return nil, err
		}
		size = int(b[0])
	case 0xb0, 0xd0, 0xf0:
		b, err := d.take(4)
		if err != nil {
			return nil, err
		}
		size = int(binary.BigEndian.Uint32(b))
	default:
		return nil, fmt.Errorf("amqp constructor 0x%02x not supported", c)
	}
	body, err := d.take(size)
	if err != nil {
		return nil, err
	}
	switch c {
	case 0xa0, 0xb0:
		return body, nil
	case 0xa1, 0xb1, 0xa3, 0xb3:
		return string(body), nil
	}
	wide := c&0xf0 != 0xc0 && c&0xf0 != 0xe0
	inner := dec{b: body}
	var count int
	if wide {
		b, err := inner.take(4)
		if err != nil {
			return nil, err
		}
		count = int(binary.BigEndian.Uint32(b))
	} else {
		b, err := inner.take(1)
		if err != nil {
			return nil, err
		}
		count = int(b[0])
	}
	if count > len(body) {
		return nil, errShort
	}
	out := make([]any, 0, count)
	switch c {
	case 0xc0, 0xd0, 0xc1, 0xd1: // list, map (as its keys and values in turn)
		for range count {
			v, err := inner.value()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	case 0xe0, 0xf0: // array: one constructor for every element
		ec, err := inner.take(1)
		if err != nil {
			return nil, err
		}
		for range count {
			v, err := inner.typed(ec[0])
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	return out, nil
}
