package registry

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStore(t testing.TB, opts *Options) *Store {
	t.Helper()
	s, err := OpenMemory(opts)
	if err != nil {
		t.Fatalf("OpenMemory: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustCreate(t testing.TB, s *Store, id string) *iothub.Device {
	t.Helper()
	d, err := s.CreateDevice(&iothub.Device{DeviceID: id})
	if err != nil {
		t.Fatalf("CreateDevice(%q): %v", id, err)
	}
	return d
}

func wantCode(t *testing.T, what string, err error, want *Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("%s = %v; want no error", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v; want %d %s", what, err, want.Code, want.Name)
	}
	var e *Error
	if !errors.As(err, &e) || e.Name != want.Name {
		t.Fatalf("%s = %#v; want name %s", what, err, want.Name)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "hub.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	pols, err := s.Policies()
	if err != nil || len(pols) != 5 {
		t.Fatalf("Policies() = %d, %v; want 5", len(pols), err)
	}
	owner, _ := s.Policy("iothubowner")
	d := mustCreate(t, s, "dev1")
	if _, err := s.CreateModule(&iothub.Module{DeviceID: "dev1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PatchTwin("dev1", "", &iothub.TwinUpdate{Tags: json.RawMessage(`{"a":1}`)}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue("dev1", "", &C2DMessage{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}

	s2, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	owner2, _ := s2.Policy("iothubowner")
	if owner2.PrimaryKey != owner.PrimaryKey {
		t.Errorf("policy keys changed across reopen")
	}
	d2, err := s2.Device("dev1")
	if err != nil {
		t.Fatal(err)
	}
	if d2.Etag != d.Etag || d2.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("device changed across reopen")
	}
	if d2.CloudToDeviceMessageCount != 1 {
		t.Errorf("cloudToDeviceMessageCount = %d; want 1", d2.CloudToDeviceMessageCount)
	}
	if _, err := s2.Module("dev1", "m1"); err != nil {
		t.Errorf("Module after reopen: %v", err)
	}
	tw, _ := s2.Twin("dev1", "")
	if string(tw.Tags) != `{"a":1}` {
		t.Errorf("tags after reopen = %s", tw.Tags)
	}
}

func TestOpenMemoryRemovesFile(t *testing.T) {
	s, err := OpenMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("store file missing while open: %v", err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("Stat(temp dir) after Close = %v; want not exist", err)
	}
}

func TestDefaultPolicies(t *testing.T) {
	s := newStore(t, nil)
	want := map[string]Rights{
		"iothubowner":       RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect,
		"service":           ServiceConnect,
		"registryRead":      RegistryRead,
		"registryReadWrite": RegistryRead | RegistryWrite,
		"device":            DeviceConnect,
	}
	for name, r := range want {
		p, err := s.Policy(name)
		if err != nil {
			t.Fatalf("Policy(%q): %v", name, err)
		}
		if p.Rights != r {
			t.Errorf("Policy(%q).Rights = %v; want %v", name, p.Rights, r)
		}
		if checkKey(p.PrimaryKey) != nil || checkKey(p.SecondaryKey) != nil || p.PrimaryKey == p.SecondaryKey {
			t.Errorf("Policy(%q) keys are not two distinct 32-byte base64 keys", name)
		}
	}
	_, err := s.Policy("nope")
	wantCode(t, "Policy(nope)", err, ErrUnauthorized)
}

func TestRightsJSON(t *testing.T) {
	b, _ := json.Marshal(RegistryRead | ServiceConnect)
	if string(b) != `"RegistryRead, ServiceConnect"` {
		t.Errorf("Marshal = %s", b)
	}
	var r Rights
	if err := json.Unmarshal([]byte(`"registryread,DeviceConnect"`), &r); err != nil || r != RegistryRead|DeviceConnect {
		t.Errorf("Unmarshal = %v, %v", r, err)
	}
}

func TestUnquoteEtag(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", `abc`: "abc", `W/"abc"`: "abc", `"`: `"`} {
		if got := UnquoteEtag(in); got != want {
			t.Errorf("UnquoteEtag(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestNewUUID(t *testing.T) {
	u := NewUUID()
	if len(u) != 36 || u[14] != '4' || u[8] != '-' {
		t.Errorf("NewUUID() = %q", u)
	}
}
