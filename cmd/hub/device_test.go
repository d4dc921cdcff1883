package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/clitest"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	hubsrv "github.com/iotctl/iotctl/pkg/hub"
)

// regEnv is an in-process hub for the registry and twin commands.
type regEnv struct {
	hub *hubsrv.Hub
	cs  string // iothubowner
	// config is a config file with the hub's service connection string
	// and CA: commands run with no env of their own read it (--config),
	// so that tests need no t.Setenv and may run in parallel.
	config string
}

// TestMain keeps the user's IOTCTL_* variables and config file out of
// every test of the package, once for all of them, and lets more
// parallel tests run at once than there are CPUs: they mostly wait.
func TestMain(m *testing.M) {
	os.Exit(clitest.Main(m))
}

func startRegEnv(t *testing.T) *regEnv {
	t.Helper()
	// Expired C2D messages are swept every 200 ms instead of 5 s, so
	// the tests that wait for an Expired feedback wait that much less.
	h := hubsrv.New(&hubsrv.Options{Addr: "127.0.0.1:0", InMemory: true, C2DSweepInterval: 200 * time.Millisecond})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("hub Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	return &regEnv{hub: h, cs: cs, config: clitest.HubConfig(t, cs, h.CAFile())}
}

// argv is args for a command run with env: with none, after --config
// and the hub's config file; with some, as they are (setenv sets the
// hub's settings in the environment).
func (e *regEnv) argv(env map[string]string, args []string) []string {
	if env != nil {
		return args
	}
	return append([]string{"--config", e.config}, args...)
}

// createDevices registers n devices named by format (with 0..n-1) in
// the hub's registry, from several goroutines at once: the registry
// commits its writes in batches (bbolt's DB.Batch), and a lone writer
// waits out each batch's delay, about 10 ms a device.
func createDevices(t *testing.T, e *regEnv, n int, format string) {
	t.Helper()
	errs := make(chan error, n)
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range ids {
				if err := e.hub.CreateDevice(id); err != nil {
					errs <- fmt.Errorf("create %s: %w", id, err)
				}
			}
		})
	}
	for i := range n {
		ids <- fmt.Sprintf(format, i)
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type regResult struct {
	code           int
	stdout, stderr string
}

// run executes iotctl in process with the hub's service connection
// string and CA: from the hub's config file without env, else from the
// environment with env over them ("" unsets; such a test cannot run in
// parallel).
func (e *regEnv) run(t *testing.T, env map[string]string, args ...string) regResult {
	t.Helper()
	e.setenv(t, env)
	var out, errOut bytes.Buffer
	code := cmd.Execute(context.Background(), e.argv(env, args), &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return regResult{code, out.String(), errOut.String()}
}

// setenv, with env, clears IOTCTL_* and the default config file, then
// sets the hub's service connection string and CA, then env. Without
// env it does nothing: TestMain isolated the process and argv names
// the hub's config file.
func (e *regEnv) setenv(t *testing.T, env map[string]string) {
	t.Helper()
	if env == nil {
		return
	}
	clitest.Isolate(t)
	t.Setenv("IOTCTL_CONNECTION_STRING", e.cs)
	t.Setenv("IOTCTL_CA_FILE", e.hub.CAFile())
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// env is the environment of a command that reaches e's hub: its
// service connection string and CA, then extra over them.
func (e *regEnv) env(extra map[string]string) map[string]string {
	env := map[string]string{"IOTCTL_CONNECTION_STRING": e.cs, "IOTCTL_CA_FILE": e.hub.CAFile()}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// runTTY runs iotctl as run does, with stdout taken for a terminal.
func (e *regEnv) runTTY(t *testing.T, args ...string) regResult {
	t.Helper()
	e.setenv(t, nil)
	var out, errOut bytes.Buffer
	code := cmd.Execute(context.Background(), e.argv(nil, args), &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut, OutTTY: true})
	return regResult{code, out.String(), errOut.String()}
}

// ok runs iotctl and fails the test unless it exits 0.
func (e *regEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := e.run(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("iotctl %s: exit %d stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs iotctl and checks its exit code and that stderr says want.
func (e *regEnv) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	r := e.run(t, nil, args...)
	if r.code != code || !strings.Contains(r.stderr, want) || r.stdout != "" {
		t.Errorf("iotctl %s: exit %d stdout %q stderr %q; want %d and %q", strings.Join(args, " "), r.code, r.stdout, r.stderr, code, want)
	}
}

type identityJSON struct {
	DeviceID         string `json:"deviceId"`
	ModuleID         string `json:"moduleId"`
	Status           string `json:"status"`
	ConnectionState  string `json:"connectionState"`
	Auth             string `json:"authType"`
	PrimaryKey       string `json:"primaryKey"`
	SecondaryKey     string `json:"secondaryKey"`
	Thumbprint       string `json:"primaryThumbprint"`
	Edge             bool   `json:"iotEdge"`
	Etag             string `json:"etag"`
	ConnectionString string `json:"connectionString"`
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("stdout %q: %v", s, err)
	}
	return v
}

// connects proves a device or module connection string works: a
// device client connects with it.
func connects(t *testing.T, e *regEnv, cs string) {
	t.Helper()
	d, err := device.New(&device.Options{ConnectionString: cs, CAFile: e.hub.CAFile()})
	if err != nil {
		t.Fatalf("device.New(printed connection string): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("connecting with the printed connection string: %v", err)
	}
	d.Close(ctx)
}

func TestDeviceCreate(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)

	t.Run("table prints a working connection string, keys redacted", func(t *testing.T) {
		out := e.ok(t, "hub", "device", "create", "dev1")
		var cs string
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, "connection string\t"); ok {
				cs = v
			}
		}
		if !strings.Contains(out, "primary key\tREDACTED") || cs == "" {
			t.Fatalf("stdout %q; want REDACTED keys and a connection string line", out)
		}
		want, _ := e.hub.DeviceConnectionString("dev1", "")
		if cs != want {
			t.Errorf("connection string %q; want %q", cs, want)
		}
		connects(t, e, cs)
	})

	t.Run("given keys, json", func(t *testing.T) {
		const pk, sk = "cHJpbWFyeS1rZXktcHJpbWFyeS1rZXktMTIzNDU2Nzg=", "c2Vjb25kYXJ5LWtleS1zZWNvbmRhcnkta2V5LTEyMzQ="
		id := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "create", "--device-id", "dev2", "--primary-key", pk, "--secondary-key", sk, "-o", "json"))
		cs := connstr.MustParse(id.ConnectionString)
		if id.DeviceID != "dev2" || id.Auth != "sas" || id.PrimaryKey != connstr.Redacted || cs.SharedAccessKey != pk || cs.DeviceID != "dev2" {
			t.Errorf("created %+v", id)
		}
		connects(t, e, id.ConnectionString)
		shown := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "dev2", "--show-secrets", "-o", "json"))
		if shown.PrimaryKey != pk || shown.SecondaryKey != sk {
			t.Errorf("show --show-secrets keys %q %q; want the given ones", shown.PrimaryKey, shown.SecondaryKey)
		}
	})

	t.Run("edge, disabled, yaml", func(t *testing.T) {
		out := e.ok(t, "hub", "device", "create", "edge1", "--edge", "--status", "disabled", "-o", "yaml")
		for _, want := range []string{"deviceId: edge1", "status: disabled", "iotEdge: true", "primaryKey: REDACTED", "connectionString: HostName="} {
			if !strings.Contains(out, want) {
				t.Errorf("yaml %q lacks %q", out, want)
			}
		}
	})

	t.Run("x509 thumbprint", func(t *testing.T) {
		pt, st := strings.Repeat("9F", 20), strings.Repeat("0A", 20)
		out := e.ok(t, "hub", "device", "create", "cam1", "--auth", "x509-thumbprint", "--primary-thumbprint", pt, "--secondary-thumbprint", st, "-o", "json")
		id := decodeJSON[identityJSON](t, out)
		x509CS := "HostName=" + e.hub.HostName() + ";DeviceId=cam1;x509=true"
		if id.Auth != "selfSigned" || id.Thumbprint != pt || id.ConnectionString != x509CS || strings.Contains(out, "primaryKey") {
			t.Errorf("created %s; want the x509=true connection string and no key", out)
		}
		shown := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "cam1", "--show-secrets", "-o", "json"))
		if shown.Thumbprint != pt || shown.ConnectionString != x509CS || shown.PrimaryKey != "" {
			t.Errorf("shown %+v", shown)
		}
		if got := e.ok(t, "hub", "device", "show", "cam1", "--show-connection-string"); got != x509CS+"\n" {
			t.Errorf("show --show-connection-string = %q; want %q", got, x509CS)
		}
	})

	t.Run("x509 CA", func(t *testing.T) {
		id := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "create", "ca1", "--auth", "x509-ca", "-o", "json"))
		if id.Auth != "certificateAuthority" || id.ConnectionString != "HostName="+e.hub.HostName()+";DeviceId=ca1;x509=true" {
			t.Errorf("created %+v", id)
		}
	})

	t.Run("module", func(t *testing.T) {
		id := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "create", "dev1", "--module-id", "mod1", "-o", "json"))
		cs := connstr.MustParse(id.ConnectionString)
		if id.ModuleID != "mod1" || cs.DeviceID != "dev1" || cs.ModuleID != "mod1" || id.PrimaryKey != connstr.Redacted {
			t.Errorf("created %+v", id)
		}
		connects(t, e, id.ConnectionString)
		if out := e.ok(t, "hub", "device", "show", "dev1", "-m", "mod1", "--show-connection-string"); out != id.ConnectionString+"\n" {
			t.Errorf("--show-connection-string %q; want %q", out, id.ConnectionString)
		}
	})

	t.Run("errors", func(t *testing.T) {
		e.fails(t, cmdutil.ExitFailure, "409", "hub", "device", "create", "dev1")
		e.fails(t, cmdutil.ExitFailure, "409", "hub", "device", "create", "dev1", "--module-id", "mod1")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "device", "create", "ghost", "--module-id", "mod1")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "device", "show", "x")
	})
}

