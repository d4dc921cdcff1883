// Package encoding implements the AMQP 1.0 type system (OASIS AMQP 1.0
// part 1): the format codes, an appending encoder that picks the smallest
// encoding of each value and a defensive decoder for untrusted input.
package encoding

import (
	"fmt"

	"github.com/google/uuid"
)

// Format codes (AMQP 1.0 part 1, section 1.6).
const (
	CodeDescribed  byte = 0x00
	CodeNull       byte = 0x40
	CodeBool       byte = 0x56
	CodeTrue       byte = 0x41
	CodeFalse      byte = 0x42
	CodeUbyte      byte = 0x50
	CodeUshort     byte = 0x60
	CodeUint       byte = 0x70
	CodeSmallUint  byte = 0x52
	CodeUint0      byte = 0x43
	CodeUlong      byte = 0x80
	CodeSmallUlong byte = 0x53
	CodeUlong0     byte = 0x44
	CodeByte       byte = 0x51
	CodeShort      byte = 0x61
	CodeInt        byte = 0x71
	CodeSmallInt   byte = 0x54
	CodeLong       byte = 0x81
	CodeSmallLong  byte = 0x55
	CodeFloat      byte = 0x72
	CodeDouble     byte = 0x82
	CodeDecimal32  byte = 0x74
	CodeDecimal64  byte = 0x84
	CodeDecimal128 byte = 0x94
	CodeChar       byte = 0x73
	CodeTimestamp  byte = 0x83
	CodeUUID       byte = 0x98
	CodeVbin8      byte = 0xa0
	CodeVbin32     byte = 0xb0
	CodeStr8       byte = 0xa1
	CodeStr32      byte = 0xb1
	CodeSym8       byte = 0xa3
	CodeSym32      byte = 0xb3
	CodeList0      byte = 0x45
	CodeList8      byte = 0xc0
	CodeList32     byte = 0xd0
	CodeMap8       byte = 0xc1
	CodeMap32      byte = 0xd1
	CodeArray8     byte = 0xe0
	CodeArray32    byte = 0xf0
)

// Symbol is an AMQP symbol: an ASCII string used for names, keys and
// conditions. It encodes as sym8/sym32, unlike string (str8/str32).
type Symbol string

// UUID is an AMQP uuid, 16 bytes in network order.
type UUID [16]byte

// String formats u in the canonical 8-4-4-4-12 hexadecimal form.
func (u UUID) String() string { return uuid.UUID(u).String() }

// Char is an AMQP char: one UTF-32BE code point.
type Char rune

// Decimal32 is an IEEE 754-2008 decimal32 kept as its raw bytes.
type Decimal32 [4]byte

// Decimal64 is an IEEE 754-2008 decimal64 kept as its raw bytes.
type Decimal64 [8]byte

// Decimal128 is an IEEE 754-2008 decimal128 kept as its raw bytes.
type Decimal128 [16]byte

// Described is a described value: a descriptor (usually a Symbol or a
// uint64 code) and the value it describes. Source filters are described
// values, for example Descriptor "apache.org:selector-filter:string" (or
// code 0x0000468C00000004) with a string Value.
type Described struct {
	Descriptor any
	Value      any
}

// String formats d for logs.
func (d Described) String() string {
	return fmt.Sprintf("%v(%v)", d.Descriptor, d.Value)
}
