package encoding

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"time"
)

// The Append functions append the smallest encoding of a value to b and
// return the extended slice.

// AppendNull appends null.
func AppendNull(b []byte) []byte { return append(b, CodeNull) }

// AppendBool appends a boolean in its one-byte true/false form.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, CodeTrue)
	}
	return append(b, CodeFalse)
}

// AppendUbyte appends a ubyte.
func AppendUbyte(b []byte, v uint8) []byte { return append(b, CodeUbyte, v) }

// AppendUshort appends a ushort.
func AppendUshort(b []byte, v uint16) []byte {
	return binary.BigEndian.AppendUint16(append(b, CodeUshort), v)
}

// AppendUint appends a uint as uint0, smalluint or uint.
func AppendUint(b []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(b, CodeUint0)
	case v <= math.MaxUint8:
		return append(b, CodeSmallUint, byte(v))
	}
	return binary.BigEndian.AppendUint32(append(b, CodeUint), v)
}

// AppendUlong appends a ulong as ulong0, smallulong or ulong.
func AppendUlong(b []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(b, CodeUlong0)
	case v <= math.MaxUint8:
		return append(b, CodeSmallUlong, byte(v))
	}
	return binary.BigEndian.AppendUint64(append(b, CodeUlong), v)
}

// AppendByte appends a (signed) byte.
func AppendByte(b []byte, v int8) []byte { return append(b, CodeByte, byte(v)) }

// AppendShort appends a short.
func AppendShort(b []byte, v int16) []byte {
	return binary.BigEndian.AppendUint16(append(b, CodeShort), uint16(v))
}

// AppendInt appends an int as smallint or int.
func AppendInt(b []byte, v int32) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(b, CodeSmallInt, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint32(append(b, CodeInt), uint32(v))
}

// AppendLong appends a long as smalllong or long.
func AppendLong(b []byte, v int64) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(b, CodeSmallLong, byte(int8(v)))
	}
	return binary.BigEndian.AppendUint64(append(b, CodeLong), uint64(v))
}

// AppendFloat appends a float.
func AppendFloat(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, CodeFloat), math.Float32bits(v))
}

// AppendDouble appends a double.
func AppendDouble(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, CodeDouble), math.Float64bits(v))
}

// AppendChar appends a char.
func AppendChar(b []byte, v Char) []byte {
	return binary.BigEndian.AppendUint32(append(b, CodeChar), uint32(v))
}

// AppendTimestamp appends a timestamp (milliseconds since the Unix epoch).
func AppendTimestamp(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(b, CodeTimestamp), uint64(t.UnixMilli()))
}

// AppendUUID appends a uuid.
func AppendUUID(b []byte, u UUID) []byte { return append(append(b, CodeUUID), u[:]...) }