func TestDeviceShowListDelete(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	for _, id := range []string{"a1", "b2", "c3"} {
		if err := e.hub.CreateDevice(id); err != nil {
			t.Fatal(err)
		}
	}
	key := connstr.MustParse(mustCS(t, e, "a1", "")).SharedAccessKey

	t.Run("show redacts keys", func(t *testing.T) {
		for _, format := range []string{"table", "json", "yaml"} {
			out := e.ok(t, "hub", "device", "show", "a1", "-o", format)
			if strings.Contains(out, key) || !strings.Contains(out, connstr.Redacted) || strings.Contains(out, "HostName=") {
				t.Errorf("-o %s: %q; want keys redacted and no connection string", format, out)
			}
		}
	})

	t.Run("show --show-secrets", func(t *testing.T) {
		id := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "--device-id", "a1", "--show-secrets", "-o", "json"))
		if id.PrimaryKey != key || id.ConnectionString != mustCS(t, e, "a1", "") || id.ConnectionState != "Disconnected" || id.Etag == "" {
			t.Errorf("shown %+v", id)
		}
		if out := e.ok(t, "hub", "device", "show", "a1", "--show-connection-string"); out != mustCS(t, e, "a1", "")+"\n" {
			t.Errorf("--show-connection-string printed %q", out)
		}
	})

	t.Run("list", func(t *testing.T) {
		ids := decodeJSON[[]identityJSON](t, e.ok(t, "hub", "device", "list", "-o", "json"))
		if len(ids) != 3 || ids[0].DeviceID != "a1" || ids[2].DeviceID != "c3" {
			t.Errorf("list %+v", ids)
		}
		for _, id := range ids {
			if id.PrimaryKey != connstr.Redacted || id.ConnectionString != "" {
				t.Errorf("list shows secrets: %+v", id)
			}
		}
		if top := decodeJSON[[]identityJSON](t, e.ok(t, "hub", "device", "list", "--top", "2", "-o", "json")); len(top) != 2 {
			t.Errorf("--top 2 listed %d", len(top))
		}
		table := e.ok(t, "hub", "device", "list")
		if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "a1\t-\tenabled\tDisconnected\tsas\t0\t") {
			t.Errorf("piped table (tab-separated, no header):\n%s", table)
		}
		if tty := e.runTTY(t, "hub", "device", "list"); tty.code != 0 || !strings.HasPrefix(tty.stdout, "DEVICE  MODULE  STATUS") || !strings.Contains(tty.stdout, "\nb2      -       enabled") {
			t.Errorf("terminal table (exit %d):\n%s", tty.code, tty.stdout)
		}
		if y := e.ok(t, "hub", "device", "list", "-o", "yaml"); !strings.Contains(y, "- deviceId: a1") {
			t.Errorf("yaml:\n%s", y)
		}
		if strings.Contains(table, key) {
			t.Error("the list shows a key")
		}
	})

	t.Run("modules", func(t *testing.T) {
		e.ok(t, "hub", "device", "create", "a1", "-m", "m1")
		e.ok(t, "hub", "device", "create", "a1", "-m", "m2", "--primary-key", key)
		mods := decodeJSON[[]identityJSON](t, e.ok(t, "hub", "device", "list", "--modules-of", "a1", "-o", "json"))
		if len(mods) != 2 || mods[0].ModuleID != "m1" || mods[1].ModuleID != "m2" || mods[0].DeviceID != "a1" {
			t.Errorf("modules %+v", mods)
		}
		if empty := e.ok(t, "hub", "device", "list", "--modules-of", "b2", "-o", "json"); strings.TrimSpace(empty) != "[]" {
			t.Errorf("no modules: %q; want []", empty)
		}
		m := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "a1", "-m", "m2", "--show-secrets", "-o", "json"))
		if m.PrimaryKey != key || !strings.Contains(m.ConnectionString, ";ModuleId=m2;") {
			t.Errorf("module shown %+v", m)
		}
		e.ok(t, "hub", "device", "delete", "a1", "-m", "m1")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "device", "show", "a1", "-m", "m1")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "device", "delete", "a1", "-m", "m1")
	})

	t.Run("delete with an etag", func(t *testing.T) {
		id := decodeJSON[identityJSON](t, e.ok(t, "hub", "device", "show", "b2", "-o", "json"))
		e.fails(t, cmdutil.ExitFailure, "412", "hub", "device", "delete", "b2", "--etag", "bm90LXRoZS1ldGFn")
		e.ok(t, "hub", "device", "show", "b2")
		if out := e.ok(t, "hub", "device", "delete", "b2", "--etag", id.Etag); out != "" {
			t.Errorf("delete printed %q", out)
		}
		e.fails(t, cmdutil.ExitNotFound, "DeviceNotFound", "hub", "device", "show", "b2")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "device", "delete", "b2")
	})

	t.Run("delete takes the device's modules", func(t *testing.T) {
		e.ok(t, "hub", "device", "delete", "--device-id", "a1")
		e.fails(t, cmdutil.ExitNotFound, "404", "hub", "device", "show", "a1", "-m", "m2")
	})
}

