package telemetry

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// Event is one telemetry message as the hub stored it.
type Event struct {
	// Partition is the partition the event is in.
	Partition int
	// SequenceNumber counts events within the partition from 0, and
	// goes on across restarts of a log kept on disk.
	SequenceNumber int64
	// Offset is the event's offset in the partition (the sequence
	// number in decimal: the hub keeps no byte offsets).
	Offset string
	// EnqueuedTime is when the hub accepted the message. It never goes
	// back within a partition.
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

// ErrClosed is returned by Append once the log is closed.
var ErrClosed = errors.New("telemetry: log closed")

// Retention limits of IoT Hub's built-in endpoint: it keeps events one
// day by default and at most seven days ("Read device-to-cloud messages
// from the built-in endpoint", learn.microsoft.com/azure/iot-hub/
// iot-hub-devguide-messages-read-builtin).
const (
	DefaultRetention = 24 * time.Hour
	MaxRetention     = 7 * 24 * time.Hour
)

// Default size bounds. In memory the log keeps what today's hub kept;
// on disk it keeps what one S1 unit of IoT Hub guarantees, "at least
// 400,000 messages" of 4 KB (the same Azure page), and any number of
// events within that.
const (
	DefaultMaxEventsInMemory = 250_000
	DefaultMaxBytesInMemory  = 512 << 20
	DefaultMaxBytesOnDisk    = 400_000 * 4096
)

// Options configure a Log. A nil *Options means the defaults.
type Options struct {
	// Partitions is the number of partitions. A log on disk keeps the
	// number it was made with; Open refuses another. Default: 4.
	Partitions int
	// MaxEvents bounds the number of events held; beyond it the oldest
	// are dropped. Each partition holds at most its share. 0 means the
	// default: DefaultMaxEventsInMemory in memory, no bound on disk; a
	// negative value means no bound.
	MaxEvents int
	// MaxBytes bounds the bytes of bodies and properties held
	// (message.Message.Size); beyond it the oldest events are dropped,
	// keeping at least the newest of each partition. 0 means the
	// default: DefaultMaxBytesInMemory in memory, DefaultMaxBytesOnDisk
	// on disk; a negative value means no bound.
	MaxBytes int64
	// Retention is how long events are kept: older ones are dropped
	// when an event is appended to their partition and, on disk, every
	// minute and when the log is opened. 0 means DefaultRetention; a
	// negative value keeps events for ever.
	Retention time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives the storage engine's messages (on disk).
	// Default: discard.
	Logger *slog.Logger
}

// Log is the partitioned log of telemetry that monitors read (the hub's
// Event Hub-compatible endpoint), in memory (New, NewMemory) or on disk
// (Open). Events go to the partition of the hash of their device id, so
// one device's events stay in order. Events beyond the bounds of
// Options are dropped, oldest first. Safe for concurrent use.
type Log struct {
	parts     []*partition
	maxCount  int64 // per partition; 0: no bound
	maxBytes  int64 // per partition; 0: no bound
	retention time.Duration
	now       func() time.Time
	disk      *disk // nil: in memory

	closeMu sync.RWMutex
	closed  bool
}

type partition struct {
	mu sync.Mutex
	// first and next are the sequence numbers of the oldest event held
	// and of the next event; first == next when there is none.
	first, next int64
	// firstEnq and lastEnq are the enqueued times of the oldest and
	// newest events held (lastEnq stays when the partition empties).
	firstEnq, lastEnq time.Time
	// changed is closed on the first append after a reader took it
	// (watched), and then replaced: an append nobody waits for costs
	// no channel.
	changed chan struct{}
	watched bool

	// In memory: events.at(i) has sequence number first+i.
	events ring
	bytes  int64

	// On disk: the bytes of all events ever appended before first and
	// before next, so that next's minus first's is the bytes held.
	firstCum, nextCum int64
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
	size                                         int64 // Message.Size, for maxBytes
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

// New returns a log in memory with n partitions (default 4) holding at
// most maxEvents events (default 250,000) and maxBytes bytes of bodies
// and properties (default 512 MiB) in all, for one day. It is
// NewMemory with those options.
func New(n, maxEvents, maxBytes int, now func() time.Time) *Log {
	return NewMemory(&Options{Partitions: n, MaxEvents: maxEvents, MaxBytes: int64(maxBytes), Now: now})
}

// NewMemory returns a log in memory: nothing survives the process.
func NewMemory(opts *Options) *Log {
	return newLog(opts, DefaultMaxEventsInMemory, DefaultMaxBytesInMemory)
}

// newLog applies opts' defaults, with the given default bounds.
func newLog(opts *Options, defEvents int, defBytes int64) *Log {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Partitions <= 0 {
		o.Partitions = 4
	}
	if o.MaxEvents == 0 {
		o.MaxEvents = defEvents
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = defBytes
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := int64(o.Partitions)
	l := &Log{now: o.Now}
	if o.MaxEvents > 0 {
		l.maxCount = max(1, int64(o.MaxEvents)/n)
	}
	if o.MaxBytes > 0 {
		l.maxBytes = max(1, o.MaxBytes/n)
	}
	if o.Retention > 0 {
		l.retention = o.Retention
	}
	for range o.Partitions {
		l.parts = append(l.parts, &partition{changed: make(chan struct{})})
	}
	return l
}

// watch returns the channel the next append closes. Call with mu held.
func (p *partition) watch() chan struct{} {
	p.watched = true
	return p.changed
}

// wake closes the channel watch returned, if one was taken, for a
// change. Call with mu held.
func (p *partition) wake() {
	if !p.watched {
		return
	}
	close(p.changed)
	p.changed, p.watched = make(chan struct{}), false
}

// Partitions is the number of partitions.
func (l *Log) Partitions() int { return len(l.parts) }

// PartitionOf returns the partition of a device's events.
func (l *Log) PartitionOf(deviceID string) int {
	h := fnv.New32a()
	h.Write([]byte(deviceID))
	return int(h.Sum32() % uint32(len(l.parts)))
}

// cutoff returns the enqueued time before which events have expired
// (zero without retention).
func (l *Log) cutoff(now time.Time) time.Time {
	if l.retention <= 0 {
		return time.Time{}
	}
	return now.Add(-l.retention)
}

// Append stores ev, filling in its partition, sequence number, offset
// and enqueued time, and returns the stored event. On disk it returns
// once the event is durable (synced to disk), sharing the sync with
// the appends made meanwhile; an error means it was not stored. A nil
// Message is stored as an empty one. Read returns a copy of the
// message, not ev.Message itself. After Close it returns ErrClosed.
func (l *Log) Append(ev Event) (Event, error) {
	if ev.Message == nil {
		ev.Message = &message.Message{}
	}
	ev.Partition = l.PartitionOf(ev.DeviceID)
	if l.disk != nil {
		return l.disk.append(ev, nil)
	}
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return Event{}, ErrClosed
	}
	p := l.parts[ev.Partition]
	st := stored{deviceID: ev.DeviceID, moduleID: ev.ModuleID, authMethod: ev.AuthMethod, generationID: ev.GenerationID,
		body: ev.Message.Body, bag: message.EncodeBag(ev.Message), size: int64(ev.Message.Size())}
	p.mu.Lock()
	ev.SequenceNumber = p.next
	ev.Offset = strconv.FormatInt(ev.SequenceNumber, 10)
	ev.EnqueuedTime = l.now().UTC()
	if ev.EnqueuedTime.Before(p.lastEnq) {
		ev.EnqueuedTime = p.lastEnq
	}
	st.enqueued = ev.EnqueuedTime
	p.next++
	p.lastEnq = ev.EnqueuedTime
	p.events.push(st)
	p.bytes += st.size
	cutoff := l.cutoff(ev.EnqueuedTime)
	drop := 0
	for left := p.events.len(); left > 0; left = p.events.len() - drop {
		e := p.events.at(drop)
		if !(l.maxCount > 0 && int64(left) > l.maxCount) && !(l.maxBytes > 0 && p.bytes > l.maxBytes && left > 1) &&
			!e.enqueued.Before(cutoff) {
			break
		}
		p.bytes -= e.size
		drop++
	}
	p.events.drop(drop)
	p.first = p.next - int64(p.events.len())
	if p.events.len() > 0 {
		p.firstEnq = p.events.at(0).enqueued
	}
	p.wake()
	p.mu.Unlock()
	return ev, nil
}

// AppendAsync stores ev as Append does, without waiting: done is called
// with the stored event (or the error) once it is stored, on disk once
// it is synced. Calls of done follow the order of the AppendAsync
// calls. done must not block: on disk it runs on the goroutine that
// commits every append. In memory, and after Close, done is called
// before AppendAsync returns.
func (l *Log) AppendAsync(ev Event, done func(Event, error)) {
	if ev.Message == nil {
		ev.Message = &message.Message{}
	}
	if l.disk != nil {
		ev.Partition = l.PartitionOf(ev.DeviceID)
		_, _ = l.disk.append(ev, done) // done has the result
		return
	}
	done(l.Append(ev))
}

// Durable reports whether the log is kept on disk (Open).
func (l *Log) Durable() bool { return l.disk != nil }

// PartitionInfo describes one partition.
type PartitionInfo struct {
	// First and Last are the sequence numbers of the oldest and newest
	// events held; Last is First-1 when the partition is empty.
	First, Last int64
	// LastEnqueued is the newest event's enqueued time (zero if none
	// was ever appended).
	LastEnqueued time.Time
	// Count is the number of events held.
	Count int
}

// Info returns the state of partition i.
func (l *Log) Info(i int) PartitionInfo {
	p := l.parts[i]
	p.mu.Lock()
	defer p.mu.Unlock()
	return PartitionInfo{First: p.first, Last: p.next - 1, Count: int(p.next - p.first), LastEnqueued: p.lastEnq}
}

// Read returns up to max events of partition i with sequence numbers
// from seq on (events already dropped are skipped), and a channel that
// is closed when the partition changes after this read. On disk it
// returns only durable events, and nothing once the log is closed.
func (l *Log) Read(i int, seq int64, max int) ([]Event, <-chan struct{}) {
	p := l.parts[i]
	p.mu.Lock()
	first, next, changed := p.first, p.next, p.watch()
	if l.disk != nil {
		p.mu.Unlock()
		seq = min(next, maxInt64(seq, first))
		end := min(next, seq+int64(max))
		if seq >= end {
			return nil, changed
		}
		return l.disk.read(i, seq, end), changed
	}
	defer p.mu.Unlock()
	seq = maxInt64(seq, first)
	start := int(seq - first)
	if start >= p.events.len() {
		return nil, changed
	}
	end := min(p.events.len(), start+max)
	out := make([]Event, 0, end-start)
	for k := start; k < end; k++ {
		out = append(out, p.events.at(k).event(i, first+int64(k)))
	}
	return out, changed
}

func maxInt64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// SeqAt returns the sequence number of the first event of partition i
// enqueued at or after t (the next sequence number if none).
func (l *Log) SeqAt(i int, t time.Time) int64 {
	p := l.parts[i]
	p.mu.Lock()
	if l.disk != nil {
		first, next := p.first, p.next
		p.mu.Unlock()
		return l.disk.seqAt(i, first, next, t)
	}
	defer p.mu.Unlock()
	lo, hi := 0, p.events.len()
	for lo < hi {
		mid := (lo + hi) / 2
		if p.events.at(mid).enqueued.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return p.first + int64(lo)
}

// Wait blocks until partition i has an event with sequence number seq
// or ctx ends.
func (l *Log) Wait(ctx context.Context, i int, seq int64) error {
	p := l.parts[i]
	for {
		p.mu.Lock()
		has, changed := maxInt64(seq, p.first) < p.next, p.watch()
		p.mu.Unlock()
		if has {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops the log taking events: Append returns ErrClosed from now
// on. On disk it first stores the events being appended, then closes
// the files. Reads after Close find no events on disk. Close returns
// the storage engine's error, if any; a second Close does nothing.
func (l *Log) Close() error {
	if l.disk != nil {
		return l.disk.close()
	}
	l.closeMu.Lock()
	l.closed = true
	l.closeMu.Unlock()
	return nil
}
