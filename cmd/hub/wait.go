package hub

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// waitNote tells a person at a terminal what a command that waits
// (hub monitor, hub feedback, hub c2d send --wait) is waiting for, and
// when it stops, what it got. It writes to stderr, and only when that
// is a terminal: scripts read stdout and exit codes.
type waitNote struct {
	w     io.Writer // nil: not a terminal
	start time.Time
}

func newWaitNote(f *cmdutil.Factory) *waitNote {
	n := &waitNote{start: time.Now()}
	if f.IO.ErrTTY {
		n.w = f.IO.ErrOut
	}
	return n
}

// waiting says what the command waits for: what, then the conditions
// that end the wait ("" ones left out), then how to stop it.
func (n *waitNote) waiting(what string, until ...string) {
	if n.w == nil {
		return
	}
	n.start = time.Now()
	var conds []string
	for _, u := range until {
		if u != "" {
			conds = append(conds, u)
		}
	}
	line := "Waiting for " + what
	if len(conds) > 0 {
		line += " (" + strings.Join(conds, ", ") + ")"
	}
	fmt.Fprintln(n.w, line+"; press Ctrl-C to stop")
}

// stopped says, after how long, what the command got.
func (n *waitNote) stopped(format string, args ...any) {
	if n.w == nil {
		return
	}
	fmt.Fprintf(n.w, "Stopped after %s: %s\n", time.Since(n.start).Round(100*time.Millisecond), fmt.Sprintf(format, args...))
}

// ifSet is s when cond, else "".
func ifSet(cond bool, format string, args ...any) string {
	if !cond {
		return ""
	}
	return fmt.Sprintf(format, args...)
}