func mustCS(t *testing.T, e *regEnv, deviceID, moduleID string) string {
	t.Helper()
	s, err := e.hub.DeviceConnectionString(deviceID, moduleID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDeviceCommandsCredentials(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	e := startRegEnv(t)
	if err := e.hub.CreateDevice("d1"); err != nil {
		t.Fatal(err)
	}
	host := connstr.MustParse(e.cs).HostName
	wrong := "HostName=" + host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ=="
	devCS := mustCS(t, e, "d1", "")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"wrong key", map[string]string{"IOTCTL_CONNECTION_STRING": wrong}, nil, cmdutil.ExitAuth, "401"},
		{"no connection string", map[string]string{"IOTCTL_CONNECTION_STRING": ""}, nil, cmdutil.ExitUsage, "no service connection string"},
		{"device connection string", nil, []string{"--connection-string", devCS}, cmdutil.ExitUsage, "a service connection string is needed"},
		{"untrusted hub", map[string]string{"IOTCTL_CA_FILE": ""}, nil, cmdutil.ExitFailure, "certificate"},
		{"missing CA file", nil, []string{"--ca-file", "/nonexistent/ca.pem"}, cmdutil.ExitUsage, "/nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		for _, sub := range [][]string{
			{"hub", "device", "show", "d1"}, {"hub", "device", "list"}, {"hub", "device", "create", "d2"}, {"hub", "device", "delete", "d9"},
			{"hub", "twin", "show", "d1"}, {"hub", "twin", "update", "d1", "--tags", `{"a":1}`},
		} {
			var r regResult
			if tt.env != nil {
				r = runEnv(t, e.env(tt.env), append(sub, tt.args...)...)
			} else {
				r = e.run(t, nil, append(sub, tt.args...)...)
			}
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("%s: iotctl %s: exit %d stdout %q stderr %q; want %d and %q", tt.name, strings.Join(sub, " "), r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
			for _, secret := range []string{connstr.MustParse(e.cs).SharedAccessKey, connstr.MustParse(devCS).SharedAccessKey, "d3Jvbmcta2V5", "sig="} {
				if strings.Contains(r.stderr, secret) {
					t.Errorf("%s: stderr %q contains a secret", tt.name, r.stderr)
				}
			}
		}
	}
	if _, err := e.hub.Registry().Device("d2"); err == nil {
		t.Error("a failed create made d2 anyway")
	}
}

// TestDeviceListPastOneThousand lists every device of a hub that has
// more than the 1,000 GET /devices returns, and --top exactly.
func TestDeviceListPastOneThousand(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	const n = 1050
	createDevices(t, e, n, "dev%05d")
	ids := decodeJSON[[]identityJSON](t, e.ok(t, "hub", "device", "list", "-o", "json"))
	if len(ids) != n || ids[0].DeviceID != "dev00000" || ids[n-1].DeviceID != fmt.Sprintf("dev%05d", n-1) {
		t.Fatalf("list gave %d devices; want %d, in order", len(ids), n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id.DeviceID] || id.Auth != "sas" || id.PrimaryKey != connstr.Redacted || id.Etag == "" {
			t.Fatalf("list: %+v (repeated or incomplete)", id)
		}
		seen[id.DeviceID] = true
	}
	for _, top := range []int{1, 1000, 1001, 1049, 5000} {
		got := decodeJSON[[]identityJSON](t, e.ok(t, "hub", "device", "list", "--top", fmt.Sprint(top), "-o", "json"))
		if want := min(top, n); len(got) != want {
			t.Errorf("--top %d listed %d; want %d", top, len(got), want)
		}
	}
}
