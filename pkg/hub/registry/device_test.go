package registry

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

func strp(s string) *string { return &s }

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"dev1", true},
		{"a-b.c+d%e_f#g*h?i!j(k)l,m:n=o@p$q'r", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"a b", false},
		{"a/b", false},
		{"é", false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v; want %v", tt.id, got, tt.want)
		}
	}
}

func TestCreateDevice(t *testing.T) {
	key := NewKey()
	tests := []struct {
		name    string
		in      *iothub.Device
		wantErr *Error
		check   func(t *testing.T, d *iothub.Device)
	}{
		{"defaults: sas with generated keys, enabled", &iothub.Device{DeviceID: "d1"}, nil, func(t *testing.T, d *iothub.Device) {
			if d.Status != iothub.StatusEnabled || d.Authentication.Type != iothub.AuthSAS {
				t.Errorf("status %q auth %q", d.Status, d.Authentication.Type)
			}
			k := d.Authentication.SymmetricKey
			if checkKey(k.PrimaryKey) != nil || checkKey(k.SecondaryKey) != nil {
				t.Errorf("keys not generated")
			}
			if d.Etag == "" || len(d.GenerationID) != 18 || d.ConnectionState != iothub.Disconnected {
				t.Errorf("etag %q generationId %q state %q", d.Etag, d.GenerationID, d.ConnectionState)
			}
		}},
		{"node SDK empty keys are generated", &iothub.Device{DeviceID: "d2", Authentication: &iothub.Authentication{Type: "sas", SymmetricKey: &iothub.SymmetricKey{}}}, nil, func(t *testing.T, d *iothub.Device) {
			if d.Authentication.SymmetricKey.PrimaryKey == "" {
				t.Errorf("keys not generated")
			}
		}},
		{"given keys kept", &iothub.Device{DeviceID: "d3", Status: "Disabled", Authentication: &iothub.Authentication{SymmetricKey: &iothub.SymmetricKey{PrimaryKey: key, SecondaryKey: key}}}, nil, func(t *testing.T, d *iothub.Device) {
			if d.Authentication.SymmetricKey.PrimaryKey != key || d.Status != iothub.StatusDisabled {
				t.Errorf("got %+v", d)
			}
		}},
		{"self-signed", &iothub.Device{DeviceID: "d4", Authentication: &iothub.Authentication{Type: "selfSigned", X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: strp(strings.Repeat("ab", 20))}}}, nil, func(t *testing.T, d *iothub.Device) {
			if d.Authentication.Keys() != nil || *d.Authentication.X509Thumbprint.PrimaryThumbprint != strings.Repeat("AB", 20) {
				t.Errorf("got %+v", d.Authentication)
			}
		}},
		{"ca", &iothub.Device{DeviceID: "d5", Authentication: &iothub.Authentication{Type: "certificateAuthority"}}, nil, nil},
		{"self-signed without thumbprint", &iothub.Device{DeviceID: "e1", Authentication: &iothub.Authentication{Type: "selfSigned"}}, ErrArgumentInvalid, nil},
		{"bad thumbprint", &iothub.Device{DeviceID: "e1", Authentication: &iothub.Authentication{Type: "selfSigned", X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: strp("xyz")}}}, ErrArgumentInvalid, nil},
		{"bad auth type", &iothub.Device{DeviceID: "e1", Authentication: &iothub.Authentication{Type: "magic"}}, ErrArgumentInvalid, nil},
		{"bad key", &iothub.Device{DeviceID: "e1", Authentication: &iothub.Authentication{SymmetricKey: &iothub.SymmetricKey{PrimaryKey: "c2hvcnQ="}}}, ErrArgumentInvalid, nil},
		{"bad status", &iothub.Device{DeviceID: "e1", Status: "maybe"}, ErrArgumentInvalid, nil},
		{"bad id", &iothub.Device{DeviceID: "a b"}, ErrArgumentInvalid, nil},
		{"exists", &iothub.Device{DeviceID: "d1"}, ErrDeviceAlreadyExists, nil},
		{"nil", nil, ErrArgumentInvalid, nil},
	}
	s := newStore(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := s.CreateDevice(tt.in)
			wantCode(t, "CreateDevice", err, tt.wantErr)
			if tt.check != nil {
				tt.check(t, d)
				got, err := s.Device(d.DeviceID)
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, got)
			}
		})
	}
}

