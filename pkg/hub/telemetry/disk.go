package telemetry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// trimInterval is how often a log on disk drops expired events when no
// append does it.
const trimInterval = time.Minute

// memTableSize is the size of pebble's memtables. With pebble's
// default of 4 MB, a log taking 25,000 events a second flushed a table
// every few seconds, and a third of its CPU went to compacting them
// (each table spans every partition's newest events, so it overlaps
// most of the level below). At 32 MB it flushes eight times less often
// and compacts less than half as much. Pebble starts with a small
// memtable and doubles it up to this size (DB.newMemTable in
// github.com/cockroachdb/pebble/v2), so a quiet hub does not hold it;
// a busy one holds at most two (MemTableStopWritesThreshold).
const memTableSize = 32 << 20

// disk keeps a Log in a pebble database and commits appends in groups:
// every append waits in the open group; one goroutine (run) takes the
// group, gives its events their sequence numbers in order, writes them
// in one batch synced to disk, then wakes the group's appenders and the
// readers.
type disk struct {
	l   *Log
	db  *pebble.DB
	log *slog.Logger

	mu     sync.Mutex
	open   *group // the group appends join
	closed bool

	wake chan struct{} // 1 slot: the open group has appends
	stop chan struct{}
	done chan struct{} // closed when run returns

	// dbMu guards reads against the database's closing.
	dbMu     sync.RWMutex
	dbClosed bool

	// commits counts synced batches (groups), for tests and figures.
	commits atomic.Int64
	// Test hooks: beforeCommit runs in run before a group is written,
	// queued after an append joined a group of n.
	beforeCommit func()
	queued       func(n int)
}

// group is the appends committed by one synced batch.
type group struct {
	reqs []*appendReq
	done chan struct{} // closed when err is set and the events stored
	err  error
}

type appendReq struct {
	ev   Event
	rec  []byte
	size int64
	// done, if set, is called by the committer once the event is
	// stored or has failed; the appender does not wait.
	done func(Event, error)
}

// PartitionsError is Open's error for a log made with another number
// of partitions than asked for.
type PartitionsError struct {
	Dir        string
	Have, Want int
}

func (e *PartitionsError) Error() string {
	return fmt.Sprintf("telemetry: %s holds a log of %d partitions, not %d: use %d partitions, or move the directory away to start afresh",
		e.Dir, e.Have, e.Want, e.Have)
}

// Open opens the log kept in dir (made if missing): its events, their
// sequence numbers and the bytes they hold carry on from the last run,
// less the events that expired while it was closed. It refuses a log
// made with another number of partitions (*PartitionsError). Close it
// to release dir.
func Open(dir string, opts *Options) (*Log, error) {
	l := newLog(opts, -1, DefaultMaxBytesOnDisk)
	logger := slog.New(slog.DiscardHandler)
	if opts != nil && opts.Logger != nil {
		logger = opts.Logger
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{logger}, FormatMajorVersion: pebble.FormatNewest,
		MemTableSize: memTableSize})
	if err != nil {
		return nil, fmt.Errorf("telemetry: opening %s: %w", dir, err)
	}
	d := &disk{l: l, db: db, log: logger, open: &group{done: make(chan struct{})},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.disk = d
	if err := d.load(dir); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := d.trimAll(l.now()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("telemetry: dropping expired events from %s: %w", dir, err)
	}
	go d.run()
	return l, nil
}

// load checks the log's configuration and reads each partition's state.
func (d *disk) load(dir string) error {
	n := len(d.l.parts)
	v, closer, err := d.db.Get(configKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := d.db.Set(configKey, configValue(n), pebble.Sync); err != nil {
			return fmt.Errorf("telemetry: %w", err)
		}
	case err != nil:
		return fmt.Errorf("telemetry: reading %s: %w", dir, err)
	default:
		ok := len(v) == 3 && v[0] == recordVersion
		stored := 0
		if ok {
			stored = int(v[1])<<8 | int(v[2])
		}
		_ = closer.Close()
		if !ok {
			return fmt.Errorf("telemetry: %s holds a log of another format (version %d); move it away to start afresh", dir, firstByte(v))
		}
		if stored != n {
			return &PartitionsError{Dir: dir, Have: stored, Want: n}
		}
	}
	for i, p := range d.l.parts {
		v, closer, err := d.db.Get(metaKey(i))
		if err == nil {
			if len(v) == 16 {
				p.next, p.nextCum = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
			}
			_ = closer.Close()
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("telemetry: reading %s: %w", dir, err)
		}
		p.first, p.firstCum = p.next, p.nextCum
		it, err := d.iter(i, 0, math.MaxInt64)
		if err != nil {
			return err
		}
		if it.First() {
			p.first = seqOfKey(it.Key())
			p.firstEnq, p.firstCum, err = header(it.Value())
		}
		if err == nil && it.Last() {
			last := seqOfKey(it.Key())
			p.lastEnq, _, err = header(it.Value())
			p.next = max(p.next, last+1)
		}
		if cerr := it.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("telemetry: reading %s: %w", dir, err)
		}
	}
	return nil
}