func appendVariable(b []byte, code8, code32 byte, v string) []byte {
	if len(v) <= math.MaxUint8 {
		b = append(b, code8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, code32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendBinary appends binary as vbin8 or vbin32.
func AppendBinary(b []byte, v []byte) []byte {
	if len(v) <= math.MaxUint8 {
		b = append(b, CodeVbin8, byte(len(v)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, CodeVbin32), uint32(len(v)))
	}
	return append(b, v...)
}

// AppendString appends a string as str8 or str32.
func AppendString(b []byte, v string) []byte { return appendVariable(b, CodeStr8, CodeStr32, v) }

// AppendSymbol appends a symbol as sym8 or sym32.
func AppendSymbol(b []byte, v Symbol) []byte {
	return appendVariable(b, CodeSym8, CodeSym32, string(v))
}

// AppendDescriptor appends the descriptor prefix of a described type
// with a numeric descriptor.
func AppendDescriptor(b []byte, code uint64) []byte {
	return AppendUlong(append(b, CodeDescribed), code)
}

// compound opens a list, map or array at the end of b. It reserves room
// for the largest header and moves the content down in Close when the
// small form fits.
type compound struct {
	start int // offset of the reserved header
}

const compoundReserve = 9 // code + 4-byte size + 4-byte count

func openCompound(b []byte) ([]byte, compound) {
	c := compound{start: len(b)}
	return append(b, make([]byte, compoundReserve)...), c
}

// close writes the header for count elements (extra are bytes between
// the count and the first element, such as an array's constructor,
// already included in the content).
func (c compound) close(b []byte, code8, code32 byte, count int) []byte {
	content := len(b) - c.start - compoundReserve
	if content+1 <= math.MaxUint8 && count <= math.MaxUint8 {
		h := c.start + compoundReserve - 3
		b[h] = code8
		b[h+1] = byte(content + 1)
		b[h+2] = byte(count)
		copy(b[c.start:], b[h:])
		return b[:len(b)-(compoundReserve-3)]
	}
	b[c.start] = code32
	binary.BigEndian.PutUint32(b[c.start+1:], uint32(content+4))
	binary.BigEndian.PutUint32(b[c.start+5:], uint32(count))
	return b
}

// List builds a list. Fields are appended to b between Open and Close;
// Close keeps every field, trailing nulls included, and picks list0
// (no fields), list8 or list32. The spec lets trailing nulls of a
// composite type be omitted, but clients index the fields they expect:
// the pure-Python AMQP stack of azure-eventhub (_pyamqp/_decode.py,
// decode_frame) returns as many fields as the list holds, and
// _connection.py reads the open's fifth, link.py the attach's
// fourteenth. Azure's own AMQP stack writes every field
// (Microsoft.Azure.Amqp, src/Framing/DescribedList.cs, EncodeValue).
type List struct {
	c     compound
	count int
}

// OpenList starts a list at the end of b.
func OpenList(b []byte) ([]byte, List) {
	b, c := openCompound(b)
	return b, List{c: c}
}

// Field records that one field has been appended.
func (l *List) Field() { l.count++ }

// Close finishes the list.
func (l *List) Close(b []byte) []byte {
	if l.count == 0 {
		b = b[:l.c.start]
		return append(b, CodeList0)
	}
	return l.c.close(b, CodeList8, CodeList32, l.count)
}

// AppendSymbolArray appends syms as an array of symbols (sym8 elements
// when every symbol fits in 255 bytes). A nil slice is appended as null.
func AppendSymbolArray(b []byte, syms []Symbol) []byte {
	if syms == nil {
		return AppendNull(b)
	}
	wide := false
	for _, s := range syms {
		if len(s) > math.MaxUint8 {
			wide = true
		}
	}
	b, c := openCompound(b)
	if wide {
		b = append(b, CodeSym32)
		for _, s := range syms {
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
	} else {
		b = append(b, CodeSym8)
		for _, s := range syms {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	return c.close(b, CodeArray8, CodeArray32, len(syms))
}

// AppendSymbolMap appends m as a map with symbol keys (fields,
// properties, filter sets, error info). Keys are sorted so the encoding
// is deterministic. A nil map is appended as null.
func AppendSymbolMap(b []byte, m map[Symbol]any) ([]byte, error) {
	return appendSymbolMap(b, m, 0)
}

func appendSymbolMap(b []byte, m map[Symbol]any, depth int) ([]byte, error) {
	if m == nil {
		return AppendNull(b), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	b, c := openCompound(b)
	var err error
	for _, k := range keys {
		b = AppendSymbol(b, Symbol(k))
		if b, err = appendAny(b, m[Symbol(k)], depth+1); err != nil {
			return nil, err
		}
	}
	return c.close(b, CodeMap8, CodeMap32, 2*len(keys)), nil
}

// MaxDepth caps the nesting of compound and described values, both when
// encoding and decoding.
const MaxDepth = 32

// AppendAny appends v, choosing the AMQP type from its Go type:
// nil → null, bool, uint8 → ubyte, uint16 → ushort, uint32 → uint,
// uint64 → ulong, int8 → byte, int16 → short, int32 → int, int64 and int
// → long, float32, float64, Char, time.Time → timestamp, UUID, []byte →
// binary, string, Symbol, []any → list, map[K]V → map, typed slices
// ([]Symbol, []string, []int32, []int64, []uint32, []uint64, []bool,
// []float64, []UUID, []time.Time) → array, Described/*Described,
// Decimal32/64/128. Other types return an error.
func AppendAny(b []byte, v any) ([]byte, error) { return appendAny(b, v, 0) }

func appendAny(b []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, fmt.Errorf("encoding: nesting deeper than %d", MaxDepth)
	}
	switch v := v.(type) {
	case nil:
		return AppendNull(b), nil
	case bool:
		return AppendBool(b, v), nil
	case uint8:
		return AppendUbyte(b, v), nil
	case uint16:
		return AppendUshort(b, v), nil
	case uint32:
		return AppendUint(b, v), nil
	case uint64:
		return AppendUlong(b, v), nil
	case uint:
		return AppendUlong(b, uint64(v)), nil
	case int8:
		return AppendByte(b, v), nil
	case int16:
		return AppendShort(b, v), nil
	case int32:
		return AppendInt(b, v), nil
	case int64:
		return AppendLong(b, v), nil
	case int:
		return AppendLong(b, int64(v)), nil
	case float32:
		return AppendFloat(b, v), nil
	case float64:
		return AppendDouble(b, v), nil
	case Char:
		return AppendChar(b, v), nil
	case time.Time:
		return AppendTimestamp(b, v), nil
	case UUID:
		return AppendUUID(b, v), nil
	case *UUID:
		if v == nil {
			return AppendNull(b), nil
		}
		return AppendUUID(b, *v), nil
	case Decimal32:
		return append(append(b, CodeDecimal32), v[:]...), nil
	case Decimal64:
		return append(append(b, CodeDecimal64), v[:]...), nil
	case Decimal128:
		return append(append(b, CodeDecimal128), v[:]...), nil
	case []byte:
		return AppendBinary(b, v), nil
	case string:
		return AppendString(b, v), nil
	case Symbol:
		return AppendSymbol(b, v), nil
	case Described:
		return appendDescribed(b, v, depth)
	case *Described:
		if v == nil {
			return AppendNull(b), nil
		}
		return appendDescribed(b, *v, depth)
	case []any:
		if len(v) == 0 {
			return append(b, CodeList0), nil
		}
		b, c := openCompound(b)
		var err error
		for _, e := range v {
			if b, err = appendAny(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return c.close(b, CodeList8, CodeList32, len(v)), nil
	case map[Symbol]any:
		return appendSymbolMap(b, v, depth)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b, c := openCompound(b)
		var err error
		for _, k := range keys {
			b = AppendString(b, k)
			if b, err = appendAny(b, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return c.close(b, CodeMap8, CodeMap32, 2*len(keys)), nil
	case map[any]any:
		b, c := openCompound(b)
		var err error
		for k, e := range v {
			if b, err = appendAny(b, k, depth+1); err != nil {
				return nil, err
			}
			if b, err = appendAny(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return c.close(b, CodeMap8, CodeMap32, 2*len(v)), nil
	case []Symbol:
		return AppendSymbolArray(b, v), nil
	case []string:
		return appendStringArray(b, v), nil
	case []int32:
		return appendFixedArray(b, CodeInt, len(v), func(b []byte, i int) []byte {
			return binary.BigEndian.AppendUint32(b, uint32(v[i]))
		}), nil
	case []int64:
		return appendFixedArray(b, CodeLong, len(v), func(b []byte, i int) []byte {
			return binary.BigEndian.AppendUint64(b, uint64(v[i]))
		}), nil
	case []uint32:
		return appendFixedArray(b, CodeUint, len(v), func(b []byte, i int) []byte {
			return binary.BigEndian.AppendUint32(b, v[i])
		}), nil
	case []uint64:
		return appendFixedArray(b, CodeUlong, len(v), func(b []byte, i int) []byte {
			return binary.BigEndian.AppendUint64(b, v[i])
		}), nil
	case []bool:
		return appendFixedArray(b, CodeBool, len(v), func(b []byte, i int) []byte {
			if v[i] {
				return append(b, 1)
			}
			return append(b, 0)
		}), nil
	case []float64:
		return appendFixedArray(b, CodeDouble, len(v), func(b []byte, i int) []byte {
			return binary.BigEndian.AppendUint64(b, math.Float64bits(v[i]))
		}), nil
	case []UUID:
		return appendFixedArray(b, CodeUUID, len(v), func(b []byte, i int) []byte {
			return append(b, v[i][:]...)
		}), nil
	case []time.Time:
		return appendFixedArray(b, CodeTimestamp, len(v), func(b []byte, i int) []byte {
			return binary.BigEndian.AppendUint64(b, uint64(v[i].UnixMilli()))
		}), nil
	}
	return nil, fmt.Errorf("encoding: unsupported type %T", v)
}

func appendDescribed(b []byte, d Described, depth int) ([]byte, error) {
	switch d.Descriptor.(type) {
	case uint64, Symbol:
	default:
		return nil, fmt.Errorf("encoding: descriptor must be uint64 or Symbol, not %T", d.Descriptor)
	}
	b = append(b, CodeDescribed)
	b, err := appendAny(b, d.Descriptor, depth+1)
	if err != nil {
		return nil, err
	}
	return appendAny(b, d.Value, depth+1)
}

func appendFixedArray(b []byte, code byte, n int, elem func([]byte, int) []byte) []byte {
	b, c := openCompound(b)
	b = append(b, code)
	for i := 0; i < n; i++ {
		b = elem(b, i)
	}
	return c.close(b, CodeArray8, CodeArray32, n)
}

func appendStringArray(b []byte, v []string) []byte {
	wide := false
	for _, s := range v {
		if len(s) > math.MaxUint8 {
			wide = true
		}
	}
	b, c := openCompound(b)
	if wide {
		b = append(b, CodeStr32)
		for _, s := range v {
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
	} else {
		b = append(b, CodeStr8)
		for _, s := range v {
			b = append(b, byte(len(s)))
			b = append(b, s...)
		}
	}
	return c.close(b, CodeArray8, CodeArray32, len(v))
}
