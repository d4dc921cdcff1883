package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/sas"
)

type result struct {
	code   int
	stdout string
	stderr string
}

// run executes iotctl in process with captured streams and no config
// file from the user's home.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), args, &cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return result{code, out.String(), errOut.String()}
}

// runIsolated is run for a test that may run in parallel: no process
// variable set, the configuration sees no IOTCTL_* variable, and
// TestMain keeps the user's config file out.
func runIsolated(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := ExecuteEnv(context.Background(), args, &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, nil)
	return result{code, out.String(), errOut.String()}
}

const (
	deviceCS  = "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=c2VjcmV0"
	serviceCS = "HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
)

func TestConnstrParse(t *testing.T) {
	t.Run("bad key exits 3 and says base64", func(t *testing.T) {
		r := run(t, "", "hub", "connstr", "parse", "HostName=x.azure-devices.net;DeviceId=d;SharedAccessKey=not*base64")
		if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "not valid base64") || r.stdout != "" {
			t.Fatalf("got code %d stdout %q stderr %q; want 3 and a base64 message", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("stdin json", func(t *testing.T) {
		r := run(t, deviceCS+"\n", "hub", "connstr", "parse", "-", "-o", "json")
		var v map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 {
			t.Fatalf("code %d, stdout %q: %v", r.code, r.stdout, err)
		}
		if v["kind"] != "device" || v["deviceId"] != "dev1" || v["sharedAccessKey"] != "REDACTED" {
			t.Errorf("json = %v", v)
		}
		if strings.Contains(r.stdout, "c2VjcmV0") {
			t.Errorf("stdout %q contains the key", r.stdout)
		}
	})
	t.Run("show secrets", func(t *testing.T) {
		r := run(t, "", "hub", "connstr", "parse", deviceCS, "--show-secrets")
		if r.code != 0 || !strings.Contains(r.stdout, "c2VjcmV0") {
			t.Fatalf("code %d stdout %q; want the key", r.code, r.stdout)
		}
	})
	t.Run("env output is shell-quoted", func(t *testing.T) {
		r := run(t, "", "hub", "connstr", "parse", "-o", "env", serviceCS)
		for _, want := range []string{"IOTCTL_KIND='service'\n", "IOTCTL_HOST='localhost'\n", "IOTCTL_PORT='8443'\n", "IOTCTL_POLICY='iothubowner'\n"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("stdout %q lacks %q", r.stdout, want)
			}
		}
		if strings.Contains(r.stdout, "c2VjcmV0") {
			t.Errorf("stdout %q contains the key", r.stdout)
		}
	})
	t.Run("configured string from env", func(t *testing.T) {
		t.Setenv("IOTCTL_CONNECTION_STRING", serviceCS)
		r := run(t, "", "hub", "connstr", "parse", "-o", "json")
		if r.code != 0 || !strings.Contains(r.stdout, `"kind": "service"`) {
			t.Fatalf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("no string at all", func(t *testing.T) {
		r := run(t, "", "hub", "connstr", "parse")
		if r.code != cmdutil.ExitUsage {
			t.Fatalf("code %d; want 3", r.code)
		}
	})
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	fileCS := "HostName=file.net;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0"
	envCS := "HostName=env.net;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0"
	flagCS := "HostName=flag.net;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0"
	if err := os.WriteFile(cfg, []byte("connection-string: "+fileCS+"\noutput: json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host := func(r result) string {
		var v struct {
			Host string `json:"host"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("stdout %q (stderr %q): %v", r.stdout, r.stderr, err)
		}
		return v.Host
	}
	if h := host(run(t, "", "--config", cfg, "hub", "connstr", "parse")); h != "file.net" {
		t.Errorf("file only: host %q; want file.net", h)
	}
	t.Setenv("IOTCTL_CONNECTION_STRING", envCS)
	if h := host(run(t, "", "--config", cfg, "hub", "connstr", "parse")); h != "env.net" {
		t.Errorf("env over file: host %q; want env.net", h)
	}
	if h := host(run(t, "", "--config", cfg, "hub", "connstr", "parse", "--connection-string", flagCS)); h != "flag.net" {
		t.Errorf("flag over env: host %q; want flag.net", h)
	}
	r := run(t, "", "--config", filepath.Join(dir, "missing.yaml"), "version")
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "missing.yaml") {
		t.Errorf("missing named config: code %d stderr %q; want 3 naming the file", r.code, r.stderr)
	}
}

func TestSASCommand(t *testing.T) {
	r := run(t, "", "hub", "sas", "--connection-string", deviceCS, "--ttl", "2h", "-o", "json")
	if r.code != 0 {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	var res struct {
		Token string `json:"token"`
		Sr    string `json:"sr"`
		Se    int64  `json:"se"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	tok, err := sas.Parse(res.Token)
	if err != nil {
		t.Fatalf("Parse(%q) = %v", res.Token, err)
	}
	key, _ := sas.DecodeKey("c2VjcmV0")
	if err := sas.Verify(tok, key, time.Now()); err != nil {
		t.Errorf("Verify(token from hub sas) = %v", err)
	}
	if !sas.Covers(tok.Scope(), "myhub.azure-devices.net/devices/dev1") || res.Sr != "myhub.azure-devices.net%2Fdevices%2Fdev1" {
		t.Errorf("scope %q / sr %q; want the device", tok.Scope(), res.Sr)
	}
	if d := time.Until(tok.Expiry()); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("expiry in %v; want about 2h", d)
	}

	r = run(t, "", "hub", "sas", "--connection-string", serviceCS, "--expiry", "2030-01-01T00:00:00Z")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "SharedAccessSignature sr=localhost%3A8443&sig=") || !strings.Contains(r.stdout, "&se=1893456000&skn=iothubowner") {
		t.Errorf("service token: code %d stdout %q", r.code, r.stdout)
	}

	for name, args := range map[string][]string{
		"device id with a hub string": {"--connection-string", serviceCS, "--device-id", "dev1"},
		"device id mismatch":          {"--connection-string", deviceCS, "--device-id", "other"},
		"bad expiry":                  {"--connection-string", deviceCS, "--expiry", "tomorrow"},
		"secondary key":               {"--connection-string", deviceCS, "--key-type", "secondary"},
		"x509 string":                 {"--connection-string", "HostName=h.net;DeviceId=d;x509=true"},
	} {
		r := run(t, "", append([]string{"hub", "sas"}, args...)...)
		if r.code != cmdutil.ExitUsage || r.stdout != "" {
			t.Errorf("%s: code %d stdout %q stderr %q; want 3", name, r.code, r.stdout, r.stderr)
		}
	}
}

func TestUsageErrorsExit3(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"version", "--bogus"}, {"version", "extra"}, {"-o", "xml", "version"}, {"completion", "tcsh"}} {
		r := run(t, "", args...)
		if r.code != cmdutil.ExitUsage {
			t.Errorf("iotctl %v: code %d stderr %q; want 3", args, r.code, r.stderr)
		}
	}
}

func TestHelpAndCompletion(t *testing.T) {
	r := run(t, "", "help", "exit-codes")
	for _, want := range []string{"0     success", "6     device offline", "130   interrupted"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help exit-codes lacks %q: %q", want, r.stdout)
		}
	}
	r = run(t, "", "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "__start_iotctl") {
		t.Errorf("completion bash: code %d, %d bytes", r.code, len(r.stdout))
	}
	r = run(t, "", "version", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"version"`) {
		t.Errorf("version -o json: code %d stdout %q", r.code, r.stdout)
	}
	r = run(t, "", "hub", "sas", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "$ iotctl hub sas") {
		t.Errorf("hub sas --help: code %d stdout %q", r.code, r.stdout)
	}
}
