package device

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub"
)

// `device simulate --devices 3 --hub-connection-string CS` against the
// in-process hub: the identities that are missing are created through
// the service API, the one that exists keeps its key, and all three
// connect and send.
func TestSimulateFleetCreatesIdentities(t *testing.T) {
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { h.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			// hub.Close waits, up to the hub's 30 s handshake timeout, for
			// a connection that finished its TLS handshake but has not sent
			// a byte yet: net/http sometimes dials one for the command's
			// service client and keeps it idle. Not this test's subject.
			t.Log("hub.Close still waits for a connection that sent nothing; not waiting for it")
		}
	})
	svc, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CreateDevice("sim-00002"); err != nil {
		t.Fatal(err)
	}
	existing, _ := h.DeviceConnectionString("sim-00002", "")

	code, stdout, stderr := execute(t, "", func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) },
		"simulate", "--devices", "3", "--device-prefix", "sim-", "--hub-connection-string", svc, "--ca-file", h.CAFile(),
		"--count", "2", "--interval", "100ms", "-o", "json")
	if code != 0 {
		t.Fatalf("device simulate exited %d; stderr:\n%s", code, stderr)
	}
	ids := []string{"sim-00001", "sim-00002", "sim-00003"}
	connected := map[string]bool{}
	var summary struct {
		Stats struct {
			Devices, Sent, Acked, Errors int
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e struct {
			Type     string `json:"type"`
			DeviceID string `json:"deviceId"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", line, err)
		}
		switch e.Type {
		case "connected":
			connected[e.DeviceID] = true
		case "error":
			t.Errorf("error event: %s", line)
		case "summary":
			_ = json.Unmarshal([]byte(line), &summary)
		}
	}
	for _, id := range ids {
		if !connected[id] {
			t.Errorf("no connected event for %s; stdout:\n%s", id, stdout)
		}
		if _, err := h.Registry().Device(id); err != nil {
			t.Errorf("hub side: %s is not in the registry: %v", id, err)
		}
		l := h.Telemetry()
		evs, _ := l.Read(l.PartitionOf(id), 0, 1000)
		n := 0
		for _, ev := range evs {
			if ev.DeviceID == id {
				n++
			}
		}
		if n != 2 {
			t.Errorf("hub side: %d messages from %s; want 2", n, id)
		}
	}
	if s := summary.Stats; s.Devices != 3 || s.Sent != 6 || s.Acked != 6 || s.Errors != 0 {
		t.Errorf("summary %+v; want 3 devices, 6 sent and acknowledged, no errors", s)
	}
	if now, _ := h.DeviceConnectionString("sim-00002", ""); now != existing {
		t.Errorf("the existing device sim-00002 got a new key")
	}
	devs, _ := h.Registry().Devices(100)
	var got []string
	for _, d := range devs {
		got = append(got, d.DeviceID)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids) {
		t.Errorf("registry holds %q; want %q", got, ids)
	}
}
