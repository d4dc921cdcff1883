package amqp1

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/Azure/go-amqp"
)

// Message sections (OASIS AMQP 1.0 part 3, 3.2: header, delivery
// annotations, message annotations, properties, application properties,
// data, amqp-sequence, amqp-value, footer).
const (
	secHeader      = 0x70
	secMsgAnn      = 0x72
	secProperties  = 0x73
	secAppProps    = 0x74
	secData        = 0x75
	secAMQPValue   = 0x77
	liteMaxEntries = 1 << 16
)

// decodeLite decodes the common shape of a message (a device's
// telemetry, a request) into msg without go-amqp's decoder, faster and
// with fewer allocations (a small telemetry message: 5 instead of 7):
// header, message annotations, properties and application properties
// whose values are primitives (null, booleans, integers, floats,
// timestamps, uuids, binary, strings, symbols), data sections, and an
// amqp-value of such a primitive. It gives the values the Go types
// go-amqp's Message.UnmarshalBinary gives (timestamps as
// time.UnixMilli, symbols as strings; binary values alias payload,
// which is the delivery's alone), and reports false, leaving msg in an
// undefined state, for anything else (delivery annotations, a footer,
// amqp-sequence, compound or described values, symbolic descriptors,
// malformed input): the caller then decodes with go-amqp, which knows
// every shape and says what is wrong.
func decodeLite(msg *amqp.Message, payload []byte) bool {
	x := lite{b: payload}
	for len(x.b) > 0 {
		if x.b[0] != 0x00 {
			return false
		}
		x.b = x.b[1:]
		code, ok := x.ulong()
		if !ok {
			return false
		}
		switch code {
		case secHeader:
			if msg.Header != nil || !x.header(msg) {
				return false
			}
		case secMsgAnn:
			if msg.Annotations != nil || !x.annotations(msg) {
				return false
			}
		case secProperties:
			if msg.Properties != nil || !x.properties(msg) {
				return false
			}
		case secAppProps:
			if msg.ApplicationProperties != nil || !x.appProps(msg) {
				return false
			}
		case secData:
			b, ok := x.prim()
			data, isBin := b.([]byte)
			if !ok || !isBin {
				return false
			}
			msg.Data = append(msg.Data, data)
		case secAMQPValue:
			v, ok := x.prim()
			if !ok || msg.Value != nil {
				return false
			}
			msg.Value = v
		default:
			return false
		}
	}
	return true
}

// lite reads the values decodeLite takes.
type lite struct{ b []byte }

func (x *lite) take(n int) ([]byte, bool) {
	if n < 0 || n > len(x.b) {
		return nil, false
	}
	v := x.b[:n:n]
	x.b = x.b[n:]
	return v, true
}

// ulong reads a descriptor code: ulong, smallulong or ulong0.
func (x *lite) ulong() (uint64, bool) {
	c, ok := x.take(1)
	if !ok {
		return 0, false
	}
	switch c[0] {
	case 0x44:
		return 0, true
	case 0x53:
		b, ok := x.take(1)
		if !ok {
			return 0, false
		}
		return uint64(b[0]), true
	case 0x80:
		b, ok := x.take(8)
		if !ok {
			return 0, false
		}
		return binary.BigEndian.Uint64(b), true
	}
	return 0, false
}

// compound reads the header of a list (or a map) and returns its
// element count and a reader of exactly its elements, which the caller
// must consume whole (done).
func (x *lite) compound(list bool) (int, lite, bool) {
	c, ok := x.take(1)
	if !ok {
		return 0, lite{}, false
	}
	var size, count int
	switch {
	case list && c[0] == 0x45:
		return 0, lite{}, true
	case (list && c[0] == 0xc0) || (!list && c[0] == 0xc1):
		b, ok := x.take(2)
		if !ok {
			return 0, lite{}, false
		}
		size, count = int(b[0])-1, int(b[1])
	case (list && c[0] == 0xd0) || (!list && c[0] == 0xd1):
		b, ok := x.take(8)
		if !ok {
			return 0, lite{}, false
		}
		size, count = int(binary.BigEndian.Uint32(b))-4, int(binary.BigEndian.Uint32(b[4:]))
	default:
		return 0, lite{}, false
	}
	// each element takes a byte at least
	if count > size || count > liteMaxEntries || (!list && count%2 != 0) {
		return 0, lite{}, false
	}
	body, ok := x.take(size)
	if !ok {
		return 0, lite{}, false
	}
	return count, lite{b: body}, true
}

