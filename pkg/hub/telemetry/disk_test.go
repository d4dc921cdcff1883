package telemetry

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

func body(i int) *message.Message {
	return &message.Message{Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), ContentType: "application/json",
		Properties: map[string]string{"i": fmt.Sprint(i)}}
}

// readAll returns every event held in partition p.
func readAll(l *Log, p int) []Event {
	evs, _ := l.Read(p, 0, 1<<30)
	return evs
}

// Events appended before Close are read back after Open, with their
// sequence numbers; new events carry on from there, and a reader that
// resumes after the last sequence number it saw gets every new one.
func TestReopenKeepsEventsAndSequenceNumbers(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	devices := []string{"dev-a", "dev-b", "dev-c", "dev-d", "dev-e"}
	before := map[int][]Event{}
	for i := range 50 {
		ev := mustAppend(t, l, Event{DeviceID: devices[i%len(devices)], AuthMethod: "sas", GenerationID: "g", Message: body(i)})
		before[ev.Partition] = append(before[ev.Partition], ev)
	}
	lastSeen := map[int]int64{}
	for p := range l.Partitions() {
		lastSeen[p] = l.Info(p).Last
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = openDisk(t, dir, nil)
	for p := range l.Partitions() {
		got := readAll(l, p)
		if len(got) != len(before[p]) {
			t.Fatalf("partition %d after reopening: %d events; want %d", p, len(got), len(before[p]))
		}
		for k, ev := range got {
			want := before[p][k]
			if ev.SequenceNumber != want.SequenceNumber || ev.Offset != want.Offset || !ev.EnqueuedTime.Equal(want.EnqueuedTime) ||
				ev.DeviceID != want.DeviceID || string(ev.Message.Body) != string(want.Message.Body) ||
				ev.Message.Properties["i"] != want.Message.Properties["i"] || ev.Message.ContentType != "application/json" {
				t.Errorf("partition %d event %d after reopening = %+v; want %+v", p, k, ev, want)
			}
		}
		if info := l.Info(p); info.Last != lastSeen[p] || info.Count != len(before[p]) ||
			(len(before[p]) > 0 && !info.LastEnqueued.Equal(before[p][len(before[p])-1].EnqueuedTime)) {
			t.Errorf("Info(%d) after reopening = %+v; want last %d, %d events", p, info, lastSeen[p], len(before[p]))
		}
	}

	newEvents := map[int]int{}
	for i := 50; i < 100; i++ {
		ev := mustAppend(t, l, Event{DeviceID: devices[i%len(devices)], Message: body(i)})
		if ev.SequenceNumber <= lastSeen[ev.Partition] {
			t.Fatalf("event appended after reopening has sequence number %d; the partition's last before was %d",
				ev.SequenceNumber, lastSeen[ev.Partition])
		}
		newEvents[ev.Partition]++
	}
	for p := range l.Partitions() {
		evs, _ := l.Read(p, lastSeen[p]+1, 1000)
		if len(evs) != newEvents[p] {
			t.Errorf("partition %d: a reader resuming after %d gets %d events; want %d", p, lastSeen[p], len(evs), newEvents[p])
		}
		for k, ev := range evs {
			if ev.SequenceNumber != lastSeen[p]+1+int64(k) {
				t.Errorf("partition %d: resumed read #%d has sequence number %d; want %d", p, k, ev.SequenceNumber, lastSeen[p]+1+int64(k))
			}
		}
	}
}

// Appends made while a group is being written share the next synced
// batch: 100 concurrent appends take two commits, not 100.
func TestConcurrentAppendsShareOneSync(t *testing.T) {
	l := openDisk(t, t.TempDir(), nil)
	d := l.disk
	const n = 100
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	d.beforeCommit = func() {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	allQueued := make(chan struct{})
	d.queued = func(k int) {
		if k == n-1 {
			close(allQueued)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	seqs := make(chan int64, n)
	appendOne := func(i int) {
		defer wg.Done()
		ev, err := l.Append(Event{DeviceID: "one-device", Message: body(i)})
		errs <- err
		seqs <- ev.SequenceNumber
	}
	wg.Add(1)
	go appendOne(0)
	waitFor(t, entered, "the first commit")
	for i := 1; i < n; i++ {
		wg.Add(1)
		go appendOne(i)
	}
	waitFor(t, allQueued, "99 appends waiting in one group")
	close(release)
	wg.Wait()
	close(errs)
	close(seqs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	seen := map[int64]bool{}
	for s := range seqs {
		seen[s] = true
	}
	if len(seen) != n {
		t.Errorf("%d appends got %d distinct sequence numbers", n, len(seen))
	}
	if c := d.commits.Load(); c != 2 {
		t.Errorf("%d concurrent appends took %d synced commits; want 2 (the first, then the other 99 together)", n, c)
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Events older than the retention are dropped when an event is
// appended to their partition and when the log is opened; sequence
// numbers go on even when a partition was emptied.
func TestRetentionDropsExpiredEvents(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	opts := &Options{Partitions: 1, Retention: time.Hour, Now: clock}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustAppend(t, l, Event{DeviceID: "d", Message: body(i)})
	}
	advance(30 * time.Minute)
	mustAppend(t, l, Event{DeviceID: "d", Message: body(3)})
	advance(45 * time.Minute) // the first three are 75 minutes old, the fourth 45
	ev := mustAppend(t, l, Event{DeviceID: "d", Message: body(4)})
	if evs := readAll(l, 0); len(evs) != 2 || evs[0].SequenceNumber != 3 {
		t.Fatalf("after an hour's retention passed for 3 of 5 events: %d events held, from %d; want 2 from 3", len(evs), first(evs))
	}
	if seq := l.SeqAt(0, time.Time{}); seq != 3 {
		t.Errorf("SeqAt(zero) = %d; want the oldest held, 3", seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	advance(2 * time.Hour)
	l = openDisk(t, dir, opts)
	if info := l.Info(0); info.Count != 0 || info.First != 5 || info.Last != 4 {
		t.Errorf("opened after every event expired: Info = %+v; want empty at 5", info)
	}
	if !l.Info(0).LastEnqueued.Equal(ev.EnqueuedTime) {
		t.Errorf("LastEnqueued = %v; want %v", l.Info(0).LastEnqueued, ev.EnqueuedTime)
	}
	if got := mustAppend(t, l, Event{DeviceID: "d", Message: body(5)}); got.SequenceNumber != 5 {
		t.Errorf("next event after the partition emptied has sequence number %d; want 5", got.SequenceNumber)
	}
}

func first(evs []Event) int64 {
	if len(evs) == 0 {
		return -1
	}
	return evs[0].SequenceNumber
}

// MaxBytes drops the oldest events, keeping at least the newest, and
// the bytes held are known again after reopening.
func TestMaxBytesOnDisk(t *testing.T) {
	dir := t.TempDir()
	m := func() *message.Message { return &message.Message{Body: []byte(strings.Repeat("x", 100))} }
	opts := &Options{Partitions: 1, MaxBytes: 350}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		mustAppend(t, l, Event{DeviceID: "d", Message: m()})
	}
	if evs := readAll(l, 0); len(evs) != 3 || evs[0].SequenceNumber != 2 {
		t.Fatalf("5 events of 100 bytes in 350: %d held from %d; want 3 from 2", len(evs), first(evs))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openDisk(t, dir, opts)
	mustAppend(t, l, Event{DeviceID: "d", Message: m()})
	if evs := readAll(l, 0); len(evs) != 3 || evs[0].SequenceNumber != 3 {
		t.Fatalf("one more after reopening: %d held from %d; want 3 from 3", len(evs), first(evs))
	}
	mustAppend(t, l, Event{DeviceID: "d", Message: &message.Message{Body: []byte(strings.Repeat("y", 1000))}})
	if evs := readAll(l, 0); len(evs) != 1 || evs[0].SequenceNumber != 6 {
		t.Fatalf("an event larger than the bound: %d held from %d; want it alone", len(evs), first(evs))
	}
}

func TestOpenRefusesAnotherPartitionCount(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, &Options{Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, &Options{Partitions: 8})
	var pe *PartitionsError
	if !errors.As(err, &pe) || pe.Have != 4 || pe.Want != 8 {
		t.Errorf("Open with 8 partitions a log made with 4: %v; want a *PartitionsError", err)
	}
	if err == nil || !strings.Contains(err.Error(), "4 partitions, not 8") || !strings.Contains(err.Error(), "use 4 partitions") {
		t.Fatalf("Open with 8 partitions a log made with 4: %v; want an error naming both and the way out", err)
	}
}

// After Close, Append refuses events and reads find none, without
// touching the closed database.
func TestClosedLog(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		l := open(t, &Options{Partitions: 1})
		mustAppend(t, l, Event{DeviceID: "d", Message: body(0)})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(Event{DeviceID: "d", Message: body(1)}); !errors.Is(err, ErrClosed) {
			t.Errorf("Append after Close = %v; want ErrClosed", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		if l.disk != nil {
			if evs, _ := l.Read(0, 0, 10); len(evs) != 0 {
				t.Errorf("Read after Close = %d events", len(evs))
			}
			l.SeqAt(0, time.Now())
		}
	})
}

// AppendAsync calls back in the order of the calls, with the stored
// events, and with ErrClosed after Close.
func TestAppendAsyncCallsBackInOrder(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		l := open(t, &Options{Partitions: 2})
		const n = 500
		got := make(chan Event, n)
		for i := range n {
			l.AppendAsync(Event{DeviceID: fmt.Sprintf("dev%d", i%2), Message: body(i)}, func(ev Event, err error) {
				if err != nil {
					t.Errorf("AppendAsync #%d: %v", i, err)
				}
				got <- ev
			})
		}
		next := map[int]int64{}
		for i := range n {
			var ev Event
			select {
			case ev = <-got:
			case <-time.After(10 * time.Second):
				t.Fatalf("callback #%d did not come", i)
			}
			if string(ev.Message.Body) != fmt.Sprintf(`{"n":%d}`, i) || ev.SequenceNumber != next[ev.Partition] {
				t.Fatalf("callback #%d: body %s seq %d; want the %dth append, seq %d", i, ev.Message.Body, ev.SequenceNumber, i, next[ev.Partition])
			}
			next[ev.Partition]++
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		l.AppendAsync(Event{DeviceID: "dev0", Message: body(n)}, func(_ Event, err error) { errc <- err })
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("AppendAsync after Close called back with %v; want ErrClosed", err)
		}
	})
}

// Encoding a record allocates the record and nothing else for a message
// with one application property, as each of the SDKs' quickstart
// messages has: the hub encodes one for every event it stores.
func TestEncodeRecordAllocatesOnce(t *testing.T) {
	ev := Event{DeviceID: "dev-1", AuthMethod: "sas", GenerationID: "g", Message: &message.Message{
		Body: []byte(`{"temperature": 27.5}`), ContentType: "application/json", ContentEncoding: "utf-8",
		Properties: map[string]string{"temperatureAlert": "false"}}}
	encodeRecord(&ev) // fills the scratch pool
	if n := testing.AllocsPerRun(100, func() { encodeRecord(&ev) }); n > 2 {
		t.Errorf("encodeRecord: %v allocations; want at most 2 (the record, AppendBag's list of property names)", n)
	}
	st, err := decodeRecord(encodeRecord(&ev))
	if err != nil || st.deviceID != "dev-1" || st.authMethod != "sas" || st.generationID != "g" || string(st.body) != `{"temperature": 27.5}` ||
		st.bag != message.EncodeBag(ev.Message) {
		t.Errorf("decodeRecord(encodeRecord(%+v)) = %+v, %v", ev, st, err)
	}
}
