package frames

import (
	"testing"
)

// FuzzParse feeds whole frames (header included) to the header and body
// parsers the connection uses; valid frames must survive a re-encode.
func FuzzParse(f *testing.F) {
	for _, s := range sampleBodies() {
		var payload []byte
		if tr, ok := s.body.(*Transfer); ok {
			payload = tr.Payload
		}
		b, err := Append(nil, s.typ, 0, s.body, payload)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 12, 3, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data, 1<<16)
		if err != nil {
			return
		}
		if uint32(len(data)) < h.Size {
			return
		}
		body, err := Parse(h.Type, data[int(h.DataOffset)*4:h.Size])
		if err != nil || body == nil {
			return
		}
		var payload []byte
		if tr, ok := body.(*Transfer); ok {
			payload = tr.Payload
		}
		out, err := Append(nil, h.Type, h.Channel, body, payload)
		if err != nil {
			return // e.g. unknown delivery states holding values we do not encode
		}
		if _, err := Parse(h.Type, out[8:]); err != nil {
			t.Fatalf("re-parsing %x (from %x): %v", out, data, err)
		}
	})
}