// iter returns an iterator over partition part's events from..to-1.
func (d *disk) iter(part int, from, to int64) (*pebble.Iterator, error) {
	return d.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(part, from), UpperBound: eventKey(part, to)})
}

func (d *disk) append(ev Event, done func(Event, error)) (Event, error) {
	r := &appendReq{ev: ev, rec: encodeRecord(&ev), size: int64(ev.Message.Size()), done: done}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		if done != nil {
			done(Event{}, ErrClosed)
		}
		return Event{}, ErrClosed
	}
	g := d.open
	g.reqs = append(g.reqs, r)
	n := len(g.reqs)
	d.mu.Unlock()
	if d.queued != nil {
		d.queued(n)
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
	if done != nil {
		return Event{}, nil
	}
	<-g.done
	if g.err != nil {
		return Event{}, g.err
	}
	return r.ev, nil
}

// run commits the open group whenever it has appends, drops expired
// events every trimInterval, and on close commits what is left.
func (d *disk) run() {
	defer close(d.done)
	tick := time.NewTicker(trimInterval)
	defer tick.Stop()
	for {
		select {
		case <-d.wake:
		case <-tick.C:
			if err := d.trimAll(d.l.now()); err != nil {
				d.log.Error("telemetry: dropping expired events", "err", err)
			}
			continue
		case <-d.stop:
			d.mu.Lock()
			g := d.open
			d.open = &group{done: make(chan struct{})} // never committed: closed is set
			d.mu.Unlock()
			d.commit(g)
			return
		}
		d.mu.Lock()
		g := d.open
		d.open = &group{done: make(chan struct{})}
		d.mu.Unlock()
		d.commit(g)
	}
}

// span is a partition's state on disk (see partition).
type span struct {
	first, next       int64
	firstCum, nextCum int64
	firstEnq, lastEnq time.Time
}

// span returns p's state. The committer alone changes partitions on
// disk, so it reads them without the lock.
func (p *partition) span() span {
	return span{first: p.first, next: p.next, firstCum: p.firstCum, nextCum: p.nextCum, firstEnq: p.firstEnq, lastEnq: p.lastEnq}
}

// setSpan makes s p's state; the caller holds p.mu.
func (p *partition) setSpan(s span) {
	p.first, p.next, p.firstCum, p.nextCum, p.firstEnq, p.lastEnq = s.first, s.next, s.firstCum, s.nextCum, s.firstEnq, s.lastEnq
}

