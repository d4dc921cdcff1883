package cmd_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// Diagnostics (logs, the interrupt notice) go to ErrOut, or to the
// display that SetDiag names while it is set.
func TestDiagFollowsSetDiag(t *testing.T) {
	var errOut, display bytes.Buffer
	s := &cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut}
	log := slog.New(slog.NewTextHandler(s.Diag(), nil))

	s.Notice("first %d", 1)
	s.SetDiag(&display)
	s.Notice("interrupt received, shutting down")
	log.Warn("reconnect refused")
	s.SetDiag(nil)
	s.Notice("last")

	if got := errOut.String(); got != "first 1\nlast\n" {
		t.Errorf("ErrOut got %q; want the lines written while no display was set", got)
	}
	if got := display.String(); !strings.HasPrefix(got, "interrupt received, shutting down\n") || !strings.Contains(got, "reconnect refused") {
		t.Errorf("the display got %q; want the notice and the log line", got)
	}
}
