//go:build unix

package simulate

import (
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/iotctl/iotctl/pkg/device"
)

func TestNewRefusesAFleetLargerThanTheOpenFilesLimit(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatal(err)
	}
	if l.Max > 1<<21 {
		t.Skipf("hard open-files limit %d: a fleet above it is too large to build here", l.Max)
	}
	n := int(l.Max) // needs l.Max + filesBesidesDevices
	ids := FleetIDs("sim-", n)
	_, err := New(&Options{Device: device.Options{HostName: "h"}, DeviceIDs: ids, Keys: KeyMap{}})
	if err == nil {
		t.Fatalf("New(fleet of %d devices, open files limit %d) = nil error", n, l.Max)
	}
	for _, want := range []string{strconv.Itoa(n) + " devices", "ulimit -n", "--shards", strconv.FormatUint(uint64(l.Max), 10)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// AMQP devices sharing connections need a file per connection.
	if _, err := New(&Options{Device: device.Options{HostName: "h", Transport: device.TransportAMQP}, DeviceIDs: ids, Keys: KeyMap{},
		DevicesPerConnection: 10}); err != nil {
		t.Errorf("New(AMQP fleet of %d, 10 a connection) = %v", n, err)
	}
	// Within the limit, New takes the fleet.
	if _, err := New(&Options{Device: device.Options{HostName: "h"}, DeviceIDs: ids[:n/2], Keys: KeyMap{}}); err != nil {
		t.Errorf("New(fleet of %d) = %v", n/2, err)
	}
}