// commit writes g's events in one synced batch, drops what the bounds
// no longer allow, makes the events visible to readers and then wakes
// their appenders.
func (d *disk) commit(g *group) {
	if len(g.reqs) == 0 {
		g.finish()
		return
	}
	if d.beforeCommit != nil {
		d.beforeCommit()
	}
	l := d.l
	now := l.now().UTC()
	spans := make([]*span, len(l.parts)) // nil: not touched
	b := d.db.NewBatch()
	defer b.Close()
	for _, r := range g.reqs {
		i := r.ev.Partition
		s := spans[i]
		if s == nil {
			v := l.parts[i].span()
			s = &v
			spans[i] = s
		}
		enq := now
		if enq.Before(s.lastEnq) {
			enq = s.lastEnq
		}
		if s.first == s.next {
			s.firstEnq, s.firstCum = enq, s.nextCum
		}
		putHeader(r.rec, enq, s.nextCum)
		r.ev.SequenceNumber = s.next
		r.ev.Offset = strconv.FormatInt(s.next, 10)
		r.ev.EnqueuedTime = enq
		_ = b.Set(eventKey(i, s.next), r.rec, nil) // a batch being built takes every Set
		s.next++
		s.nextCum += r.size
		s.lastEnq = enq
	}
	for i, s := range spans {
		if s != nil {
			_ = b.Set(metaKey(i), metaValue(s.next, s.nextCum), nil)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		g.err = fmt.Errorf("telemetry: storing %d events: %w", len(g.reqs), err)
		d.log.Error("telemetry: storing events", "events", len(g.reqs), "err", err)
		g.finish()
		return
	}
	d.commits.Add(1)
	for i, s := range spans {
		if s == nil {
			continue
		}
		if err := d.trim(i, s, now); err != nil {
			d.log.Error("telemetry: dropping events beyond the bounds", "partition", i, "err", err)
		}
		p := l.parts[i]
		p.mu.Lock()
		p.setSpan(*s)
		p.wake()
		p.mu.Unlock()
	}
	g.finish()
}

// finish wakes g's appenders, in the order they appended.
func (g *group) finish() {
	close(g.done)
	for _, r := range g.reqs {
		if r.done == nil {
			continue
		}
		if g.err != nil {
			r.done(Event{}, g.err)
		} else {
			r.done(r.ev, nil)
		}
	}
}

// trimAll drops the expired events of every partition.
func (d *disk) trimAll(now time.Time) error {
	for i, p := range d.l.parts {
		s := p.span()
		if err := d.trim(i, &s, now); err != nil {
			return err
		}
		p.mu.Lock()
		p.setSpan(s)
		p.mu.Unlock()
	}
	return nil
}

// trim drops the oldest events of partition i, whose state is s, beyond
// the log's bounds or expired at now, and updates s. Only the committer
// (or Open, before it starts) calls it.
func (d *disk) trim(i int, s *span, now time.Time) error {
	l := d.l
	cutoff := l.cutoff(now)
	over := func(seq, cum int64, enq time.Time) bool {
		return (l.maxCount > 0 && s.next-seq > l.maxCount) ||
			(l.maxBytes > 0 && s.nextCum-cum > l.maxBytes && s.next-seq > 1) ||
			enq.Before(cutoff)
	}
	if s.first == s.next || !over(s.first, s.firstCum, s.firstEnq) {
		return nil
	}
	from := s.first
	if l.maxCount > 0 && s.next-from > l.maxCount {
		from = s.next - l.maxCount
	}
	newFirst, newCum, newEnq := s.next, s.nextCum, time.Time{}
	it, err := d.iter(i, from, s.next)
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		enq, cum, herr := header(it.Value())
		if herr != nil {
			err = herr
			break
		}
		if seq := seqOfKey(it.Key()); !over(seq, cum, enq) {
			newFirst, newCum, newEnq = seq, cum, enq
			break
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Not synced: if this is lost, the next Open drops them again.
	if err := d.db.DeleteRange(eventKey(i, s.first), eventKey(i, newFirst), pebble.NoSync); err != nil {
		return err
	}
	s.first, s.firstCum, s.firstEnq = newFirst, newCum, newEnq
	return nil
}

// read returns partition part's events from..to-1 that are still held.
func (d *disk) read(part int, from, to int64) []Event {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.dbClosed {
		return nil
	}
	it, err := d.iter(part, from, to)
	if err != nil {
		d.log.Error("telemetry: reading events", "partition", part, "err", err)
		return nil
	}
	defer it.Close()
	out := make([]Event, 0, to-from)
	for ok := it.First(); ok; ok = it.Next() {
		st, err := decodeRecord(it.Value())
		if err != nil {
			d.log.Error("telemetry: reading events", "partition", part, "err", err)
			break
		}
		out = append(out, st.event(part, seqOfKey(it.Key())))
	}
	return out
}

// seqAt returns the first of partition part's events first..next-1
// enqueued at or after t (next if none): enqueued times never go back
// within a partition, so a binary search over sequence numbers finds it.
func (d *disk) seqAt(part int, first, next int64, t time.Time) int64 {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.dbClosed {
		return next
	}
	lo, hi := first, next
	for lo < hi {
		mid := lo + (hi-lo)/2
		enq, ok := d.enqueued(part, mid)
		if !ok {
			// Dropped meanwhile: what is left starts later.
			lo = mid + 1
			continue
		}
		if enq.Before(t) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (d *disk) enqueued(part int, seq int64) (time.Time, bool) {
	v, closer, err := d.db.Get(eventKey(part, seq))
	if err != nil {
		return time.Time{}, false
	}
	defer closer.Close()
	enq, _, err := header(v)
	return enq, err == nil
}

func (d *disk) close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	close(d.stop)
	<-d.done
	d.dbMu.Lock()
	defer d.dbMu.Unlock()
	d.dbClosed = true
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("telemetry: closing: %w", err)
	}
	return nil
}

// pebbleLogger passes pebble's messages to slog: information at debug
// level (pebble reports every WAL and table it opens), errors at error
// level. Fatalf is for broken invariants; pebble requires it not to
// return, so it panics after logging.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("telemetry storage: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("telemetry storage: " + fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("telemetry storage: fatal: " + msg)
	panic("telemetry storage: " + msg)
}
