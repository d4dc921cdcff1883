package hub

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/seed"
)

const testSeed = `
sharedAccessPolicies:
  - keyName: ci
    rights: [RegistryRead, ServiceConnect]
    primaryKey: Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=
consumerGroups: [archive]
devices:
  - deviceId: seeded
    authentication:
      symmetricKey: {primaryKey: dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY=}
    properties:
      desired: {interval: 5}
`

func startSeeded(t *testing.T, dir string, s *seed.Seed) *Hub {
	t.Helper()
	h := New(&Options{Addr: "127.0.0.1:0", DataDir: dir, Seed: s, ConsumerGroups: []string{"ops"}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return h
}

// TestSeedAtStart: the hub applies its seed before it accepts
// connections, at every start, and a second start changes nothing.
func TestSeedAtStart(t *testing.T) {
	s, err := seed.Parse([]byte(testSeed))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := startSeeded(t, dir, s)
	cs, err := h.DeviceConnectionString("seeded", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cs, "SharedAccessKey=dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY=") {
		t.Error("the seeded device's key is not the file's")
	}
	if _, err := dial(t, h, connstr.MustParse(cs), ""); err != nil {
		t.Fatalf("the seeded device cannot connect with the file's key: %v", err)
	}
	pcs, err := h.ServiceConnectionString("ci")
	if err != nil || !strings.HasSuffix(pcs, "SharedAccessKey=Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=") {
		t.Errorf("policy ci = %v; want the file's key", err)
	}
	if want := []string{"ops", "archive"}; !slices.Equal(h.opts.ConsumerGroups, want) {
		t.Errorf("consumer groups = %v; want %v", h.opts.ConsumerGroups, want)
	}
	d1, _ := h.reg.Device("seeded")
	t1, _ := h.reg.Twin("seeded", "")
	h.Close()

	h = startSeeded(t, dir, s)
	defer h.Close()
	d2, _ := h.reg.Device("seeded")
	t2, _ := h.reg.Twin("seeded", "")
	if d2.Etag != d1.Etag || d2.GenerationID != d1.GenerationID || t2.Etag != t1.Etag || t2.Version != t1.Version {
		t.Errorf("the second start changed the device or its twin: etag %s→%s, twin %s→%s", d1.Etag, d2.Etag, t1.Etag, t2.Etag)
	}
}

// TestSeedRefusedFailsStart: a seed the registry refuses stops Start
// with the *seed.Error.
func TestSeedRefusedFailsStart(t *testing.T) {
	s, err := seed.Parse([]byte("devices:\n  - deviceId: d\n    authentication:\n      symmetricKey: {primaryKey: c2hvcnQ=}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := New(&Options{Addr: "127.0.0.1:0", InMemory: true, Seed: s})
	err = h.Start(context.Background())
	var se *seed.Error
	if !errors.As(err, &se) || se.Line != 2 {
		h.Close()
		t.Fatalf("Start = %v; want a *seed.Error at line 2", err)
	}
}
