package telemetry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

func TestAppendAndRead(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		testAppendAndRead(t, open)
	})
}

func testAppendAndRead(t *testing.T, open opener) {
	now := time.Unix(1000, 0)
	l := open(t, &Options{Now: func() time.Time { now = now.Add(time.Second); return now }})
	p := l.PartitionOf("dev1")
	for i := 0; i < 5; i++ {
		ev := mustAppend(t, l, Event{DeviceID: "dev1", Message: &message.Message{Body: []byte(fmt.Sprint(i))}})
		if ev.Partition != p || ev.SequenceNumber != int64(i) || ev.Offset != fmt.Sprint(i) {
			t.Fatalf("Append #%d = partition %d seq %d offset %q", i, ev.Partition, ev.SequenceNumber, ev.Offset)
		}
	}
	evs, _ := l.Read(p, 2, 10)
	if len(evs) != 3 || string(evs[0].Message.Body) != "2" {
		t.Fatalf("Read(from 2) = %d events", len(evs))
	}
	if info := l.Info(p); info.First != 0 || info.Last != 4 || info.Count != 5 {
		t.Errorf("Info = %+v", info)
	}
	if seq := l.SeqAt(p, evs[0].EnqueuedTime); seq != 2 {
		t.Errorf("SeqAt(enqueued time of #2) = %d; want 2", seq)
	}
	if seq := l.SeqAt(p, evs[0].EnqueuedTime.Add(-time.Millisecond)); seq != 2 {
		t.Errorf("SeqAt(just before #2) = %d; want 2", seq)
	}
	if seq := l.SeqAt(p, evs[2].EnqueuedTime.Add(time.Millisecond)); seq != 5 {
		t.Errorf("SeqAt(after the last) = %d; want 5", seq)
	}
	if evs, _ := l.Read(p, 5, 10); len(evs) != 0 {
		t.Errorf("Read past the end = %d events", len(evs))
	}
}

// opener makes a log with opts for a test, closed at its end.
type opener func(t *testing.T, opts *Options) *Log

// forEachStore runs f with a log in memory and with one on disk.
func forEachStore(t *testing.T, f func(t *testing.T, open opener)) {
	t.Run("memory", func(t *testing.T) {
		f(t, func(t *testing.T, opts *Options) *Log {
			l := NewMemory(opts)
			t.Cleanup(func() { l.Close() })
			return l
		})
	})
	t.Run("disk", func(t *testing.T) {
		f(t, func(t *testing.T, opts *Options) *Log { return openDisk(t, t.TempDir(), opts) })
	})
}

// openDisk opens the log in dir, closed at the test's end.
func openDisk(t *testing.T, dir string, opts *Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func mustAppend(t *testing.T, l *Log, ev Event) Event {
	t.Helper()
	ev, err := l.Append(ev)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return ev
}

func TestOneDeviceStaysInOnePartition(t *testing.T) {
	l := New(4, 0, 0, nil)
	seen := map[int]bool{}
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("dev%d", i)
		seen[l.PartitionOf(id)] = true
		if again := New(4, 0, 0, nil); again.PartitionOf(id) != l.PartitionOf(id) {
			t.Fatalf("PartitionOf(%q) differs between two logs", id)
		}
	}
	if len(seen) != 4 {
		t.Errorf("100 devices use %d of 4 partitions", len(seen))
	}
}

func TestBoundDropsOldest(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		l := open(t, &Options{Partitions: 1, MaxEvents: 3})
		for i := 0; i < 10; i++ {
			mustAppend(t, l, Event{DeviceID: "d", Message: &message.Message{Body: []byte{byte(i)}}})
		}
		evs, _ := l.Read(0, 0, 100)
		if len(evs) != 3 || evs[0].SequenceNumber != 7 || evs[2].SequenceNumber != 9 {
			t.Fatalf("after 10 appends to a log of 3: %d events from seq %d", len(evs), evs[0].SequenceNumber)
		}
		if info := l.Info(0); info.First != 7 || info.Last != 9 || info.Count != 3 {
			t.Errorf("Info = %+v; want 7..9", info)
		}
	})
}

func TestWaitWakesOnAppend(t *testing.T) {
	forEachStore(t, testWaitWakesOnAppend)
}

func testWaitWakesOnAppend(t *testing.T, open opener) {
	l := open(t, &Options{Partitions: 1})
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), 0, 0) }()
	mustAppend(t, l, Event{DeviceID: "d", Message: &message.Message{}})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after Append")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 0, 5); err == nil {
		t.Error("Wait on a cancelled context returned nil")
	}
}

// The log keeps a message's properties encoded and gives back, on
// every read, a message with the same system and application
// properties, nulls and times, and the same body.
func TestReadGivesBackTheMessage(t *testing.T) {
	forEachStore(t, testReadGivesBackTheMessage)
}

func testReadGivesBackTheMessage(t *testing.T, open opener) {
	l := open(t, &Options{Partitions: 1})
	ctime := time.Date(2024, 5, 1, 10, 0, 0, 123000000, time.UTC)
	in := &message.Message{Body: []byte(`{"t":1}`), MessageID: "m 1", CorrelationID: "c&1", UserID: "u",
		ContentType: "application/json", ContentEncoding: "utf-8", OutputName: "out1", InterfaceID: "dtmi:x;1",
		ComponentName: "thermostat1", CreationTime: ctime, Properties: map[string]string{"a/b": "x=y", "n": ""}}
	in.SetNull("n")
	mustAppend(t, l, Event{DeviceID: "dev1", ModuleID: "mod1", AuthMethod: "x509", GenerationID: "g1", Message: in})
	for range 2 {
		evs, _ := l.Read(0, 0, 10)
		if len(evs) != 1 {
			t.Fatalf("Read = %d events", len(evs))
		}
		ev := evs[0]
		m := ev.Message
		if m == in || string(m.Body) != `{"t":1}` || m.MessageID != "m 1" || m.CorrelationID != "c&1" || m.UserID != "u" ||
			m.ContentType != "application/json" || m.ContentEncoding != "utf-8" || m.OutputName != "out1" ||
			m.InterfaceID != "dtmi:x;1" || m.ComponentName != "thermostat1" || !m.CreationTime.Equal(ctime) ||
			m.Properties["a/b"] != "x=y" || !m.IsNull("n") || len(m.Properties) != 2 {
			t.Errorf("read back %+v", m)
		}
		if ev.DeviceID != "dev1" || ev.ModuleID != "mod1" || ev.AuthMethod != "x509" || ev.GenerationID != "g1" ||
			ev.SequenceNumber != 0 || ev.Offset != "0" || ev.EnqueuedTime.IsZero() {
			t.Errorf("event %+v", ev)
		}
		m.Properties["a/b"] = "changed" // a reader's change stays its own
	}
}
