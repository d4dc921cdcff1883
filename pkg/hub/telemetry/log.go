package telemetry

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// Event is one telemetry message as the hub stored it.
type Event struct {
	// Partition is the partition the event is in.
	Partition int
	// SequenceNumber counts events within the partition from 0.
	SequenceNumber int64
	// Offset is the event's offset in the partition (the sequence
	// number in decimal: the hub keeps no byte offsets).
	Offset string
	// EnqueuedTime is when the hub accepted the message.
	EnqueuedTime time.Time
	// DeviceID and ModuleID identify the sender.
	DeviceID, ModuleID string
	// AuthMethod is how the sender authenticated: "sas" or "x509".
	AuthMethod string
	// GenerationID is the sender's registry generation id.
	GenerationID string
	// Message holds the body and the properties.
	Message *message.Message
}

// Log is the bounded, partitioned in-memory log of telemetry
// that monitors read (the hub's Event Hub-compatible endpoint). Events
// go to the partition of the hash of their device id, so one device's
// events stay in order. When a partition holds more than its share of
// MaxEvents or MaxBytes, the oldest events are dropped. Safe for
// concurrent use.
type Log struct {
	parts    []*partition
	maxCount int
	maxBytes int
	now      func() time.Time
}

type partition struct {
	mu      sync.Mutex
	events  []stored // events[i] has sequence number nextSeq-len(events)+i
	bytes   int
	nextSeq int64
	// changed is closed and replaced on every append.
	changed chan struct{}
}

// stored is an event as the log keeps it: the message's properties in
// their encoded property bag (message.EncodeBag), decoded again on
// read. A parsed message.Message with its property map costs about
// three times as much to keep.
type stored struct {
	enqueued                                     time.Time
	deviceID, moduleID, authMethod, generationID string
	body                                         []byte
	bag                                          string
	size                                         int // Message.Size, for maxBytes
}

// event rebuilds the Event of s, which has sequence number seq in
// partition part.
func (s *stored) event(part int, seq int64) Event {
	m, err := message.DecodeBag(s.bag)
	if err != nil {
		// The log encoded the bag itself; it decodes.
		m = &message.Message{}
	}
	m.Body = s.body
	return Event{Partition: part, SequenceNumber: seq, Offset: strconv.FormatInt(seq, 10), EnqueuedTime: s.enqueued,
		DeviceID: s.deviceID, ModuleID: s.moduleID, AuthMethod: s.authMethod, GenerationID: s.generationID, Message: m}
}

// New returns a log with n partitions (default 4) holding
// at most maxEvents events (default 250,000) and maxBytes bytes of
// bodies and properties (default 512 MiB) in all.
func New(n, maxEvents, maxBytes int, now func() time.Time) *Log {
	if n <= 0 {
		n = 4
	}
	if maxEvents <= 0 {
		maxEvents = 250_000
	}
	if maxBytes <= 0 {
		maxBytes = 512 << 20
	}
	if now == nil {
		now = time.Now
	}
	l := &Log{maxCount: max(1, maxEvents/n), maxBytes: max(1, maxBytes/n), now: now}
	for range n {
		l.parts = append(l.parts, &partition{changed: make(chan struct{})})
	}
	return l
}

// Partitions is the number of partitions.
func (l *Log) Partitions() int { return len(l.parts) }

// PartitionOf returns the partition of a device's events.
func (l *Log) PartitionOf(deviceID string) int {
	h := fnv.New32a()
	h.Write([]byte(deviceID))
	return int(h.Sum32() % uint32(len(l.parts)))
}

// Append stores ev, filling in its partition, sequence number, offset
// and enqueued time, and returns the stored event. A nil Message is
// stored as an empty one. Read returns a copy of the message, not
// ev.Message itself.
func (l *Log) Append(ev Event) Event {
	if ev.Message == nil {
		ev.Message = &message.Message{}
	}
	ev.Partition = l.PartitionOf(ev.DeviceID)
	p := l.parts[ev.Partition]
	st := stored{deviceID: ev.DeviceID, moduleID: ev.ModuleID, authMethod: ev.AuthMethod, generationID: ev.GenerationID,
		body: ev.Message.Body, bag: message.EncodeBag(ev.Message), size: ev.Message.Size()}
	p.mu.Lock()
	ev.SequenceNumber = p.nextSeq
	ev.Offset = strconv.FormatInt(ev.SequenceNumber, 10)
	ev.EnqueuedTime = l.now().UTC()
	st.enqueued = ev.EnqueuedTime
	p.nextSeq++
	p.events = append(p.events, st)
	p.bytes += st.size
	drop := 0
	for len(p.events)-drop > l.maxCount || (p.bytes > l.maxBytes && len(p.events)-drop > 1) {
		p.bytes -= p.events[drop].size
		drop++
	}
	if drop > 0 {
		clear(p.events[:drop])
		p.events = p.events[drop:]
	}
	ch := p.changed
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(ch)
	return ev
}

// PartitionInfo describes one partition.
type PartitionInfo struct {
	// First and Last are the sequence numbers of the oldest and newest
	// events held; Last is First-1 when the partition is empty.
	First, Last int64
	// LastEnqueued is the newest event's enqueued time (zero if none).
	LastEnqueued time.Time
	// Count is the number of events held.
	Count int
}

// Info returns the state of partition i.
func (l *Log) Info(i int) PartitionInfo {
	p := l.parts[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	info := PartitionInfo{Last: p.nextSeq - 1, Count: len(p.events), First: p.nextSeq - int64(len(p.events))}
	if n := len(p.events); n > 0 {
		info.LastEnqueued = p.events[n-1].enqueued
	}
	return info
}

// Read returns up to max events of partition i with sequence numbers
// from seq on (events already dropped are skipped), and a channel that
// is closed when the partition changes after this read.
func (l *Log) Read(i int, seq int64, max int) ([]Event, <-chan struct{}) {
	p := l.parts[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.nextSeq - int64(len(p.events))
	if seq < first {
		seq = first
	}
	start := int(seq - first)
	if start >= len(p.events) {
		return nil, p.changed
	}
	end := min(len(p.events), start+max)
	out := make([]Event, 0, end-start)
	for k := start; k < end; k++ {
		out = append(out, p.events[k].event(i, first+int64(k)))
	}
	return out, p.changed
}

// SeqAt returns the sequence number of the first event of partition i
// enqueued at or after t (the next sequence number if none).
func (l *Log) SeqAt(i int, t time.Time) int64 {
	p := l.parts[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	first := p.nextSeq - int64(len(p.events))
	lo, hi := 0, len(p.events)
	for lo < hi {
		mid := (lo + hi) / 2
		if p.events[mid].enqueued.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return first + int64(lo)
}

// Wait blocks until partition i has an event with sequence number seq
// or ctx ends.
func (l *Log) Wait(ctx context.Context, i int, seq int64) error {
	for {
		evs, changed := l.Read(i, seq, 1)
		if len(evs) > 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