// prim reads a primitive value as go-amqp decodes it.
func (x *lite) prim() (any, bool) {
	c, ok := x.take(1)
	if !ok {
		return nil, false
	}
	fixed := func(n int) []byte {
		b, _ := x.take(n)
		return b
	}
	var b []byte
	switch c[0] {
	case 0x40:
		return nil, true
	case 0x41:
		return true, true
	case 0x42:
		return false, true
	case 0x43:
		return uint32(0), true
	case 0x44:
		return uint64(0), true
	case 0x56:
		if b = fixed(1); b != nil {
			switch b[0] {
			case 0:
				return false, true
			case 1:
				return true, true
			}
		}
		return nil, false
	case 0x50:
		if b = fixed(1); b != nil {
			return b[0], true
		}
	case 0x51:
		if b = fixed(1); b != nil {
			return int8(b[0]), true
		}
	case 0x52:
		if b = fixed(1); b != nil {
			return uint32(b[0]), true
		}
	case 0x53:
		if b = fixed(1); b != nil {
			return uint64(b[0]), true
		}
	case 0x54:
		if b = fixed(1); b != nil {
			return int32(int8(b[0])), true
		}
	case 0x55:
		if b = fixed(1); b != nil {
			return int64(int8(b[0])), true
		}
	case 0x60:
		if b = fixed(2); b != nil {
			return binary.BigEndian.Uint16(b), true
		}
	case 0x61:
		if b = fixed(2); b != nil {
			return int16(binary.BigEndian.Uint16(b)), true
		}
	case 0x70:
		if b = fixed(4); b != nil {
			return binary.BigEndian.Uint32(b), true
		}
	case 0x71:
		if b = fixed(4); b != nil {
			return int32(binary.BigEndian.Uint32(b)), true
		}
	case 0x72:
		if b = fixed(4); b != nil {
			return math.Float32frombits(binary.BigEndian.Uint32(b)), true
		}
	case 0x80:
		if b = fixed(8); b != nil {
			return binary.BigEndian.Uint64(b), true
		}
	case 0x81:
		if b = fixed(8); b != nil {
			return int64(binary.BigEndian.Uint64(b)), true
		}
	case 0x82:
		if b = fixed(8); b != nil {
			return math.Float64frombits(binary.BigEndian.Uint64(b)), true
		}
	case 0x83:
		if b = fixed(8); b != nil {
			return time.UnixMilli(int64(binary.BigEndian.Uint64(b))), true
		}
	case 0x98:
		if b = fixed(16); b != nil {
			return amqp.UUID(b), true
		}
	case 0xa0, 0xa1, 0xa3:
		if b = fixed(1); b != nil {
			return x.variable(c[0], int(b[0]))
		}
	case 0xb0, 0xb1, 0xb3:
		if b = fixed(4); b != nil {
			return x.variable(c[0], int(binary.BigEndian.Uint32(b)))
		}
	}
	return nil, false
}

// variable reads the n bytes of a binary, string or symbol of code c.
func (x *lite) variable(c byte, n int) (any, bool) {
	b, ok := x.take(n)
	if !ok {
		return nil, false
	}
	if c&0x0f == 0x0 {
		return b, true
	}
	return string(b), true // go-amqp gives symbols as strings too
}