func TestUpdateDevice(t *testing.T) {
	clk := newClock()
	s := newStore(t, &Options{Now: clk.Now})
	d := mustCreate(t, s, "d1")
	oldKeys := *d.Authentication.SymmetricKey

	_, err := s.UpdateDevice(&iothub.Device{DeviceID: "d1", Status: "disabled"}, `"wrong"`)
	wantCode(t, "UpdateDevice(wrong etag)", err, ErrPreconditionFailed)
	_, err = s.UpdateDevice(&iothub.Device{DeviceID: "nope"}, "*")
	wantCode(t, "UpdateDevice(missing)", err, ErrDeviceNotFound)

	clk.Add(time.Minute)
	u, err := s.UpdateDevice(&iothub.Device{DeviceID: "d1", Status: "disabled", StatusReason: strp("maintenance"),
		Authentication: &iothub.Authentication{Type: "sas", SymmetricKey: &iothub.SymmetricKey{}}}, `"`+d.Etag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if u.Etag == d.Etag || u.Status != iothub.StatusDisabled || *u.StatusReason != "maintenance" {
		t.Errorf("update = %+v", u)
	}
	if *u.Authentication.SymmetricKey != oldKeys {
		t.Errorf("empty keys on update should keep the old keys")
	}
	if !u.StatusUpdatedTime.Equal(clk.Now()) || u.GenerationID != d.GenerationID {
		t.Errorf("statusUpdatedTime %v generationId %q", u.StatusUpdatedTime, u.GenerationID)
	}
	u2, err := s.UpdateDevice(&iothub.Device{DeviceID: "d1"}, "*")
	if err != nil || u2.Status != iothub.StatusDisabled {
		t.Errorf("update with * and empty status = %+v, %v", u2, err)
	}
	_, err = s.UpdateDevice(&iothub.Device{DeviceID: "d1"}, d.Etag)
	wantCode(t, "UpdateDevice(stale etag)", err, ErrPreconditionFailed)
}

func TestDeleteDeviceCascades(t *testing.T) {
	s := newStore(t, nil)
	d := mustCreate(t, s, "d1")
	mustCreate(t, s, "d10") // shares a prefix; must survive
	if _, err := s.CreateModule(&iothub.Module{DeviceID: "d1", ModuleID: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateModule(&iothub.Module{DeviceID: "d10", ModuleID: "m"}); err != nil {
		t.Fatal(err)
	}
	s.Enqueue("d1", "", &C2DMessage{})
	s.Enqueue("d1", "m", &C2DMessage{})

	wantCode(t, "DeleteDevice(wrong etag)", s.DeleteDevice("d1", `"x"`), ErrPreconditionFailed)
	wantCode(t, "DeleteDevice", s.DeleteDevice("d1", `"`+d.Etag+`"`), nil)
	wantCode(t, "DeleteDevice again", s.DeleteDevice("d1", "*"), ErrDeviceNotFound)
	_, err := s.Twin("d1", "")
	wantCode(t, "Twin after delete", err, ErrDeviceNotFound)

	// Re-create: no module, no twin content, no messages left over.
	mustCreate(t, s, "d1")
	_, err = s.Module("d1", "m")
	wantCode(t, "Module after re-create", err, ErrModuleNotFound)
	if n, _ := s.PendingC2D("d1", ""); n != 0 {
		t.Errorf("PendingC2D after re-create = %d", n)
	}
	if _, err := s.Module("d10", "m"); err != nil {
		t.Errorf("module of d10 deleted with d1: %v", err)
	}
}

func TestDevicesAndStats(t *testing.T) {
	s := newStore(t, nil)
	for i := range 5 {
		st := ""
		if i%2 == 1 {
			st = iothub.StatusDisabled
		}
		if _, err := s.CreateDevice(&iothub.Device{DeviceID: fmt.Sprintf("d%d", i), Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := s.Devices(0)
	if len(all) != 5 || all[0].DeviceID != "d0" {
		t.Errorf("Devices(0) = %d devices", len(all))
	}
	two, _ := s.Devices(2)
	if len(two) != 2 {
		t.Errorf("Devices(2) = %d devices", len(two))
	}
	st, _ := s.Stats()
	if st != (Stats{TotalDeviceCount: 5, EnabledDeviceCount: 3, DisabledDeviceCount: 2}) {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestModules(t *testing.T) {
	s := newStore(t, nil)
	_, err := s.CreateModule(&iothub.Module{DeviceID: "nodev", ModuleID: "m"})
	wantCode(t, "CreateModule(no device)", err, ErrDeviceNotFound)
	mustCreate(t, s, "d")
	m, err := s.CreateModule(&iothub.Module{DeviceID: "d", ModuleID: "m1", ManagedBy: "iotEdge"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Authentication.Keys() == nil || m.Etag == "" || m.ManagedBy != "iotEdge" {
		t.Errorf("module = %+v", m)
	}
	_, err = s.CreateModule(&iothub.Module{DeviceID: "d", ModuleID: "m1"})
	wantCode(t, "CreateModule(dup)", err, ErrModuleAlreadyExistsOnDevice)
	_, err = s.CreateModule(&iothub.Module{DeviceID: "d", ModuleID: "bad id"})
	wantCode(t, "CreateModule(bad id)", err, ErrArgumentInvalid)
	s.CreateModule(&iothub.Module{DeviceID: "d", ModuleID: "m2"})
	mods, _ := s.Modules("d")
	if len(mods) != 2 || mods[0].ModuleID != "m1" {
		t.Errorf("Modules = %+v", mods)
	}
	_, err = s.Modules("nodev")
	wantCode(t, "Modules(no device)", err, ErrDeviceNotFound)
	_, err = s.Module("d", "zz")
	wantCode(t, "Module(missing)", err, ErrModuleNotFound)

	_, err = s.UpdateModule(&iothub.Module{DeviceID: "d", ModuleID: "m1"}, `"nope"`)
	wantCode(t, "UpdateModule(wrong etag)", err, ErrPreconditionFailed)
	u, err := s.UpdateModule(&iothub.Module{DeviceID: "d", ModuleID: "m1", ManagedBy: "me"}, m.Etag)
	if err != nil || u.ManagedBy != "me" || u.Etag == m.Etag || u.Authentication.SymmetricKey.PrimaryKey != m.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("UpdateModule = %+v, %v", u, err)
	}
	wantCode(t, "DeleteModule(wrong)", s.DeleteModule("d", "m1", `"x"`), ErrPreconditionFailed)
	wantCode(t, "DeleteModule", s.DeleteModule("d", "m1", "*"), nil)
	wantCode(t, "DeleteModule again", s.DeleteModule("d", "m1", "*"), ErrModuleNotFound)
}

func TestConcurrentCreates(t *testing.T) {
	s := newStore(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every id twice: exactly one of each pair must fail.
			_, err := s.CreateDevice(&iothub.Device{DeviceID: fmt.Sprintf("d%d", i/2)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	var ok, dup int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case isRegistryError(err):
			dup++
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 100 || dup != 100 {
		t.Errorf("created %d, duplicates %d; want 100 and 100", ok, dup)
	}
}

// BenchmarkConcurrentCreate creates b.N devices from 10,000 goroutines
// at a time on a synced (not NoSync) store.
func BenchmarkConcurrentCreate(b *testing.B) {
	s, err := Open(b.TempDir()+"/hub.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10000)
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := s.CreateDevice(&iothub.Device{DeviceID: fmt.Sprintf("dev-%d", i)}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}
