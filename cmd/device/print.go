package device

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// printer writes simulation events: JSON Lines on stdout with -o json,
// else one readable line per event (data on stdout, connection news
// and stats on stderr). It is safe for concurrent use.
type printer struct {
	mu     sync.Mutex
	out    io.Writer
	errOut io.Writer
	errTTY bool
	json   *output.Stream
	fleet  bool
}

func newPrinter(io *cmdutil.IOStreams, format output.Format, fleet bool) *printer {
	p := &printer{out: io.Out, errOut: io.ErrOut, errTTY: io.ErrTTY, fleet: fleet}
	if format == output.FormatJSON {
		p.json = output.NewStream(io.Out)
	}
	return p
}

func (p *printer) status(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.errOut, format+"\n", args...)
}

func (p *printer) print(e simulate.Event) {
	if p.json != nil {
		_ = p.json.Write(e)
		return
	}
	w, line := p.out, ""
	who := ""
	if p.fleet && e.DeviceID != "" {
		who = e.DeviceID + ": "
	}
	switch e.Type {
	case simulate.EventConnected:
		w, line = p.errOut, "Connected"
		if e.DeviceID != "" {
			line = "Device " + e.DeviceID + " connected"
		}
	case simulate.EventDisconnected:
		w, line = p.errOut, who+"Disconnected"
		if e.Reason != "" {
			line += " (" + e.Reason
			if e.Error != "" {
				line += ": " + e.Error
			}
			line += ")"
		}
	case simulate.EventReconnecting:
		w = p.errOut
		if e.Reason == "token renewal" && e.Attempt == 0 {
			line = who + "Reconnecting to renew the SAS token"
		} else {
			line = fmt.Sprintf("%sReconnecting in %.1fs (attempt %d)", who, e.DelaySeconds, e.Attempt)
		}
	case simulate.EventSent:
		line = who + "Sending message: " + string(e.Body) + props(e.Properties)
	case simulate.EventMethod:
		line = fmt.Sprintf("%sMethod %s called with payload %s: status %d %s", who, e.Method, orNone(e.Payload), e.Status, orNone(e.Response))
		if e.IntervalSeconds > 0 {
			line += fmt.Sprintf("; telemetry interval now %gs", e.IntervalSeconds)
		}
	case simulate.EventTwin:
		switch {
		case e.Desired != nil:
			line = fmt.Sprintf("%sDesired properties changed (version %d): %s", who, e.Version, e.Desired)
			if e.Reported != nil && e.Error == "" {
				line += fmt.Sprintf("; reported back (version %d)", e.ReportedVersion)
			}
		default:
			line = fmt.Sprintf("%sReported properties set (version %d): %s", who, e.ReportedVersion, e.Reported)
		}
		if e.Error != "" {
			line += "; update failed: " + e.Error
		}
	case simulate.EventC2D:
		line = who + "C2D message received: " + orNone(e.Body) + props(e.Properties)
	case simulate.EventError:
		w, line = p.errOut, who+"Error: "+e.Error
	case simulate.EventStats:
		if !p.errTTY || e.Stats == nil {
			return
		}
		s := e.Stats
		w, line = p.errOut, fmt.Sprintf("[stats] %d/%d connected, %d sent, %d acked, %d errors, %d methods, %.1f msg/s",
			s.Connected, s.Devices, s.Sent, s.Acked, s.Errors, s.Methods, s.MsgsPerSecond)
	case simulate.EventSummary:
		if e.Stats == nil {
			return
		}
		s := e.Stats
		line = fmt.Sprintf("Summary: %d message(s) sent, %d acknowledged, %d error(s), %d method call(s), %d twin change(s), %d C2D message(s), %d reconnect(s); %d device(s), %.1fs, %.1f msg/s",
			s.Sent, s.Acked, s.Errors, s.Methods, s.Twin, s.C2D, s.Reconnects, s.Devices, s.ElapsedSeconds, s.MsgsPerSecond)
	default:
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(w, line)
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