// str reads a string or symbol as go-amqp reads a *string field.
func (x *lite) str() (*string, bool) {
	v, ok := x.prim()
	switch s := v.(type) {
	case nil:
		return nil, ok
	case string:
		return &s, true
	}
	return nil, false
}

func (x *lite) header(msg *amqp.Message) bool {
	h := &amqp.MessageHeader{Priority: 4} // a null or absent priority is 4
	msg.Header = h
	n, y, ok := x.compound(true)
	if !ok || n > 5 {
		return false
	}
	for i := range n {
		v, ok := y.prim()
		if !ok {
			return false
		}
		switch i {
		case 0:
			h.Durable, ok = v.(bool)
		case 1:
			if v != nil {
				h.Priority, ok = v.(uint8)
			}
		case 2:
			if v != nil {
				var ms uint32
				ms, ok = v.(uint32)
				h.TTL = time.Duration(ms) * time.Millisecond
			}
		case 3:
			h.FirstAcquirer, ok = v.(bool)
		case 4:
			h.DeliveryCount, ok = v.(uint32)
		}
		if !ok && v != nil {
			return false
		}
	}
	return len(y.b) == 0
}

func (x *lite) properties(msg *amqp.Message) bool {
	p := &amqp.MessageProperties{}
	msg.Properties = p
	n, y, ok := x.compound(true)
	if !ok || n > 13 {
		return false
	}
	x = &y
	for i := range n {
		var ok bool
		switch i {
		case 0, 5:
			var v any
			if v, ok = x.prim(); ok {
				switch v.(type) {
				case nil, string, uint64, amqp.UUID, []byte:
				default:
					return false // go-amqp refuses other message-ids
				}
				if i == 0 {
					p.MessageID = v
				} else {
					p.CorrelationID = v
				}
			}
		case 1:
			var v any
			if v, ok = x.prim(); ok && v != nil {
				p.UserID, ok = v.([]byte)
			}
		case 2:
			p.To, ok = x.str()
		case 3:
			p.Subject, ok = x.str()
		case 4:
			p.ReplyTo, ok = x.str()
		case 6:
			p.ContentType, ok = x.str()
		case 7:
			p.ContentEncoding, ok = x.str()
		case 8, 9:
			var v any
			if v, ok = x.prim(); ok && v != nil {
				var t time.Time
				if t, ok = v.(time.Time); ok {
					if i == 8 {
						p.AbsoluteExpiryTime = &t
					} else {
						p.CreationTime = &t
					}
				}
			}
		case 10:
			p.GroupID, ok = x.str()
		case 11:
			var v any
			if v, ok = x.prim(); ok && v != nil {
				var n uint32
				if n, ok = v.(uint32); ok {
					p.GroupSequence = &n
				}
			}
		case 12:
			p.ReplyToGroupID, ok = x.str()
		}
		if !ok {
			return false
		}
	}
	return len(x.b) == 0
}

func (x *lite) annotations(msg *amqp.Message) bool {
	n, y, ok := x.compound(false)
	if !ok {
		return false
	}
	x = &y
	a := make(amqp.Annotations, n/2)
	msg.Annotations = a
	for i := 0; i < n; i += 2 {
		k, ok := x.prim()
		if !ok {
			return false
		}
		if _, ok := k.([]byte); ok {
			return false // not a Go map key
		}
		v, ok := x.prim()
		if !ok {
			return false
		}
		a[k] = v
	}
	return len(x.b) == 0
}

func (x *lite) appProps(msg *amqp.Message) bool {
	n, y, ok := x.compound(false)
	if !ok {
		return false
	}
	x = &y
	m := make(map[string]any, n/2)
	msg.ApplicationProperties = m
	for i := 0; i < n; i += 2 {
		k, ok := x.prim()
		if !ok {
			return false
		}
		key, isStr := k.(string) // a string or a symbol, as go-amqp takes
		if !isStr {
			return false
		}
		v, ok := x.prim()
		if !ok {
			return false
		}
		m[key] = v
	}
	return len(x.b) == 0
}
