package cmdutil

import (
	"fmt"
	"io"
	"sync"
)

// diag is where the diagnostics of a run go (logs, the interrupt
// notice): ErrOut, or a live display on it that prints them above its
// own lines instead of being broken by them.
type diag struct {
	mu   sync.Mutex
	sink io.Writer // nil: ErrOut
}

// Diag returns a writer for diagnostics: it writes to ErrOut, or to the
// writer SetDiag gave while one is set. Logs and the interrupt notice
// go through it.
func (s *IOStreams) Diag() io.Writer { return diagWriter{s} }

// SetDiag sends diagnostics to w (nil: back to ErrOut), for a display
// that redraws lines in place on ErrOut and prints other lines above
// them.
func (s *IOStreams) SetDiag(w io.Writer) {
	s.diag.mu.Lock()
	s.diag.sink = w
	s.diag.mu.Unlock()
}

// Notice writes one line of diagnostics.
func (s *IOStreams) Notice(format string, args ...any) {
	fmt.Fprintf(s.Diag(), format+"\n", args...)
}

type diagWriter struct{ s *IOStreams }

func (d diagWriter) Write(b []byte) (int, error) {
	d.s.diag.mu.Lock()
	defer d.s.diag.mu.Unlock()
	if d.s.diag.sink != nil {
		return d.s.diag.sink.Write(b)
	}
	return d.s.ErrOut.Write(b)
}
