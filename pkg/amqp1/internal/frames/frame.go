// Package frames implements AMQP 1.0 framing (part 2.3) and the
// performatives of the transport (part 2.7), messaging terminus and
// delivery-state types (part 3) and SASL (part 5.3) as Go structs with
// encoders and defensive decoders.
package frames

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
)

// Frame types.
const (
	TypeAMQP uint8 = 0
	TypeSASL uint8 = 1
)

// HeaderSize is the size of the fixed frame header.
const HeaderSize = 8

// ErrFraming is wrapped by errors in the frame header itself; the
// connection answers them with amqp:connection:framing-error.
var ErrFraming = errors.New("amqp framing error")

// ErrInvalidField is wrapped by errors for a missing mandatory field or
// a field value out of range; the answer is amqp:invalid-field.
var ErrInvalidField = errors.New("amqp invalid field")

// ErrUnknownPerformative is wrapped when a frame body carries a
// descriptor that is not a performative of its frame type.
var ErrUnknownPerformative = fmt.Errorf("%w: unknown performative", encoding.ErrDecode)

// Header is the fixed 8-byte frame header.
type Header struct {
	Size       uint32 // whole frame, header included
	DataOffset uint8  // in 4-byte words, at least 2
	Type       uint8
	Channel    uint16
}

// ParseHeader parses the fixed header in b (at least 8 bytes) and checks
// its internal consistency and that Size does not exceed maxSize.
func ParseHeader(b []byte, maxSize uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: short frame header", ErrFraming)
	}
	h := Header{
		Size:       binary.BigEndian.Uint32(b),
		DataOffset: b[4],
		Type:       b[5],
		Channel:    binary.BigEndian.Uint16(b[6:]),
	}
	switch {
	case h.Size < HeaderSize:
		return h, fmt.Errorf("%w: frame size %d below 8", ErrFraming, h.Size)
	case h.Size > maxSize:
		return h, fmt.Errorf("%w: frame size %d above max-frame-size %d", ErrFraming, h.Size, maxSize)
	case h.DataOffset < 2:
		return h, fmt.Errorf("%w: data offset %d below 2", ErrFraming, h.DataOffset)
	case uint32(h.DataOffset)*4 > h.Size:
		return h, fmt.Errorf("%w: data offset %d past frame size %d", ErrFraming, h.DataOffset, h.Size)
	}
	return h, nil
}

// Body is a frame body: an AMQP performative or a SASL frame.
type Body interface {
	// append appends the body's encoding to b.
	append(b []byte) ([]byte, error)
}

// Append appends a whole frame (header, body and, for transfers, payload)
// to b. A nil body makes an empty (heartbeat) frame.
func Append(b []byte, typ uint8, channel uint16, body Body, payload []byte) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, 2, typ, byte(channel>>8), byte(channel))
	if body != nil {
		var err error
		if b, err = body.append(b); err != nil {
			return nil, err
		}
		b = append(b, payload...)
	}
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b, nil
}

// Parse decodes a frame body (the bytes after the extended header) of the
// given frame type. An empty body returns (nil, nil). For a transfer,
// Transfer.Payload aliases body.
func Parse(typ uint8, body []byte) (Body, error) {
	if len(body) == 0 {
		return nil, nil
	}
	r := encoding.NewReader(body)
	code, sym, err := r.Descriptor()
	if err != nil {
		return nil, err
	}
	if sym != "" {
		c, ok := symbolic[sym]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownPerformative, sym)
		}
		code = c
	}
	var b interface {
		Body
		parse(i int, r *encoding.Reader) error
	}
	switch typ {
	case TypeAMQP:
		switch code {
		case codeOpen:
			b = newOpen()
		case codeBegin:
			b = newBegin()
		case codeAttach:
			b = newAttach()
		case codeFlow:
			b = new(Flow)
		case codeTransfer:
			b = new(Transfer)
		case codeDisposition:
			b = new(Disposition)
		case codeDetach:
			b = new(Detach)
		case codeEnd:
			b = new(End)
		case codeClose:
			b = new(Close)
		}
	case TypeSASL:
		switch code {
		case codeSASLMechanisms:
			b = new(SASLMechanisms)
		case codeSASLInit:
			b = new(SASLInit)
		case codeSASLChallenge:
			b = new(SASLChallenge)
		case codeSASLResponse:
			b = new(SASLResponse)
		case codeSASLOutcome:
			b = new(SASLOutcome)
		}
	}
	if b == nil {
		return nil, fmt.Errorf("%w %#x in frame type %d", ErrUnknownPerformative, code, typ)
	}
	present, err := parseFields(r, b.parse)
	if err != nil {
		return nil, err
	}
	if m, ok := b.(interface{ mandatory() uint32 }); ok {
		if need := m.mandatory(); present&need != need {
			return nil, fmt.Errorf("%w: %T lacks a mandatory field (have %b, need %b)", ErrInvalidField, b, present, need)
		}
	}
	if t, ok := b.(*Transfer); ok {
		t.Payload = r.Rest()
	} else if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after %T", encoding.ErrDecode, r.Len(), b)
	}
	return b, nil
}

