package simulate

import (
	"fmt"
	"net/netip"
	"strings"
)

// MaxSourceAddrs bounds the addresses ParseSourceAddrs expands ranges
// to: at about 28,000 connections each, far more than one process
// holds.
const MaxSourceAddrs = 1 << 16

// ParseSourceAddrs reads source addresses as --source-addr takes them,
// each an IP address ("127.0.0.2") or an inclusive range of them
// ("127.0.0.2-127.0.0.9", as emqtt-bench's --ifaddr); the result lists
// every address once, in the order given. Errors name the bad value.
func ParseSourceAddrs(specs []string) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	add := func(a netip.Addr) error {
		if len(out) == MaxSourceAddrs {
			return fmt.Errorf("more than %d source addresses", MaxSourceAddrs)
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
		return nil
	}
	for _, spec := range specs {
		for _, v := range strings.Split(spec, ",") {
			v = strings.TrimSpace(v)
			from, to, isRange := strings.Cut(v, "-")
			first, err := netip.ParseAddr(from)
			if err != nil {
				return nil, fmt.Errorf("source address %q: not an IP address or a range FIRST-LAST such as 127.0.0.2-127.0.0.9", v)
			}
			first = first.Unmap()
			last := first
			if isRange {
				if last, err = netip.ParseAddr(to); err != nil {
					return nil, fmt.Errorf("source address range %q: %q is not an IP address", v, to)
				}
				last = last.Unmap()
				if first.Is4() != last.Is4() || last.Less(first) {
					return nil, fmt.Errorf("source address range %q: give FIRST-LAST of one family with FIRST before LAST", v)
				}
			}
			for a := first; ; a = a.Next() {
				if err := add(a); err != nil {
					return nil, fmt.Errorf("source address range %q: %w; give fewer", v, err)
				}
				if a == last {
					break
				}
			}
		}
	}
	return out, nil
}
