package device

import (
	"runtime/debug"
	"testing"
)

func TestFleetGCTargetUnlessGOGCIsSet(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)

	restore := fleetGC(func(string) string { return "" })
	if got := debug.SetGCPercent(FleetGOGC); got != FleetGOGC {
		t.Errorf("GC target %d during a fleet; want %d", got, FleetGOGC)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC target %d after; want 100 restored", got)
	}

	env := map[string]string{"GOGC": "80"}
	restore = fleetGC(func(k string) string { return env[k] })
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC target %d with GOGC set in the environment; want it left alone (100)", got)
	}
	restore()
}