// parseFields walks the list that follows a descriptor, calling parse for
// every non-null field, and returns a bit set of the non-null fields
// (fields past 31 are only skipped).
func parseFields(r *encoding.Reader, parse func(i int, r *encoding.Reader) error) (uint32, error) {
	n, lr, err := r.List()
	if err != nil {
		return 0, err
	}
	var present uint32
	for i := 0; i < n; i++ {
		if lr.Len() == 0 {
			return 0, fmt.Errorf("%w: list ends before its field %d", encoding.ErrDecode, i)
		}
		if lr.Null() {
			continue
		}
		if i < 32 {
			present |= 1 << i
		}
		if err := parse(i, lr); err != nil {
			return 0, fmt.Errorf("field %d: %w", i, err)
		}
	}
	if lr.Len() != 0 {
		return 0, fmt.Errorf("%w: %d bytes after the last list field", encoding.ErrDecode, lr.Len())
	}
	return present, nil
}

// fields helps encoders: each call appends one field and records it.
type fields struct {
	b   []byte
	l   encoding.List
	err error
}

func openFields(b []byte, code uint64) *fields {
	b = encoding.AppendDescriptor(b, code)
	f := &fields{}
	f.b, f.l = encoding.OpenList(b)
	return f
}

func (f *fields) add(fn func(b []byte) []byte) {
	f.b = fn(f.b)
	f.l.Field()
}

func (f *fields) addErr(fn func(b []byte) ([]byte, error)) {
	if f.err != nil {
		f.b = encoding.AppendNull(f.b)
		f.l.Field()
		return
	}
	b, err := fn(f.b)
	if err != nil {
		f.err = err
		f.b = encoding.AppendNull(f.b)
	} else {
		f.b = b
	}
	f.l.Field()
}

func (f *fields) null()        { f.add(encoding.AppendNull) }
func (f *fields) str(s string) { f.add(func(b []byte) []byte { return encoding.AppendString(b, s) }) }
func (f *fields) sym(s encoding.Symbol) {
	f.add(func(b []byte) []byte { return encoding.AppendSymbol(b, s) })
}
func (f *fields) bin(v []byte)   { f.add(func(b []byte) []byte { return encoding.AppendBinary(b, v) }) }
func (f *fields) uint(v uint32)  { f.add(func(b []byte) []byte { return encoding.AppendUint(b, v) }) }
func (f *fields) ulong(v uint64) { f.add(func(b []byte) []byte { return encoding.AppendUlong(b, v) }) }
func (f *fields) ushort(v uint16) {
	f.add(func(b []byte) []byte { return encoding.AppendUshort(b, v) })
}
func (f *fields) ubyte(v uint8)  { f.add(func(b []byte) []byte { return encoding.AppendUbyte(b, v) }) }
func (f *fields) boolean(v bool) { f.add(func(b []byte) []byte { return encoding.AppendBool(b, v) }) }
func (f *fields) syms(v []encoding.Symbol) {
	f.add(func(b []byte) []byte { return encoding.AppendSymbolArray(b, v) })
}
func (f *fields) symMap(m map[encoding.Symbol]any) {
	f.addErr(func(b []byte) ([]byte, error) { return encoding.AppendSymbolMap(b, m) })
}

// optional helpers append null for nil pointers and empty values.
func (f *fields) optStr(s string) {
	if s == "" {
		f.null()
	} else {
		f.str(s)
	}
}
func (f *fields) optUint(p *uint32) {
	if p == nil {
		f.null()
	} else {
		f.uint(*p)
	}
}

// nonzeroUint writes v, or null for 0 (the field's default).
func (f *fields) nonzeroUint(v uint32) {
	if v == 0 {
		f.null()
	} else {
		f.uint(v)
	}
}

// optSym writes s, or null when it is empty.
func (f *fields) optSym(s encoding.Symbol) {
	if s == "" {
		f.null()
	} else {
		f.sym(s)
	}
}

func (f *fields) optBool(v bool) { // false is the default of every boolean field
	if v {
		f.boolean(true)
	} else {
		f.null()
	}
}
func (f *fields) optSyms(v []encoding.Symbol) {
	if len(v) == 0 {
		f.null()
	} else {
		f.syms(v)
	}
}
func (f *fields) optSymMap(m map[encoding.Symbol]any) {
	if len(m) == 0 {
		f.null()
	} else {
		f.symMap(m)
	}
}
func (f *fields) body(fn func(b []byte) ([]byte, error)) { f.addErr(fn) }

func (f *fields) close() ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.l.Close(f.b), nil
}
