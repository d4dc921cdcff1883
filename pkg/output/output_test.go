package output

import (
	"bytes"
	"strings"
	"testing"
)

type sample struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

func TestPrintFormats(t *testing.T) {
	v := sample{Name: "dev1", Count: 2, Tags: []string{"a"}}
	table := func(tb *Table) {
		tb.Header("NAME", "COUNT")
		tb.Row(v.Name, v.Count)
	}
	tests := []struct {
		format Format
		tty    bool
		want   string
	}{
		{FormatJSON, false, "{\n  \"name\": \"dev1\",\n  \"count\": 2,\n  \"tags\": [\n    \"a\"\n  ]\n}\n"},
		{FormatYAML, false, "name: dev1\ncount: 2\ntags:\n  - a\n"},
		{FormatTable, false, "dev1\t2\n"},
		{FormatTable, true, "NAME  COUNT\ndev1  2\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := New(&b, tt.format, tt.tty).Print(v, table); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("Print(%s, tty=%v) = %q; want %q", tt.format, tt.tty, b.String(), tt.want)
		}
	}
}

func TestParseFormat(t *testing.T) {
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "table, json, yaml") {
		t.Errorf("ParseFormat(xml) = %v", err)
	}
	if f, err := ParseFormat("env", FormatJSON, "env"); err != nil || f != "env" {
		t.Errorf("ParseFormat(env, allowed) = %v, %v", f, err)
	}
}

func TestStreamAndQuote(t *testing.T) {
	var b bytes.Buffer
	s := NewStream(&b)
	_ = s.Write(map[string]any{"type": "sent", "n": 1})
	_ = s.Write(map[string]any{"type": "summary"})
	if got := b.String(); got != "{\"n\":1,\"type\":\"sent\"}\n{\"type\":\"summary\"}\n" {
		t.Errorf("stream = %q", got)
	}
	if got := ShellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("ShellQuote = %q", got)
	}
}
