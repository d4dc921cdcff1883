package simulate

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/device"
)

func TestParseSourceAddrs(t *testing.T) {
	got, err := ParseSourceAddrs([]string{"127.0.0.2-127.0.0.4", "10.0.0.1,127.0.0.3", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, a := range got {
		s = append(s, a.String())
	}
	if want := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "10.0.0.1", "::1"}; !slices.Equal(s, want) {
		t.Errorf("ParseSourceAddrs = %q; want %q", s, want)
	}
	for _, bad := range []struct{ spec, want string }{
		{"localhost", "not an IP address"},
		{"127.0.0.9-127.0.0.2", "FIRST before LAST"},
		{"127.0.0.1-::1", "one family"},
		{"127.0.0.1-x", `"x" is not an IP address`},
		{"10.0.0.0-10.1.0.0", "more than 65536"},
	} {
		_, err := ParseSourceAddrs([]string{bad.spec})
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), bad.spec) {
			t.Errorf("ParseSourceAddrs(%q) = %v; want an error naming it and saying %q", bad.spec, err, bad.want)
		}
	}
}

func TestFleetSpreadsDevicesOverSourceAddrs(t *testing.T) {
	ids := FleetIDs("sim-", 6)
	keys := KeyMap{}
	for _, id := range ids {
		keys[id] = "c2VjcmV0"
	}
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")}
	f, conns := fakeFleet(t, &Options{Device: device.Options{HostName: "h"}, DeviceIDs: ids, Keys: keys, Count: 1, SourceAddrs: addrs})
	if _, err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	per := map[netip.Addr]int{}
	for range ids {
		c := recv(t, conns, "device")
		per[c.opts.SourceAddr]++
	}
	for _, a := range addrs {
		if per[a] != 2 {
			t.Errorf("devices from %s: %d; want 2 of 6 (per address: %v)", a, per[a], per)
		}
	}
}
