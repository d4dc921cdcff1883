package hub_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

type serveJSON struct {
	HostName         string   `json:"hostName"`
	Addresses        []string `json:"addresses"`
	CAFile           string   `json:"caFile"`
	ConnectionString string   `json:"connectionString"`
	EventHub         string   `json:"eventHubConnectionString"`
}

// startServe runs `iotctl hub serve ... -o json` and returns what it
// printed once the hub is up.
func startServe(t *testing.T, args ...string) (*background, serveJSON) {
	t.Helper()
	serve := startIotctl(t, append([]string{"hub", "serve", "--addr", "127.0.0.1:0", "-o", "json"}, args...)...)
	var info serveJSON
	deadline := time.After(30 * time.Second)
	for json.Unmarshal([]byte(serve.out.String()), &info) != nil {
		select {
		case <-serve.out.lines:
		case <-serve.done:
			t.Fatalf("hub serve exited %d: %s", serve.code, serve.errOut.String())
		case <-deadline:
			t.Fatalf("hub serve printed %q within 30s; want its JSON", serve.out.String())
		}
	}
	return serve, info
}

func stopServe(t *testing.T, serve *background) {
	t.Helper()
	serve.cancel()
	if code := serve.wait(t, 20*time.Second); code != cmdutil.ExitInterrupted {
		t.Errorf("hub serve exited %d after the interrupt; want 130", code)
	}
}

// hub serve --seed: the seeded policy's connection string works with
// the other commands, the seeded device has the file's key, /health
// says ok, and a restart with the same file changes nothing.
func TestServeSeed(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	seedFile, err := filepath.Abs("../../pkg/hub/seed/testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	serve, info := startServe(t, "--data-dir", dataDir, "--seed", seedFile)

	// The policy from the file, with the file's key.
	ci := "HostName=" + info.HostName + ";SharedAccessKeyName=ci;SharedAccessKey=Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk="
	env := map[string]string{"IOTCTL_CONNECTION_STRING": ci, "IOTCTL_CA_FILE": info.CAFile}
	r := runEnv(t, env, "hub", "device", "show", "thermostat-1", "--show-secrets", "-o", "json")
	if r.code != 0 {
		t.Fatalf("hub device show with the seeded policy: exit %d stderr %q", r.code, r.stderr)
	}
	d1 := decodeJSON[identityJSON](t, r.stdout)
	if d1.PrimaryKey != "dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY=" || d1.Status != "enabled" {
		t.Errorf("thermostat-1 = %+v; want the file's key, enabled", d1)
	}
	r = runEnv(t, env, "hub", "twin", "show", "thermostat-1", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"telemetryInterval": 5`) || !strings.Contains(r.stdout, `"site": "lab"`) {
		t.Errorf("hub twin show: exit %d stdout %s stderr %q; want the file's tags and desired properties", r.code, r.stdout, r.stderr)
	}

	// /health, as a container health check would ask.
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	res, err := c.Get("https://" + info.Addresses[0] + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	c.CloseIdleConnections()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("GET /health = %d %s; want 200 and status ok", res.StatusCode, body)
	}
	stopServe(t, serve)

	// The same file at the next start changes nothing.
	serve, info = startServe(t, "--data-dir", dataDir, "--seed", seedFile)
	env["IOTCTL_CA_FILE"] = info.CAFile
	env["IOTCTL_CONNECTION_STRING"] = "HostName=" + info.HostName + ";SharedAccessKeyName=ci;SharedAccessKey=Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk="
	r = runEnv(t, env, "hub", "device", "show", "thermostat-1", "--show-secrets", "-o", "json")
	if d2 := decodeJSON[identityJSON](t, r.stdout); d2.Etag != d1.Etag || d2.PrimaryKey != d1.PrimaryKey {
		t.Errorf("after a restart with the same seed: etag %s→%s; want it unchanged", d1.Etag, d2.Etag)
	}
	stopServe(t, serve)
}

// An invalid seed file exits 3 before the hub starts, naming the file,
// the line and the problem.
func TestServeSeedInvalid(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"unknown field", "devices:\n  - deviceId: a\n    deviceID: b\n", `bad.yaml:3:5: unknown field "deviceID" in a device: did you mean "deviceId"?`},
		{"bad key", "devices:\n  - deviceId: a\n    authentication:\n      symmetricKey: {primaryKey: c2hvcnQ=}\n", "bad.yaml:2: device a: a shared access key must be base64 of 16 to 64 bytes"},
		{"not yaml", "devices: [\n", "bad.yaml: not valid YAML or JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(f, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runEnv(t, nil, "hub", "serve", "--addr", "127.0.0.1:0", "--in-memory", "--seed", f)
			if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d stderr %q; want 3 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
	r := runEnv(t, nil, "hub", "serve", "--addr", "127.0.0.1:0", "--in-memory", "--seed", filepath.Join(dir, "missing.yaml"))
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("a missing seed file: exit %d stderr %q; want 3 naming it", r.code, r.stderr)
	}
}
