package hub

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
)

// startHubIn starts a hub that keeps its state in dir.
func startHubIn(t *testing.T, dir string) *Hub {
	t.Helper()
	h := New(&Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func deviceCS(t *testing.T, h *Hub, id string) *connstr.ConnectionString {
	t.Helper()
	s, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	return connstr.MustParse(s)
}

// Telemetry acknowledged before a restart is read back after it, with
// its sequence numbers; new telemetry carries on from there, so a
// monitor resuming after the last sequence number it saw misses none.
func TestTelemetrySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	h := startHubIn(t, dir)
	createDevice(t, h, "dev1")
	d, err := dial(t, h, deviceCS(t, h, "dev1"), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		d.publish(t, "devices/dev1/messages/events/alert=high", 1, fmt.Sprintf(`{"n":%d}`, i))
	}
	d.c.Disconnect(0)
	p := h.Telemetry().PartitionOf("dev1")
	lastSeen := h.Telemetry().Info(p).Last
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	h = startHubIn(t, dir)
	evs, _ := h.Telemetry().Read(p, 0, 100)
	if len(evs) != 10 {
		t.Fatalf("after a restart the hub holds %d events; want the 10 acknowledged before it", len(evs))
	}
	for i, ev := range evs {
		if string(ev.Message.Body) != fmt.Sprintf(`{"n":%d}`, i) || ev.SequenceNumber != int64(i) || ev.Message.Properties["alert"] != "high" {
			t.Errorf("event %d after restart: seq %d body %s props %v", i, ev.SequenceNumber, ev.Message.Body, ev.Message.Properties)
		}
	}
	d, err = dial(t, h, deviceCS(t, h, "dev1"), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 15; i++ {
		d.publish(t, "devices/dev1/messages/events/", 1, fmt.Sprintf(`{"n":%d}`, i))
	}
	resumed, _ := h.Telemetry().Read(p, lastSeen+1, 100)
	if len(resumed) != 5 || resumed[0].SequenceNumber != lastSeen+1 || string(resumed[0].Message.Body) != `{"n":10}` {
		t.Fatalf("a monitor resuming after sequence number %d reads %d events from %d; want the 5 new ones from %d",
			lastSeen, len(resumed), first(resumed), lastSeen+1)
	}
}

func first(evs []telemetry.Event) int64 {
	if len(evs) == 0 {
		return -1
	}
	return evs[0].SequenceNumber
}

// Close while devices publish: every publish the hub acknowledged is in
// the log when it starts again.
func TestCloseKeepsEveryAcknowledgedPublish(t *testing.T) {
	dir := t.TempDir()
	h := startHubIn(t, dir)
	const devices = 5
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	started := make(chan struct{}, devices)
	for k := range devices {
		id := fmt.Sprintf("dev%d", k)
		createDevice(t, h, id)
		d, err := dial(t, h, deviceCS(t, h, id), "")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				body := fmt.Sprintf("%s-%d", id, i)
				tok := d.c.Publish("devices/"+id+"/messages/events/", 1, false, body)
				select {
				case <-tok.Done():
				case <-d.lost:
					return // what is not acknowledged by now never will be
				}
				if tok.Error() != nil {
					return
				}
				mu.Lock()
				acked[body] = true
				mu.Unlock()
				if i == 20 {
					started <- struct{}{}
				}
			}
		}()
	}
	for range devices {
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatal("devices did not get 20 publishes acknowledged")
		}
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()

	h = startHubIn(t, dir)
	stored := map[string]bool{}
	for p := range h.Telemetry().Partitions() {
		evs, _ := h.Telemetry().Read(p, 0, 1<<20)
		for _, ev := range evs {
			stored[string(ev.Message.Body)] = true
		}
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for b := range acked {
		if !stored[b] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged publishes are missing after Close and restart", lost, len(acked))
	}
}
