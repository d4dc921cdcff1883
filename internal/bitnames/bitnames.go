// Package bitnames writes and reads sets of bit flags by name, as
// IoT Hub and DPS write the rights of a shared access policy:
// "RegistryRead, RegistryWrite".
package bitnames

import "strings"

// Name is one flag and its name.
type Name[T ~uint8 | ~uint16 | ~uint32] struct {
	Bit  T
	Name string
}

// Names are the flags of a set, in the order Format writes them.
type Names[T ~uint8 | ~uint16 | ~uint32] []Name[T]

// Format writes the names of the flags set in v, joined by ", ".
func (ns Names[T]) Format(v T) string {
	var parts []string
	for _, n := range ns {
		if v&n.Bit != 0 {
			parts = append(parts, n.Name)
		}
	}
	return strings.Join(parts, ", ")
}

// Parse reads a comma-separated list of names, ignoring case and
// blanks; ok is false when a name is not one of ns (the others are
// still set in v).
func (ns Names[T]) Parse(s string) (v T, ok bool) {
	ok = true
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		found := false
		for _, n := range ns {
			if strings.EqualFold(p, n.Name) {
				v |= n.Bit
				found = true
			}
		}
		ok = ok && found
	}
	return v, ok
}
