package encoding

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAppendAnyRoundTrip(t *testing.T) {
	ts := time.UnixMilli(1700000000123).UTC()
	tests := []struct {
		name string
		in   any
		want any // nil means same as in
		code byte
	}{
		{"null", nil, nil, CodeNull},
		{"true", true, nil, CodeTrue},
		{"false", false, nil, CodeFalse},
		{"ubyte", uint8(7), nil, CodeUbyte},
		{"ushort", uint16(700), nil, CodeUshort},
		{"uint0", uint32(0), nil, CodeUint0},
		{"smalluint", uint32(200), nil, CodeSmallUint},
		{"uint", uint32(70000), nil, CodeUint},
		{"ulong0", uint64(0), nil, CodeUlong0},
		{"smallulong", uint64(255), nil, CodeSmallUlong},
		{"ulong", uint64(math.MaxUint64), nil, CodeUlong},
		{"byte", int8(-3), nil, CodeByte},
		{"short", int16(-300), nil, CodeShort},
		{"smallint", int32(-128), nil, CodeSmallInt},
		{"int", int32(200), nil, CodeInt},
		{"smalllong", int64(127), nil, CodeSmallLong},
		{"long", int64(-1 << 40), nil, CodeLong},
		{"go int", 5, int64(5), CodeSmallLong},
		{"float", float32(1.5), nil, CodeFloat},
		{"double", 2.25, nil, CodeDouble},
		{"decimal32", Decimal32{1, 2, 3, 4}, nil, CodeDecimal32},
		{"decimal64", Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, nil, CodeDecimal64},
		{"decimal128", Decimal128{15: 9}, nil, CodeDecimal128},
		{"char", Char('é'), nil, CodeChar},
		{"timestamp", ts, nil, CodeTimestamp},
		{"uuid", UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, nil, CodeUUID},
		{"vbin8", []byte("abc"), nil, CodeVbin8},
		{"vbin32", bytes.Repeat([]byte{1}, 300), nil, CodeVbin32},
		{"str8", "héllo", nil, CodeStr8},
		{"str32", strings.Repeat("x", 256), nil, CodeStr32},
		{"sym8", Symbol("amqp:open:list"), nil, CodeSym8},
		{"sym32", Symbol(strings.Repeat("s", 256)), nil, CodeSym32},
		{"list0", []any{}, nil, CodeList0},
		{"list8", []any{nil, "a", int32(1)}, nil, CodeList8},
		{"list32", []any{strings.Repeat("x", 300)}, nil, CodeList32},
		{"map8", map[string]any{"k": int32(1), "n": nil}, map[any]any{"k": int32(1), "n": nil}, CodeMap8},
		{"map32", map[Symbol]any{"k": strings.Repeat("v", 300)}, map[any]any{Symbol("k"): strings.Repeat("v", 300)}, CodeMap32},
		{"any map", map[any]any{int64(1): "x", Symbol("s"): true}, nil, CodeMap8},
		{"symbol array", []Symbol{"a", "bc"}, nil, CodeArray8},
		{"wide symbol array", []Symbol{Symbol(strings.Repeat("w", 300))}, nil, CodeArray32},
		{"empty symbol array", []Symbol{}, nil, CodeArray8},
		{"string array", []string{"x", "y"}, nil, CodeArray8},
		{"int array", []int32{1, -2}, nil, CodeArray8},
		{"long array", []int64{1, -2}, nil, CodeArray8},
		{"uint array", []uint32{1, 2}, nil, CodeArray8},
		{"ulong array", []uint64{1, 2}, nil, CodeArray8},
		{"bool array", []bool{true, false}, nil, CodeArray8},
		{"double array", []float64{1, 2}, nil, CodeArray8},
		{"uuid array", []UUID{{1}, {2}}, nil, CodeArray8},
		{"timestamp array", []time.Time{ts}, nil, CodeArray8},
		{"described", Described{Descriptor: uint64(0x468C00000004), Value: "a > '1'"}, nil, CodeDescribed},
		{"described symbol", &Described{Descriptor: Symbol("x:y"), Value: []any{int64(1)}},
			Described{Descriptor: Symbol("x:y"), Value: []any{int64(1)}}, CodeDescribed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendAny(nil, tt.in)
			if err != nil {
				t.Fatalf("AppendAny(%v): %v", tt.in, err)
			}
			if b[0] != tt.code {
				t.Errorf("AppendAny(%v) code = %#02x; want %#02x", tt.in, b[0], tt.code)
			}
			r := NewReader(b)
			got, err := r.Any()
			if err != nil {
				t.Fatalf("Any(%x): %v", b, err)
			}
			if r.Len() != 0 {
				t.Errorf("Any(%x) left %d bytes", b, r.Len())
			}
			want := tt.want
			if want == nil {
				want = tt.in
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Any(%x) = %#v; want %#v", b, got, want)
			}
		})
	}
}

