package registry

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// A presence is kept across a restart and goes with its identity.
func TestPresenceKeptAndDeleted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(&iothub.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateModule(&iothub.Module{DeviceID: "d1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Presence("d1", ""); err != nil || !p.StateUpdated.IsZero() || !p.LastActivity.IsZero() {
		t.Fatalf("Presence of a device that never connected = %+v, %v; want zero times", p, err)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 8e6, time.UTC)
	dev := Presence{StateUpdated: at, LastActivity: at.Add(-time.Minute)}
	mod := Presence{StateUpdated: at.Add(time.Hour), LastActivity: at}
	if err := s.SetPresence("d1", "", dev); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence("d1", "m1", mod); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence("nobody", "", dev); !errors.Is(err, ErrDeviceNotFound) {
		t.Errorf("SetPresence of an unknown device: %v; want ErrDeviceNotFound", err)
	}
	s.Close()
	if s, err = Open(path, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		module string
		want   Presence
	}{{"", dev}, {"m1", mod}} {
		if p, err := s.Presence("d1", c.module); err != nil || !p.StateUpdated.Equal(c.want.StateUpdated) || !p.LastActivity.Equal(c.want.LastActivity) {
			t.Errorf("Presence(d1, %q) after a restart = %+v, %v; want %+v", c.module, p, err, c.want)
		}
	}
	if err := s.DeleteModule("d1", "m1", ""); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Presence("d1", "m1"); !p.StateUpdated.IsZero() {
		t.Errorf("a deleted module's presence is still there: %+v", p)
	}
	if err := s.SetPresence("d1", "m1", mod); err == nil {
		t.Error("SetPresence of a deleted module succeeded")
	}
	if _, err := s.CreateModule(&iothub.Module{DeviceID: "d1", ModuleID: "m2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPresence("d1", "m2", mod); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDevice("d1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateDevice(&iothub.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Presence("d1", ""); !p.StateUpdated.IsZero() {
		t.Errorf("a device created again has its predecessor's presence: %+v", p)
	}
	if p, _ := s.Presence("d1", "m2"); !p.StateUpdated.IsZero() {
		t.Errorf("a deleted device's module presence is still there: %+v", p)
	}
}
