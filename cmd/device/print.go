package device

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// display is what `device simulate` shows, decided by the output
// format, whether stdout and stderr are terminals, and the flags.
type display struct {
	// json: every event as a JSON line on stdout (-o json, or a fleet
	// whose stdout is not a terminal).
	json bool
	// live: a fleet's status line and connect progress bar on stderr
	// (a terminal), redrawn in place.
	live bool
	// messages: a readable line on stdout for each message sent (one
	// device, or --print-messages).
	messages bool
	// statsLines: a fleet's counters as a readable line on stderr every
	// stats interval (stderr is not a terminal, stdout is).
	statsLines bool
	// quiet: nothing but the summary (--quiet).
	quiet bool
}

// chooseDisplay decides the display: people on a terminal get a status
// line for a fleet and each message for one device; scripts (stdout not
// a terminal, or -o json) get events.
func chooseDisplay(format output.Format, io *cmdutil.IOStreams, fleet, printMessages, quiet bool) display {
	d := display{json: format == output.FormatJSON || fleet && !io.OutTTY, quiet: quiet}
	if quiet {
		return d
	}
	// With JSON lines on the same terminal, redrawing lines in place
	// would mangle them.
	d.live = fleet && io.ErrTTY && !(d.json && io.OutTTY)
	d.messages = !d.json && (!fleet || printMessages)
	d.statsLines = fleet && !d.json && !d.live
	return d
}

// maxLiveErrors is how many error lines a fleet's live status prints
// above itself; the errors after them are only counted.
const maxLiveErrors = 20

// printer writes simulation events as its display says: JSON Lines on
// stdout, or one readable line per event (data on stdout, connection
// news and stats on stderr; both above the live status when there is
// one). It is safe for concurrent use.
type printer struct {
	mu     sync.Mutex
	d      display
	out    io.Writer
	errOut io.Writer
	io     *cmdutil.IOStreams
	json   *output.Stream
	fleet  bool
	loc    *time.Location // of the time on each line
	live   *liveStatus
	errs   int // error lines printed under a live status
}

func newPrinter(io *cmdutil.IOStreams, d display, fleet bool) *printer {
	p := &printer{d: d, out: io.Out, errOut: io.ErrOut, io: io, fleet: fleet, loc: time.Local}
	if d.json {
		p.json = output.NewStream(io.Out)
	}
	return p
}

// setLive sends the readable lines above l from now on.
func (p *printer) setLive(l *liveStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live = l
	if !p.d.json {
		p.out = l
	}
	p.errOut = l
	p.io.SetDiag(l)
}

// stopLive draws the live status a last time; lines go to the streams
// again (the summary, below the status).
func (p *printer) stopLive() {
	p.mu.Lock()
	l := p.live
	p.live = nil
	p.out, p.errOut = p.io.Out, p.io.ErrOut
	p.io.SetDiag(nil)
	p.mu.Unlock()
	if l != nil {
		l.stop()
	}
}

func (p *printer) status(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.errOut, format+"\n", args...)
}

func (p *printer) print(e simulate.Event) {
	if e.Type == simulate.EventConnected || e.Type == simulate.EventDisconnected {
		p.mu.Lock()
		l := p.live
		p.mu.Unlock()
		if l != nil {
			l.connectedChanged()
		}
	}
	if e.Type == simulate.EventSummary {
		p.stopLive() // the summary goes below the last status
	} else if p.d.quiet {
		return
	}
	if p.json != nil {
		_ = p.json.Write(e)
		return
	}
	toErr, line := p.line(e)
	if line == "" {
		return
	}
	if !e.Time.IsZero() && e.Type != simulate.EventSummary {
		line = e.Time.In(p.loc).Format("15:04:05.000") + " " + line
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.out
	if toErr {
		w = p.errOut
	}
	if p.live != nil && e.Type == simulate.EventError {
		if p.errs++; p.errs > maxLiveErrors {
			return
		}
		if p.errs == maxLiveErrors {
			line += fmt.Sprintf("\n(only the first %d errors are shown; the status line counts them all, -o json prints each)", maxLiveErrors)
		}
	}
	fmt.Fprintln(w, line)
}

// line is the readable line of e, "" for none, and whether it goes to
// stderr.
func (p *printer) line(e simulate.Event) (toErr bool, line string) {
	who := ""
	if p.fleet && e.DeviceID != "" {
		who = e.DeviceID + ": "
	}
	// A fleet's connection news is its status line when it has one.
	news := !p.fleet || !p.d.live
	switch e.Type {
	case simulate.EventConnected:
		if !news {
			return
		}
		line = "Connected"
		if e.DeviceID != "" {
			line = "Device " + e.DeviceID + " connected"
		}
		return true, line
	case simulate.EventDisconnected:
		if !news {
			return
		}
		line = who + "Disconnected"
		if e.Reason != device.ReasonNone {
			line += " (" + e.Reason.String()
			if e.Error != "" {
				line += ": " + e.Error
			}
			line += ")"
		}
		return true, line
	case simulate.EventReconnecting:
		if !news {
			return
		}
		if e.Reason == device.ReasonTokenRenewal && e.Attempt == 0 {
			return true, who + "Reconnecting to renew the SAS token"
		}
		return true, fmt.Sprintf("%sReconnecting in %.1fs (attempt %d)", who, e.DelaySeconds, e.Attempt)
	case simulate.EventSent:
		if !p.d.messages {
			return
		}
		return false, who + "Sending message: " + string(e.Body) + props(e.Properties)
	case simulate.EventMethod:
		line = fmt.Sprintf("%sMethod %s called with payload %s: status %d %s", who, e.Method, orNone(e.Payload), e.Status, orNone(e.Response))
		if e.IntervalSeconds > 0 {
			line += fmt.Sprintf("; telemetry interval now %gs", e.IntervalSeconds)
		}
		return false, line
	case simulate.EventTwin:
		switch {
		case e.Desired != nil:
			line = fmt.Sprintf("%sDesired properties changed (version %d): %s", who, e.Version, e.Desired)
			if e.Reported != nil && e.Error == "" {
				line += fmt.Sprintf("; reported back (version %d)", e.ReportedVersion)
			}
		case p.fleet && !p.d.messages && e.Error == "":
			// Every device of the fleet reports --reported once connected.
			return
		default:
			line = fmt.Sprintf("%sReported properties set (version %d): %s", who, e.ReportedVersion, e.Reported)
		}
		if e.Error != "" {
			line += "; update failed: " + e.Error
		}
		return false, line
	case simulate.EventC2D:
		return false, who + "C2D message received: " + orNone(e.Body) + props(e.Properties)
	case simulate.EventError:
		return true, who + "Error: " + e.Error
	case simulate.EventStats:
		if !p.d.statsLines || e.Stats == nil {
			return
		}
		return true, "[stats] " + statusLine(*e.Stats)
	case simulate.EventSummary:
		if e.Stats == nil {
			return
		}
		s := e.Stats
		return false, fmt.Sprintf("Summary: %d message(s) sent, %d acknowledged, %d error(s), %d method call(s), %d twin change(s), %d C2D message(s), %d reconnect(s); %d device(s), %.1fs, %.1f msg/s",
			s.Sent, s.Acked, s.Errors, s.Methods, s.Twin, s.C2D, s.Reconnects, s.Devices, s.ElapsedSeconds, s.MsgsPerSecond)
	}
	return
}

func orNone(b []byte) string {
	if len(b) == 0 {
		return "(none)"
	}
	return string(b)
}

func props(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" [")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + m[k])
	}
	b.WriteByte(']')
	return b.String()
}
