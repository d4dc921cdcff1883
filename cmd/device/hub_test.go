package device

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// `device simulate --devices 3 --hub-connection-string CS` against the
// in-process hub: the identities that are missing are created through
// the service API, the one that exists keeps its key, and all three
// connect and send.
func TestSimulateFleetCreatesIdentities(t *testing.T) {
	t.Parallel()
	h, svc := startHub(t)
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

// startHub starts an in-process hub for a test and returns its service
// connection string.
func startHub(t *testing.T) (*hub.Hub, string) {
	t.Helper()
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
			// service client and keeps it idle. Not these tests' subject.
			t.Log("hub.Close still waits for a connection that sent nothing; not waiting for it")
		}
	})
	svc, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	return h, svc
}

// What a fleet shows, run against the in-process hub: on a terminal a
// status line on stderr and no message lines (unless
// --print-messages); piped, JSON Lines events with stats events;
// --quiet, the summary only.
func TestSimulateFleetDisplay(t *testing.T) {
	t.Parallel()
	h, svc := startHub(t)
	sim := func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }
	// Each case runs its own fleet (its own device prefix) on the one
	// hub, at the same time as the others: each mostly waits out its
	// messages' interval.
	fleet := func(prefix string, extra ...string) []string {
		return append([]string{"simulate", "--devices", "3", "--device-prefix", prefix, "--hub-connection-string", svc, "--ca-file", h.CAFile(),
			"--count", "3", "--interval", "300ms"}, extra...)
	}
	timed := regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d\d\d print-0000[123]: Sending message: \{"temperature"`)

	t.Run("terminal: status line, no message lines", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := executeTTY(t, true, true, "", sim, fleet("term-")...)
		if code != 0 {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
		if !strings.HasPrefix(stdout, "Summary: 9 message(s) sent, 9 acknowledged, 0 error(s)") || strings.Count(stdout, "\n") != 1 {
			t.Errorf("stdout %q; want the summary only", stdout)
		}
		last := lastFrame(stderr)
		if !regexp.MustCompile(`^0/3 connected, \d+ msg/s, 9 acked, 0 errors, 0 reconnects, \d+s *\n$`).MatchString(last) {
			t.Errorf("the terminal ends with %q; want the status line of 3 devices, 9 messages acknowledged", last)
		}
		if strings.Contains(stderr, "Sending message") || strings.Contains(stderr, "connected\n") {
			t.Errorf("stderr has message or connection lines:\n%s", stderr)
		}
	})

	t.Run("terminal with --print-messages: each message, with its time", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := executeTTY(t, true, true, "", sim, fleet("print-", "--print-messages")...)
		if code != 0 {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
		// Under a live status, the lines go above it, on stderr (the
		// same terminal); stdout has the summary below it.
		if n := len(timed.FindAllString(ansiFree(stderr), -1)); n != 9 {
			t.Errorf("%d timed message lines on the terminal; want 9:\n%s", n, stderr)
		}
		if !strings.HasPrefix(stdout, "Summary: 9 message(s) sent") {
			t.Errorf("stdout %q; want the summary", stdout)
		}
	})

	t.Run("piped: JSON Lines with stats events", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := executeTTY(t, false, false, "", sim, fleet("piped-", "--stats-interval", "100ms")...)
		if code != 0 {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
		types := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			var e struct {
				Type  string          `json:"type"`
				Stats *simulate.Stats `json:"stats"`
			}
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("stdout line %q is not JSON: %v", line, err)
			}
			types[e.Type]++
			if e.Type == "stats" && (e.Stats == nil || e.Stats.Devices != 3) {
				t.Errorf("stats event %s; want the counters of 3 devices", line)
			}
		}
		// The run lasts at least two intervals of 300ms: several stats
		// intervals of 100ms.
		if types["sent"] != 9 || types["connected"] != 3 || types["summary"] != 1 || types["stats"] == 0 {
			t.Errorf("event types %v; want 9 sent, 3 connected, stats, 1 summary", types)
		}
		if stderr != "" {
			t.Errorf("stderr %q; want nothing on a stderr that is not a terminal either", stderr)
		}
	})

	t.Run("--quiet: the summary only", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := executeTTY(t, true, true, "", sim, fleet("quiet-", "--quiet")...)
		if code != 0 || !strings.HasPrefix(stdout, "Summary: 9 message(s) sent") || strings.Count(stdout, "\n") != 1 || stderr != "" {
			t.Errorf("exit %d stdout %q stderr %q; want the summary only", code, stdout, stderr)
		}
		code, stdout, stderr = executeTTY(t, false, false, "", sim, fleet("quiet-", "--quiet")...)
		if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stdout, `{"type":"summary"`) || stderr != "" {
			t.Errorf("piped: exit %d stdout %q stderr %q; want the summary event only", code, stdout, stderr)
		}
	})
}

func ansiFree(s string) string { return ansi.ReplaceAllString(s, "") }

// `device send --transport T` reaches the hub with the message's
// properties, and `device simulate --transport T --c2d-settle reject`
// rejects a queued C2D message: the hub records a Rejected feedback for
// it; for AMQP and HTTPS.
func TestTransportsAgainstHub(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{"amqp", "https"} {
		t.Run(tr, func(t *testing.T) {
			h, _ := startHub(t)
			if err := h.CreateDevice("dev1"); err != nil {
				t.Fatal(err)
			}
			cs, _ := h.DeviceConnectionString("dev1", "")
			code, _, stderr := execute(t, "", func(f *cmdutil.Factory) *cobra.Command { return newCmdSend(f, nil) },
				"send", "--transport", tr, "--connection-string", cs, "--ca-file", h.CAFile(), "--data", "over "+tr, "--property", "level=info")
			if code != 0 {
				t.Fatalf("device send --transport %s exited %d; stderr:\n%s", tr, code, stderr)
			}
			l := h.Telemetry()
			evs, _ := l.Read(l.PartitionOf("dev1"), 0, 100)
			if len(evs) != 1 || string(evs[0].Message.Body) != "over "+tr || evs[0].Message.Properties["level"] != "info" {
				t.Fatalf("hub logged %+v; want one message \"over %s\" with level=info", evs, tr)
			}

			if _, err := h.Registry().Enqueue("dev1", "", &registry.C2DMessage{MessageID: "c1", Body: []byte("stop"), Ack: registry.AckFull}); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := execute(t, "", func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) },
				"simulate", "--transport", tr, "--c2d-settle", "reject", "--connection-string", cs, "--ca-file", h.CAFile(),
				"--count", "2", "--interval", "200ms", "-o", "json")
			if code != 0 {
				t.Fatalf("device simulate --transport %s exited %d; stderr:\n%s", tr, code, stderr)
			}
			if !strings.Contains(stdout, `"type":"c2d"`) || !strings.Contains(stdout, "stop") {
				t.Errorf("no c2d event with the message in stdout:\n%s", stdout)
			}
			// The reject was answered before simulate closed its client;
			// the wait only gives a loaded machine time, and shows what
			// the command printed if the record never comes.
			var fb *registry.FeedbackBatch
			var err error
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if fb, err = h.Registry().TakeFeedback(10); err != nil || fb != nil {
					break
				}
			}
			if err != nil || fb == nil || len(fb.Records) != 1 || fb.Records[0].OriginalMessageID != "c1" || fb.Records[0].StatusCode != "Rejected" {
				t.Errorf("feedback %+v, %v; want c1 Rejected; simulate stdout:\n%s\nstderr:\n%s", fb, err, stdout, stderr)
			}
		})
	}
}
