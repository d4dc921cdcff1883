package telemetry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// The keys of a log on disk, in pebble's byte order:
//
//	'c'                          the log's configuration (configValue)
//	'e' partition(2) seq(8)      an event (a record)
//	'm' partition(2)             a partition's next sequence number and
//	                             the bytes of all events before it (16)
//
// Integers are big-endian, so one partition's events sort by sequence
// number and are read with one forward iterator.
const (
	prefixConfig = 'c'
	prefixEvent  = 'e'
	prefixMeta   = 'm'
)

var configKey = []byte{prefixConfig}

func eventKey(part int, seq int64) []byte {
	k := make([]byte, 11)
	k[0] = prefixEvent
	binary.BigEndian.PutUint16(k[1:], uint16(part))
	binary.BigEndian.PutUint64(k[3:], uint64(seq))
	return k
}

func seqOfKey(k []byte) int64 { return int64(binary.BigEndian.Uint64(k[3:])) }

func metaKey(part int) []byte {
	return []byte{prefixMeta, byte(part >> 8), byte(part)}
}

func metaValue(next, nextCum int64) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(next))
	binary.BigEndian.PutUint64(v[8:], uint64(nextCum))
	return v
}

// configValue is a log's format version and partition count.
func configValue(partitions int) []byte {
	return []byte{recordVersion, byte(partitions >> 8), byte(partitions)}
}

// A record is an event's value:
//
//	version(1) enqueued(8, Unix nanoseconds) cum(8, bytes of the
//	partition's events before it) then, each a uvarint length and its
//	bytes, the device id, module id, auth method, generation id and
//	property bag, and last the body (the rest).
//
// The enqueued time and cum are written by the committer (putHeader)
// into the room encodeRecord leaves for them.
const (
	recordVersion = 1
	headerLen     = 17
)

var errRecord = errors.New("telemetry: damaged record")

// bagScratch holds buffers that encodeRecord encodes property bags in
// before copying them into the record, whose length prefix comes first.
var bagScratch = sync.Pool{New: func() any { return new([]byte) }}

// encodeRecord encodes ev with room for its header, in one allocation
// of the record (and the property bag's own for more than one
// application property).
func encodeRecord(ev *Event) []byte {
	m := ev.Message
	sp := bagScratch.Get().(*[]byte)
	bag := message.AppendBag((*sp)[:0], m)
	n := headerLen + 5*binary.MaxVarintLen32 + len(ev.DeviceID) + len(ev.ModuleID) + len(ev.AuthMethod) +
		len(ev.GenerationID) + len(bag) + len(m.Body)
	b := make([]byte, headerLen, n)
	b[0] = recordVersion
	for _, s := range [...]string{ev.DeviceID, ev.ModuleID, ev.AuthMethod, ev.GenerationID} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(bag)))
	b = append(b, bag...)
	*sp = bag
	bagScratch.Put(sp)
	return append(b, m.Body...)
}

func putHeader(rec []byte, enqueued time.Time, cum int64) {
	binary.BigEndian.PutUint64(rec[1:], uint64(enqueued.UnixNano()))
	binary.BigEndian.PutUint64(rec[9:], uint64(cum))
}

// header returns the enqueued time and cum of a record.
func header(rec []byte) (time.Time, int64, error) {
	if len(rec) < headerLen || rec[0] != recordVersion {
		return time.Time{}, 0, fmt.Errorf("%w: %d bytes, version %d", errRecord, len(rec), firstByte(rec))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(rec[1:]))).UTC(), int64(binary.BigEndian.Uint64(rec[9:])), nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// decodeRecord decodes a record into a stored event; the body is copied
// (rec belongs to the storage engine).
func decodeRecord(rec []byte) (stored, error) {
	enq, _, err := header(rec)
	if err != nil {
		return stored{}, err
	}
	st := stored{enqueued: enq}
	rest := rec[headerLen:]
	var fields [5]string
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return stored{}, fmt.Errorf("%w: field %d", errRecord, i)
		}
		fields[i] = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	st.deviceID, st.moduleID, st.authMethod, st.generationID, st.bag = fields[0], fields[1], fields[2], fields[3], fields[4]
	st.body = append([]byte(nil), rest...)
	return st, nil
}