func TestListKeepsTrailingNulls(t *testing.T) {
	b, l := OpenList(nil)
	b = AppendString(b, "a")
	l.Field()
	b = AppendNull(b)
	l.Field()
	b = AppendUint(b, 3)
	l.Field()
	b = AppendNull(b)
	l.Field()
	b = AppendNull(b)
	l.Field()
	b = l.Close(b)
	want := []byte{CodeList8, 9, 5, CodeStr8, 1, 'a', CodeNull, CodeSmallUint, 3, CodeNull, CodeNull}
	if !bytes.Equal(b, want) {
		t.Fatalf("list = %x; want %x", b, want)
	}
	b, l = OpenList([]byte{0xff})
	b = AppendNull(b)
	l.Field()
	if b = l.Close(b); !bytes.Equal(b, []byte{0xff, CodeList8, 2, 1, CodeNull}) {
		t.Fatalf("all-null list = %x; want ffc0020140", b)
	}
	b, l = OpenList([]byte{0xff})
	if b = l.Close(b); !bytes.Equal(b, []byte{0xff, CodeList0}) {
		t.Fatalf("empty list = %x; want ff45", b)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown code", []byte{0x01}},
		{"short uint", []byte{CodeUint, 0, 0}},
		{"str32 length past end", []byte{CodeStr32, 0xff, 0xff, 0xff, 0xff, 'a'}},
		{"list32 size past end", []byte{CodeList32, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1}},
		{"list count larger than body", []byte{CodeList8, 2, 200, CodeNull}},
		{"array32 huge count of uint0", []byte{CodeArray32, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, CodeUint0}},
		{"map odd count", []byte{CodeMap8, 3, 1, CodeNull, CodeNull}},
		{"map binary key", []byte{CodeMap8, 5, 2, CodeVbin8, 1, 'k', CodeNull}},
		{"map list key", []byte{CodeMap8, 3, 2, CodeList0, CodeNull}},
		{"bad bool", []byte{CodeBool, 2}},
		{"bad descriptor", []byte{CodeDescribed, CodeStr8, 1, 'x', CodeNull}},
		{"nesting", append(bytes.Repeat([]byte{CodeDescribed, CodeUlong0}, MaxDepth+2), CodeNull)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(tt.in).Any()
			if !errors.Is(err, ErrDecode) {
				t.Fatalf("Any(%x) error = %v; want ErrDecode", tt.in, err)
			}
		})
	}
}

func TestDeepListNesting(t *testing.T) {
	var b []byte
	for i := 0; i < MaxDepth+5; i++ {
		b = append(b, CodeList8, 0, 1)
	}
	b = append(b, CodeNull)
	// fix sizes from the inside out
	for i := MaxDepth + 4; i >= 0; i-- {
		b[i*3+1] = byte(len(b) - (i*3 + 2))
	}
	if _, err := NewReader(b).Any(); !errors.Is(err, ErrDecode) {
		t.Fatalf("Any(deep list) error = %v; want ErrDecode", err)
	}
}

func TestUUIDString(t *testing.T) {
	u := UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	if got, want := u.String(), "12345678-9abc-def0-0102-030405060708"; got != want {
		t.Fatalf("String() = %q; want %q", got, want)
	}
}
