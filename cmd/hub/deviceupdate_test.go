package hub_test

import (
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

func TestDeviceUpdate(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	e.ok(t, "hub", "device", "create", "u1")
	before := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "u1", "--show-secrets", "-o", "json"))

	got := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "update", "u1", "--status", "disabled", "--edge", "-o", "json"))
	if got.Status != "disabled" || !got.Edge || got.PrimaryKey != connstr.Redacted {
		t.Errorf("update --status disabled --edge = %+v", got)
	}
	shown := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "u1", "--show-secrets", "-o", "json"))
	if shown.Status != "disabled" || !shown.Edge || shown.PrimaryKey != before.PrimaryKey || shown.SecondaryKey != before.SecondaryKey {
		t.Errorf("after update: %+v; want disabled, edge, keys unchanged", shown)
	}
	const key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	e.ok(t, "hub", "device", "update", "u1", "--primary-key", key, "--status", "enabled", "--edge=false")
	shown = decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "u1", "--show-secrets", "-o", "json"))
	if shown.Status != "enabled" || shown.Edge || shown.PrimaryKey != key || shown.SecondaryKey != before.SecondaryKey {
		t.Errorf("after update --primary-key: %+v", shown)
	}

	e.fails(t, cmdutil.ExitNotFound, "", "hub", "device", "update", "ghost", "--status", "disabled")
	if r := e.run(t, nil, "hub", "device", "update", "u1", "--status", "disabled", "--etag", "bm9wZQ=="); r.code == 0 {
		t.Errorf("update with a stale --etag succeeded: %q", r.stdout)
	}
	e.ok(t, "hub", "device", "create", "x1", "--auth", "x509-ca")
	e.fails(t, cmdutil.ExitUsage, "not keys", "hub", "device", "update", "x1", "--primary-key", key)
}

func TestDeviceRenewKey(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	e.ok(t, "hub", "device", "create", "r1")
	e.ok(t, "hub", "device", "create", "r1", "-m", "m1")
	keys := func(args ...string) identityJSON {
		return decodeJSON[identityJSON](t, e.ok(t, append([]string{"hub", "device", "show", "r1", "--show-secrets", "-o", "json"}, args...)...))
	}
	k0 := keys()
	e.ok(t, "hub", "device", "renew-key", "r1", "--key-type", "primary")
	k1 := keys()
	if k1.PrimaryKey == k0.PrimaryKey || k1.SecondaryKey != k0.SecondaryKey || len(k1.PrimaryKey) != 44 {
		t.Errorf("renew primary: %q %q -> %q %q", k0.PrimaryKey, k0.SecondaryKey, k1.PrimaryKey, k1.SecondaryKey)
	}
	e.ok(t, "hub", "device", "renew-key", "r1", "--key-type", "swap")
	if k2 := keys(); k2.PrimaryKey != k1.SecondaryKey || k2.SecondaryKey != k1.PrimaryKey {
		t.Errorf("swap: %+v after %+v", k2, k1)
	}
	out := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "renew-key", "r1", "--key-type", "both", "--show-secrets", "-o", "json"))
	if k3 := keys(); out.PrimaryKey != k3.PrimaryKey || k3.PrimaryKey == k1.SecondaryKey || k3.SecondaryKey == k1.PrimaryKey ||
		out.ConnectionString != mustCS(t, e, "r1", "") {
		t.Errorf("both: printed %+v, now %+v", out, k3)
	}
	m0 := keys("-m", "m1")
	if r := e.ok(t, "hub", "device", "renew-key", "r1", "-m", "m1", "--key-type", "secondary"); strings.Contains(r, m0.SecondaryKey) {
		t.Error("renew-key printed a key without --show-secrets")
	}
	if m1 := keys("-m", "m1"); m1.SecondaryKey == m0.SecondaryKey || m1.PrimaryKey != m0.PrimaryKey {
		t.Errorf("module renew secondary: %+v after %+v", m1, m0)
	}
	e.fails(t, cmdutil.ExitNotFound, "", "hub", "device", "renew-key", "ghost")
}

func TestC2DPurge(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	e.ok(t, "hub", "device", "create", "p1")
	for range 3 {
		if _, err := e.hub.Registry().Enqueue("p1", "", &registry.C2DMessage{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if out := e.ok(t, "hub", "c2d", "purge", "p1", "-o", "json"); !strings.Contains(out, `"totalMessagesPurged": 3`) || !strings.Contains(out, `"deviceId": "p1"`) {
		t.Errorf("purge printed %s; want 3 purged", out)
	}
	if out := e.ok(t, "hub", "c2d", "purge", "-d", "p1"); out != "p1\t0\n" {
		t.Errorf("second purge printed %q; want p1<TAB>0", out)
	}
	e.fails(t, cmdutil.ExitNotFound, "", "hub", "c2d", "purge", "ghost")
}
