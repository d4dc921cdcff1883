package bitnames

import "testing"

type rights uint8

var names = Names[rights]{{1, "Read"}, {2, "Write"}, {4, "Connect"}}

func TestFormatParse(t *testing.T) {
	for _, tt := range []struct {
		s    string
		v    rights
		ok   bool
		back string
	}{
		{"Read, Write", 3, true, "Read, Write"},
		{" connect ,read", 5, true, "Read, Connect"},
		{"", 0, true, ""},
		{"Read, Delete", 1, false, "Read"},
	} {
		v, ok := names.Parse(tt.s)
		if v != tt.v || ok != tt.ok {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.s, v, ok, tt.v, tt.ok)
		}
		if got := names.Format(v); got != tt.back {
			t.Errorf("Format(%d) = %q; want %q", v, got, tt.back)
		}
	}
}
