package encoding

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrDecode is wrapped by every decoding error; the connection answers
// such errors with amqp:decode-error.
var ErrDecode = errors.New("amqp decode error")

func decodeErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
}

var errShort = decodeErr("value runs past the end of its container")

// Reader decodes values from a byte slice. Every length read from the
// input is checked against the bytes that remain before it is used, so a
// hostile length cannot make the reader allocate more than the input size.
type Reader struct {
	b     []byte
	depth int
}

// NewReader returns a Reader over b. It does not copy b; binary values it
// returns alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Len returns the number of bytes not yet consumed.
func (r *Reader) Len() int { return len(r.b) }

// Rest returns the bytes not yet consumed.
func (r *Reader) Rest() []byte { return r.b }

func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b) {
		return nil, errShort
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, nil
}

func (r *Reader) byte1() (byte, error) {
	if len(r.b) == 0 {
		return 0, errShort
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c, nil
}

// Peek returns the next format code without consuming it.
func (r *Reader) Peek() (byte, error) {
	if len(r.b) == 0 {
		return 0, errShort
	}
	return r.b[0], nil
}

// Null consumes a null and reports true when the next value is null. At
// the end of the input it also reports true: omitted trailing fields of
// a composite are null.
func (r *Reader) Null() bool {
	if len(r.b) == 0 {
		return true
	}
	if r.b[0] == CodeNull {
		r.b = r.b[1:]
		return true
	}
	return false
}

func (r *Reader) u8() (uint8, error) { c, err := r.byte1(); return c, err }
func (r *Reader) u16() (uint16, error) {
	v, err := r.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(v), nil
}
func (r *Reader) u32() (uint32, error) {
	v, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(v), nil
}
func (r *Reader) u64() (uint64, error) {
	v, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

// Ulong reads any unsigned integer type (ubyte, ushort, uint, ulong in all
// their forms) as a uint64.
func (r *Reader) Ulong() (uint64, error) {
	code, err := r.byte1()
	if err != nil {
		return 0, err
	}
	return r.ulongBody(code)
}

func (r *Reader) ulongBody(code byte) (uint64, error) {
	switch code {
	case CodeUint0, CodeUlong0:
		return 0, nil
	case CodeSmallUint, CodeSmallUlong, CodeUbyte:
		v, err := r.u8()
		return uint64(v), err
	case CodeUshort:
		v, err := r.u16()
		return uint64(v), err
	case CodeUint:
		v, err := r.u32()
		return uint64(v), err
	case CodeUlong:
		return r.u64()
	}
	return 0, decodeErr("want an unsigned integer, got code %#02x", code)
}

// Uint reads an unsigned integer that must fit in 32 bits.
func (r *Reader) Uint() (uint32, error) { return narrow[uint32](r, math.MaxUint32, "uint") }

// Ushort reads an unsigned integer that must fit in 16 bits.
func (r *Reader) Ushort() (uint16, error) { return narrow[uint16](r, math.MaxUint16, "ushort") }

// Ubyte reads an unsigned integer that must fit in 8 bits.
func (r *Reader) Ubyte() (uint8, error) { return narrow[uint8](r, math.MaxUint8, "ubyte") }

// narrow reads an unsigned integer of any width and checks that it
// fits the narrower type T, whose largest value is limit.
func narrow[T uint8 | uint16 | uint32](r *Reader, limit uint64, name string) (T, error) {
	v, err := r.Ulong()
	if err != nil {
		return 0, err
	}
	if v > limit {
		return 0, decodeErr("value %d does not fit a %s", v, name)
	}
	return T(v), nil
}

// Bool reads a boolean in any of its forms.
func (r *Reader) Bool() (bool, error) {
	code, err := r.byte1()
	if err != nil {
		return false, err
	}
	switch code {
	case CodeTrue:
		return true, nil
	case CodeFalse:
		return false, nil
	case CodeBool:
		v, err := r.u8()
		if err != nil {
			return false, err
		}
		if v > 1 {
			return false, decodeErr("boolean byte %#02x", v)
		}
		return v == 1, nil
	}
	return false, decodeErr("want a boolean, got code %#02x", code)
}

// Timestamp reads a timestamp.
func (r *Reader) Timestamp() (time.Time, error) {
	code, err := r.byte1()
	if err != nil {
		return time.Time{}, err
	}
	if code != CodeTimestamp {
		return time.Time{}, decodeErr("want a timestamp, got code %#02x", code)
	}
	v, err := r.u64()
	return time.UnixMilli(int64(v)).UTC(), err
}

func (r *Reader) variable(code8, code32 byte, what string) ([]byte, error) {
	code, err := r.byte1()
	if err != nil {
		return nil, err
	}
	return r.variableBody(code, code8, code32, what)
}

func (r *Reader) variableBody(code, code8, code32 byte, what string) ([]byte, error) {
	var n int
	switch code {
	case code8:
		v, err := r.u8()
		if err != nil {
			return nil, err
		}
		n = int(v)
	case code32:
		v, err := r.u32()
		if err != nil {
			return nil, err
		}
		if uint64(v) > uint64(len(r.b)) {
			return nil, errShort
		}
		n = int(v)
	default:
		return nil, decodeErr("want %s, got code %#02x", what, code)
	}
	return r.take(n)
}

// Binary reads binary (vbin8/vbin32). The result aliases the input.
func (r *Reader) Binary() ([]byte, error) { return r.variable(CodeVbin8, CodeVbin32, "binary") }

// String reads a string (str8/str32).
func (r *Reader) String() (string, error) {
	v, err := r.variable(CodeStr8, CodeStr32, "a string")
	return string(v), err
}

// Symbol reads a symbol (sym8/sym32).
func (r *Reader) Symbol() (Symbol, error) {
	v, err := r.variable(CodeSym8, CodeSym32, "a symbol")
	return Symbol(v), err
}

// Symbols reads a "multiple" symbol field: a single symbol or an array of
// symbols.
func (r *Reader) Symbols() ([]Symbol, error) {
	code, err := r.Peek()
	if err != nil {
		return nil, err
	}
	if code == CodeSym8 || code == CodeSym32 {
		s, err := r.Symbol()
		return []Symbol{s}, err
	}
	v, err := r.Any()
	if err != nil {
		return nil, err
	}
	syms, ok := v.([]Symbol)
	if !ok {
		if l, isList := v.([]any); isList && len(l) == 0 {
			return []Symbol{}, nil
		}
		return nil, decodeErr("want symbols, got %T", v)
	}
	return syms, nil
}

// SymbolMap reads a map whose keys are symbols (fields, filter sets,
// error info). String keys are accepted as symbols.
func (r *Reader) SymbolMap() (map[Symbol]any, error) {
	v, err := r.Any()
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[any]any)
	if !ok {
		return nil, decodeErr("want a map, got %T", v)
	}
	out := make(map[Symbol]any, len(m))
	for k, e := range m {
		switch k := k.(type) {
		case Symbol:
			out[k] = e
		case string:
			out[Symbol(k)] = e
		default:
			return nil, decodeErr("map key %T, want a symbol", k)
		}
	}
	return out, nil
}

// Descriptor reads the descriptor of a described value and returns its
// numeric code or, for a symbolic descriptor, the symbol.
func (r *Reader) Descriptor() (uint64, Symbol, error) {
	code, err := r.byte1()
	if err != nil {
		return 0, "", err
	}
	if code != CodeDescribed {
		return 0, "", decodeErr("want a described type, got code %#02x", code)
	}
	code, err = r.Peek()
	if err != nil {
		return 0, "", err
	}
	if code == CodeSym8 || code == CodeSym32 {
		s, err := r.Symbol()
		return 0, s, err
	}
	v, err := r.Ulong()
	return v, "", err
}

// List reads the header of a list and returns its element count and a
// Reader limited to its elements. The count is checked against the bytes
// present (each element takes at least one byte).
func (r *Reader) List() (int, *Reader, error) {
	code, err := r.byte1()
	if err != nil {
		return 0, nil, err
	}
	return r.listBody(code)
}

func (r *Reader) listBody(code byte) (int, *Reader, error) {
	var size, count uint64
	switch code {
	case CodeList0:
		return 0, &Reader{depth: r.depth + 1}, nil
	case CodeList8, CodeMap8:
		s, err := r.u8()
		if err != nil {
			return 0, nil, err
		}
		body, err := r.take(int(s))
		if err != nil {
			return 0, nil, err
		}
		if len(body) < 1 {
			return 0, nil, errShort
		}
		count = uint64(body[0])
		size = uint64(s)
		return r.sub(body[1:], count, size)
	case CodeList32, CodeMap32:
		s, err := r.u32()
		if err != nil {
			return 0, nil, err
		}
		if uint64(s) > uint64(len(r.b)) {
			return 0, nil, errShort
		}
		body, _ := r.take(int(s))
		if len(body) < 4 {
			return 0, nil, errShort
		}
		count = uint64(binary.BigEndian.Uint32(body))
		return r.sub(body[4:], count, uint64(s))
	}
	return 0, nil, decodeErr("want a list, got code %#02x", code)
}

func (r *Reader) sub(body []byte, count, _ uint64) (int, *Reader, error) {
	if count > uint64(len(body)) {
		return 0, nil, decodeErr("compound claims %d elements in %d bytes", count, len(body))
	}
	if r.depth+1 > MaxDepth {
		return 0, nil, decodeErr("nesting deeper than %d", MaxDepth)
	}
	return int(count), &Reader{b: body, depth: r.depth + 1}, nil
}

// Skip consumes one value of any type.
func (r *Reader) Skip() error {
	_, err := r.Any()
	return err
}

// Any decodes one value of any type. Results: nil, bool, uint8, uint16,
// uint32, uint64, int8, int16, int32, int64, float32, float64, Char,
// Decimal32/64/128, time.Time (UTC), UUID, []byte (aliasing the input),
// string, Symbol, []any (list), map[any]any (map; keys must be hashable
// values: binary, list, map and array keys are a decode error), Described,
// and arrays as []Symbol, []string, []bool, []int32, []int64, []uint32,
// []uint64, []float64, []UUID, []time.Time or []any for other element
// types.
func (r *Reader) Any() (any, error) {
	code, err := r.byte1()
	if err != nil {
		return nil, err
	}
	return r.anyBody(code)
}

func (r *Reader) anyBody(code byte) (any, error) {
	switch code {
	case CodeDescribed:
		if r.depth+1 > MaxDepth {
			return nil, decodeErr("nesting deeper than %d", MaxDepth)
		}
		r.depth++
		defer func() { r.depth-- }()
		d, err := r.Any()
		if err != nil {
			return nil, err
		}
		switch d.(type) {
		case uint64, Symbol:
		default:
			return nil, decodeErr("descriptor of type %T", d)
		}
		v, err := r.Any()
		if err != nil {
			return nil, err
		}
		return Described{Descriptor: d, Value: v}, nil
	case CodeNull:
		return nil, nil
	case CodeTrue:
		return true, nil
	case CodeFalse:
		return false, nil
	case CodeBool:
		v, err := r.u8()
		if err != nil {
			return nil, err
		}
		if v > 1 {
			return nil, decodeErr("boolean byte %#02x", v)
		}
		return v == 1, nil
	case CodeUbyte:
		return r.u8()
	case CodeUshort:
		return r.u16()
	case CodeUint0:
		return uint32(0), nil
	case CodeSmallUint:
		v, err := r.u8()
		return uint32(v), err
	case CodeUint:
		return r.u32()
	case CodeUlong0, CodeSmallUlong, CodeUlong:
		return r.ulongBody(code)
	case CodeByte:
		v, err := r.u8()
		return int8(v), err
	case CodeShort:
		v, err := r.u16()
		return int16(v), err
	case CodeSmallInt:
		v, err := r.u8()
		return int32(int8(v)), err
	case CodeInt:
		v, err := r.u32()
		return int32(v), err
	case CodeSmallLong:
		v, err := r.u8()
		return int64(int8(v)), err
	case CodeLong:
		v, err := r.u64()
		return int64(v), err
	case CodeFloat:
		v, err := r.u32()
		return math.Float32frombits(v), err
	case CodeDouble:
		v, err := r.u64()
		return math.Float64frombits(v), err
	case CodeDecimal32:
		var d Decimal32
		v, err := r.take(len(d))
		copy(d[:], v)
		return d, err
	case CodeDecimal64:
		var d Decimal64
		v, err := r.take(len(d))
		copy(d[:], v)
		return d, err
	case CodeDecimal128:
		var d Decimal128
		v, err := r.take(len(d))
		copy(d[:], v)
		return d, err
	case CodeChar:
		v, err := r.u32()
		return Char(v), err
	case CodeTimestamp:
		v, err := r.u64()
		return time.UnixMilli(int64(v)).UTC(), err
	case CodeUUID:
		var u UUID
		v, err := r.take(len(u))
		copy(u[:], v)
		return u, err
	case CodeVbin8, CodeVbin32:
		return r.variableBody(code, CodeVbin8, CodeVbin32, "binary")
	case CodeStr8, CodeStr32:
		v, err := r.variableBody(code, CodeStr8, CodeStr32, "a string")
		return string(v), err
	case CodeSym8, CodeSym32:
		v, err := r.variableBody(code, CodeSym8, CodeSym32, "a symbol")
		return Symbol(v), err
	case CodeList0, CodeList8, CodeList32:
		n, lr, err := r.listBody(code)
		if err != nil {
			return nil, err
		}
		l := make([]any, n)
		for i := range l {
			if l[i], err = lr.Any(); err != nil {
				return nil, err
			}
		}
		return l, nil
	case CodeMap8, CodeMap32:
		n, mr, err := r.listBody(code)
		if err != nil {
			return nil, err
		}
		if n%2 != 0 {
			return nil, decodeErr("map with an odd element count %d", n)
		}
		m := make(map[any]any, n/2)
		for i := 0; i < n; i += 2 {
			k, err := mr.Any()
			if err != nil {
				return nil, err
			}
			if !hashable(k) {
				return nil, decodeErr("map key of type %T", k)
			}
			v, err := mr.Any()
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case CodeArray8, CodeArray32:
		return r.array(code)
	}
	return nil, decodeErr("unknown format code %#02x", code)
}

// hashable reports whether k can be a Go map key without panicking.
func hashable(k any) bool {
	switch k := k.(type) {
	case nil, bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64,
		float32, float64, Char, Decimal32, Decimal64, Decimal128, time.Time,
		UUID, string, Symbol:
		return true
	case Described:
		return hashable(k.Descriptor) && hashable(k.Value)
	}
	return false
}
