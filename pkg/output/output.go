package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"
)

// Format is an output format.
type Format string

// The formats every command understands.
const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
	FormatYAML  Format = "yaml"
	// FormatNDJSON is JSON Lines, one item a line, for the commands
	// that list items as they arrive (they allow it explicitly).
	FormatNDJSON Format = "ndjson"
)

// ParseFormat checks a format name against allowed (or table, json and
// yaml when allowed is empty).
func ParseFormat(s string, allowed ...Format) (Format, error) {
	if len(allowed) == 0 {
		allowed = []Format{FormatTable, FormatJSON, FormatYAML}
	}
	names := make([]string, len(allowed))
	for i, f := range allowed {
		if string(f) == s {
			return f, nil
		}
		names[i] = string(f)
	}
	return "", fmt.Errorf("output: unknown format %q; use one of %s", s, strings.Join(names, ", "))
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Printer writes one result in the chosen format.
type Printer struct {
	Out    io.Writer
	Format Format
	// TTY makes tables aligned with headers; otherwise they are
	// tab-separated without headers' padding.
	TTY bool
}

// New returns a Printer.
func New(out io.Writer, f Format, tty bool) *Printer { return &Printer{Out: out, Format: f, TTY: tty} }

// Print writes v as JSON or YAML, or calls table to fill a table for
// the table format. A nil table prints v as JSON for the table format.
func (p *Printer) Print(v any, table func(*Table)) error {
	switch p.Format {
	case FormatJSON:
		return WriteJSON(p.Out, v)
	case FormatYAML:
		return WriteYAML(p.Out, v)
	}
	if table == nil {
		return WriteJSON(p.Out, v)
	}
	t := &Table{}
	table(t)
	return t.Render(p.Out, p.TTY)
}

// WriteJSON writes v as indented JSON with a final newline.
func WriteJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// WriteYAML writes v as YAML using its json tags and field order.
func WriteYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	clearStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// clearStyle drops the flow style that JSON input gives every node, so
// the YAML comes out in block style.
func clearStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		n.Style &^= yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

// Table is a list of rows, the first optionally a header.
type Table struct {
	header []string
	rows   [][]string
}

// Header sets the column names.
func (t *Table) Header(cols ...string) { t.header = cols }

// Row adds a row; values are formatted with %v.
func (t *Table) Row(cols ...any) {
	r := make([]string, len(cols))
	for i, c := range cols {
		r[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, r)
}

// Render writes the table: aligned with its header on a terminal,
// tab-separated without the header otherwise.
func (t *Table) Render(w io.Writer, tty bool) error {
	if !tty {
		var b bytes.Buffer
		for _, r := range t.rows {
			b.WriteString(strings.Join(r, "\t"))
			b.WriteByte('\n')
		}
		_, err := w.Write(b.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(t.header) > 0 {
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	}
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Stream writes JSON Lines: one compact JSON object per line, flushed
// (written in one Write call) per line. It is safe for concurrent use.
type Stream struct {
	mu sync.Mutex
	w  io.Writer
}

// NewStream returns a Stream on w.
func NewStream(w io.Writer) *Stream { return &Stream{w: w} }

// Write encodes v on one line.
func (s *Stream) Write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.w.Write(b)
	return err
}

// ShellQuote quotes s for POSIX shells with single quotes.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
