package telemetry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

func TestAppendAndRead(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(4, 0, 0, func() time.Time { now = now.Add(time.Second); return now })
	p := l.PartitionOf("dev1")
	for i := 0; i < 5; i++ {
		ev := l.Append(Event{DeviceID: "dev1", Message: &message.Message{Body: []byte(fmt.Sprint(i))}})
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
	if seq := l.SeqAt(p, time.Unix(1003, 0)); seq != 2 {
		t.Errorf("SeqAt(1003) = %d; want 2", seq)
	}
	if evs, _ := l.Read(p, 5, 10); len(evs) != 0 {
		t.Errorf("Read past the end = %d events", len(evs))
	}
}

func TestOneDeviceStaysInOnePartition(t *testing.T) {
	l := New(4, 0, 0, nil)
	seen := map[int]bool{}
	for i := 0; i < 100; i++ {
		seen[l.PartitionOf(fmt.Sprintf("dev%d", i))] = true
		if l.PartitionOf("same") != l.PartitionOf("same") {
			t.Fatal("PartitionOf is not stable")
		}
	}
	if len(seen) != 4 {
		t.Errorf("100 devices use %d of 4 partitions", len(seen))
	}
}

func TestBoundDropsOldest(t *testing.T) {
	l := New(1, 3, 0, nil)
	for i := 0; i < 10; i++ {
		l.Append(Event{DeviceID: "d", Message: &message.Message{Body: []byte{byte(i)}}})
	}
	evs, _ := l.Read(0, 0, 100)
	if len(evs) != 3 || evs[0].SequenceNumber != 7 || evs[2].SequenceNumber != 9 {
		t.Fatalf("after 10 appends to a log of 3: %d events from seq %d", len(evs), evs[0].SequenceNumber)
	}
}

func TestWaitWakesOnAppend(t *testing.T) {
	l := New(1, 0, 0, nil)
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background(), 0, 0) }()
	l.Append(Event{DeviceID: "d", Message: &message.Message{}})
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
	l := New(1, 0, 0, nil)
	ctime := time.Date(2024, 5, 1, 10, 0, 0, 123000000, time.UTC)
	in := &message.Message{Body: []byte(`{"t":1}`), MessageID: "m 1", CorrelationID: "c&1", UserID: "u",
		ContentType: "application/json", ContentEncoding: "utf-8", OutputName: "out1", InterfaceID: "dtmi:x;1",
		ComponentName: "thermostat1", CreationTime: ctime, Properties: map[string]string{"a/b": "x=y", "n": ""}}
	in.SetNull("n")
	l.Append(Event{DeviceID: "dev1", ModuleID: "mod1", AuthMethod: "x509", GenerationID: "g1", Message: in})
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
