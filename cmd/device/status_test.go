package device

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/simulate"
)

func TestChooseDisplay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                        string
		format                      output.Format
		outTTY, errTTY              bool
		fleet, printMessages, quiet bool
		want                        display
	}{
		{"one device on a terminal: each message", output.FormatTable, true, true, false, false, false,
			display{messages: true}},
		{"one device piped: each message, readable", output.FormatTable, false, false, false, false, false,
			display{messages: true}},
		{"one device, -o json", output.FormatJSON, true, true, false, false, false,
			display{json: true}},
		{"fleet on a terminal: status line, no messages", output.FormatTable, true, true, true, false, false,
			display{live: true}},
		{"fleet on a terminal with --print-messages", output.FormatTable, true, true, true, true, false,
			display{live: true, messages: true}},
		{"fleet piped: events, status on the terminal's stderr", output.FormatTable, false, true, true, false, false,
			display{json: true, live: true}},
		{"fleet piped, stderr too: events only", output.FormatTable, false, false, true, false, false,
			display{json: true}},
		{"fleet -o json on a terminal: events, no redrawn line among them", output.FormatJSON, true, true, true, false, false,
			display{json: true}},
		{"fleet, stderr to a file: stats lines there", output.FormatTable, true, false, true, false, false,
			display{statsLines: true}},
		{"fleet --quiet on a terminal", output.FormatTable, true, true, true, true, true,
			display{quiet: true}},
		{"fleet --quiet piped", output.FormatTable, false, false, true, false, true,
			display{json: true, quiet: true}},
		{"one device --quiet", output.FormatTable, true, true, false, false, true,
			display{quiet: true}},
	}
	for _, tt := range tests {
		io := &cmdutil.IOStreams{OutTTY: tt.outTTY, ErrTTY: tt.errTTY}
		if got := chooseDisplay(tt.format, io, tt.fleet, tt.printMessages, tt.quiet); got != tt.want {
			t.Errorf("%s: chooseDisplay = %+v; want %+v", tt.name, got, tt.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for mpb's goroutine and the test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ansi matches the escape sequences mpb redraws with.
var ansi = regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)

// lastFrame is what a terminal shows at the end of out: the text after
// the last "cursor up N lines, erase below" of mpb's redraws.
func lastFrame(out string) string {
	redraw := regexp.MustCompile(`\x1b\[[0-9]+A\x1b\[J`)
	if loc := redraw.FindAllStringIndex(out, -1); len(loc) > 0 {
		out = out[loc[len(loc)-1][1]:]
	}
	return ansi.ReplaceAllString(out, "")
}

// A fleet on a terminal: its status line and connect progress bar on
// stderr, the lines of what the back end did above them, no message
// lines, errors up to a limit, and the summary on stdout below.
func TestPrinterLiveStatus(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	var stderr syncBuffer
	io := &cmdutil.IOStreams{Out: &stdout, ErrOut: &stderr, OutTTY: true, ErrTTY: true}
	d := chooseDisplay(output.FormatTable, io, true, false, false)
	p := newPrinter(io, d, true)
	p.loc = time.UTC

	var connected, acked, errs atomic.Int64
	stats := func() simulate.Stats {
		return simulate.Stats{Devices: 3, Connected: connected.Load(), Acked: acked.Load(), Errors: errs.Load(), Reconnects: 1, ElapsedSeconds: 42.5}
	}
	// Never refreshed but at the end: the last frame is the one to check.
	l, err := newLiveStatus(io.ErrOut, 3, stats, mpb.WithManualRefresh(make(chan any)), mpb.WithWidth(120))
	if err != nil {
		t.Fatal(err)
	}
	p.setLive(l)

	at := time.Date(2026, 3, 1, 9, 30, 5, 0, time.UTC)
	for _, id := range []string{"sim-00001", "sim-00002"} {
		connected.Add(1)
		p.print(simulate.Event{Type: simulate.EventConnected, Time: at, DeviceID: id})
	}
	for i := range 5 {
		acked.Add(1)
		p.print(simulate.Event{Type: simulate.EventSent, Time: at, DeviceID: "sim-00001", Seq: int64(i + 1), Body: json.RawMessage(`{"n":1}`)})
	}
	p.print(simulate.Event{Type: simulate.EventTwin, Time: at, DeviceID: "sim-00001", Reported: json.RawMessage(`{"fw":"1"}`), ReportedVersion: 2})
	p.print(simulate.Event{Type: simulate.EventMethod, Time: at, DeviceID: "sim-00002", Method: "reboot", Status: 200})
	for i := range maxLiveErrors + 5 {
		errs.Add(1)
		p.print(simulate.Event{Type: simulate.EventError, Time: at, DeviceID: "sim-00003", Error: fmt.Sprintf("failure %d", i+1)})
	}
	p.print(simulate.Event{Type: simulate.EventSummary, Time: at, Stats: &simulate.Stats{Devices: 3, Sent: 5, Acked: 5}})

	screen := ansi.ReplaceAllString(stderr.String(), "")
	for _, want := range []string{
		"09:30:05.000 sim-00002: Method reboot called with payload (none): status 200 (none)",
		fmt.Sprintf("09:30:05.000 sim-00003: Error: failure %d", maxLiveErrors),
		fmt.Sprintf("(only the first %d errors are shown", maxLiveErrors),
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("the terminal shows no %q:\n%s", want, screen)
		}
	}
	last := lastFrame(stderr.String())
	if !regexp.MustCompile(`connecting +2/3 \[=+.*\] +67 % *\n2/3 connected, 0 msg/s, 5 acked, 25 errors, 1 reconnects, 42s *\n$`).MatchString(last) {
		t.Errorf("the terminal ends with %q; want the progress bar at 2/3 and the status line", last)
	}
	for _, unwanted := range []string{"Sending message", "connected\n", "Reported properties", fmt.Sprintf("failure %d", maxLiveErrors+1)} {
		if strings.Contains(screen, unwanted) {
			t.Errorf("the terminal shows %q:\n%s", unwanted, screen)
		}
	}
	if got := stdout.String(); !strings.HasPrefix(got, "Summary: 5 message(s) sent") || strings.Count(got, "\n") != 1 {
		t.Errorf("stdout %q; want the summary only", got)
	}
}

// Once every device is connected the progress bar goes; the status
// line stays.
func TestLiveStatusBarGoesWhenAllConnected(t *testing.T) {
	t.Parallel()
	var stderr syncBuffer
	var connected atomic.Int64
	stats := func() simulate.Stats { return simulate.Stats{Devices: 2, Connected: connected.Load()} }
	l, err := newLiveStatus(&stderr, 2, stats, mpb.WithManualRefresh(make(chan any)), mpb.WithWidth(120))
	if err != nil {
		t.Fatal(err)
	}
	connected.Store(2)
	l.connectedChanged()
	l.stop()
	if last := lastFrame(stderr.String()); strings.Contains(last, "connecting") || !strings.HasPrefix(last, "2/2 connected,") {
		t.Errorf("the terminal ends with:\n%s\nwant the status line and no progress bar", last)
	}
}

func TestStatusLineRate(t *testing.T) {
	t.Parallel()
	var acked atomic.Int64
	l := &liveStatus{stats: func() simulate.Stats { return simulate.Stats{Devices: 1, Acked: acked.Load()} }}
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	l.rateTime = t0
	acked.Store(300)
	if got := l.render(t0.Add(rateWindow / 2)); !strings.Contains(got, ", 0 msg/s,") {
		t.Errorf("render within the first window = %q; want 0 msg/s, not measured yet", got)
	}
	if got := l.render(t0.Add(2 * time.Second)); !strings.Contains(got, ", 150 msg/s,") {
		t.Errorf("render after 300 messages in 2s = %q; want 150 msg/s", got)
	}
	acked.Store(310)
	if got := l.render(t0.Add(2*time.Second + rateWindow/2)); !strings.Contains(got, ", 150 msg/s,") {
		t.Errorf("render half a window later = %q; want the last measure, 150.0 msg/s", got)
	}
}
