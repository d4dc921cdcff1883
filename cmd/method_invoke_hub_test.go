package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/clitest"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// methodEnv is an in-process hub with dev1 connected through pkg/device
// (answering echo, SetTelemetryInterval, silent, and 404 for the rest),
// dev1/mod1 connected as a module (answering echo), and dev2
// registered but offline.
type methodEnv struct {
	hub *hub.Hub
	cs  string // iothubowner
	// config is a config file with cs and the hub's CA: iotctl reads it
	// (--config), so that its tests need no t.Setenv and may run in
	// parallel.
	config   string
	got      chan string
	modGot   chan string
	released chan struct{}
}

func startMethodEnv(t *testing.T) *methodEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("hub Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	e := &methodEnv{hub: h, cs: cs, config: clitest.HubConfig(t, cs, h.CAFile()), got: make(chan string, 100), modGot: make(chan string, 100), released: make(chan struct{})}
	for _, id := range []string{"dev1", "dev2"} {
		if err := h.CreateDevice(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Registry().CreateModule(&iothub.Module{DeviceID: "dev1", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}

	dev := connect(ctx, t, h, "dev1", "")
	dev.HandleMethod("echo", func(_ context.Context, r *device.MethodRequest) device.MethodResponse {
		e.got <- string(r.Payload)
		return device.MethodResponse{Status: 200, Payload: r.Payload}
	})
	dev.HandleMethod("SetTelemetryInterval", func(_ context.Context, r *device.MethodRequest) device.MethodResponse {
		e.got <- string(r.Payload)
		var n json.Number
		var s string
		if json.Unmarshal(r.Payload, &n) == nil || (json.Unmarshal(r.Payload, &s) == nil && isInt(s)) {
			return device.MethodResponse{Status: 200, Payload: device.ResponseJSON("Executed direct method " + r.Name)}
		}
		return device.MethodResponse{Status: 400, Payload: device.ResponseJSON("Invalid parameter")}
	})
	dev.HandleMethod("silent", func(ctx context.Context, _ *device.MethodRequest) device.MethodResponse {
		select {
		case <-ctx.Done():
		case <-e.released:
		}
		return device.MethodResponse{Status: 200}
	})
	t.Cleanup(func() { close(e.released) })

	mod := connect(ctx, t, h, "dev1", "mod1")
	mod.HandleMethod("echo", func(_ context.Context, r *device.MethodRequest) device.MethodResponse {
		e.modGot <- string(r.Payload)
		return device.MethodResponse{Status: 200, Payload: []byte(`{"module":true}`)}
	})
	return e
}

func isInt(s string) bool { _, err := strconv.Atoi(s); return err == nil }

func connect(ctx context.Context, t *testing.T, h *hub.Hub, deviceID, moduleID string) *device.Client {
	t.Helper()
	dcs, err := h.DeviceConnectionString(deviceID, moduleID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(&device.Options{ConnectionString: dcs, CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("device %s/%s Connect: %v", deviceID, moduleID, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d.Close(ctx)
	})
	return d
}

type result struct {
	code           int
	stdout, stderr string
}

// iotctl runs the whole command tree in process with the env's
// service connection string and CA from its config file. TestMain
// keeps the user's environment and config file out.
func (e *methodEnv) iotctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmd.Execute(context.Background(), append([]string{"--config", e.config}, args...),
		&cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return result{code, out.String(), errOut.String()}
}

// onlyResult decodes stdout as exactly one {"status","payload"} object.
func onlyResult(t *testing.T, stdout string) (int, string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	var res struct {
		Status  *int            `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := dec.Decode(&res); err != nil || res.Status == nil || res.Payload == nil {
		t.Fatalf("stdout %q is not one {status, payload} object: %v", stdout, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout %q has more than the result object", stdout)
	}
	var b bytes.Buffer
	json.Compact(&b, res.Payload)
	return *res.Status, b.String()
}

func TestInvokeAgainstHub(t *testing.T) {
	t.Parallel() // no t.Setenv: see methodEnv.config
	e := startMethodEnv(t)
	payloadFile := filepath.Join(t.TempDir(), "p.json")
	os.WriteFile(payloadFile, []byte(`{"fromFile": [1, 2]}`), 0o600)
	tests := []struct {
		name        string
		stdin       string
		args        []string
		wantCode    int
		wantStatus  int
		wantPayload string
		deviceGot   string // the payload the device received, compacted
	}{
		{"number", "", []string{"--name", "SetTelemetryInterval", "--payload", "10"}, 0, 200, `{"Response":"Executed direct method SetTelemetryInterval"}`, `10`},
		{"JSON string", "", []string{"--name", "SetTelemetryInterval", "--payload", `"10"`}, 0, 200, `{"Response":"Executed direct method SetTelemetryInterval"}`, `"10"`},
		{"device refuses: 400 exits 8", "", []string{"--name", "SetTelemetryInterval", "--payload", `{"a":1}`}, 8, 400, `{"Response":"Invalid parameter"}`, `{"a":1}`},
		{"unknown method: 404 exits 8", "", []string{"--name", "nosuch"}, 8, 404, `{"Response":"Direct method nosuch not defined"}`, ""},
		{"echo object", "", []string{"--name", "echo", "--payload", `{"a":1,"b":[true,null]}`}, 0, 200, `{"a":1,"b":[true,null]}`, `{"a":1,"b":[true,null]}`},
		{"echo --payload-string", "", []string{"--name", "echo", "--payload-string", "hello world"}, 0, 200, `"hello world"`, `"hello world"`},
		{"echo --payload-file", "", []string{"--name", "echo", "--payload-file", payloadFile}, 0, 200, `{"fromFile":[1,2]}`, `{"fromFile":[1,2]}`},
		{"echo --payload-file -", `{"stdin":true}`, []string{"--name", "echo", "--payload-file", "-"}, 0, 200, `{"stdin":true}`, `{"stdin":true}`},
		{"echo with aliases", "", []string{"--method-name", "echo", "--method-payload", `[1]`}, 0, 200, `[1]`, `[1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.iotctl(t, tt.stdin, append([]string{"method", "invoke", "-d", "dev1", "-o", "json"}, tt.args...)...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d stderr %q; want %d", r.code, r.stderr, tt.wantCode)
			}
			if r.stderr != "" {
				t.Errorf("stderr %q; want nothing (the device's status is data)", r.stderr)
			}
			status, payload := onlyResult(t, r.stdout)
			if status != tt.wantStatus || payload != tt.wantPayload {
				t.Errorf("result %d %s; want %d %s", status, payload, tt.wantStatus, tt.wantPayload)
			}
			if tt.deviceGot != "" {
				select {
				case got := <-e.got:
					var b bytes.Buffer
					json.Compact(&b, []byte(got))
					if b.String() != tt.deviceGot {
						t.Errorf("the device got %s; want %s", got, tt.deviceGot)
					}
				case <-time.After(5 * time.Second):
					t.Error("the device's handler recorded nothing")
				}
			}
		})
	}

	t.Run("module", func(t *testing.T) {
		r := e.iotctl(t, "", "method", "invoke", "-d", "dev1", "-m", "mod1", "--name", "echo", "--payload", `{"m":1}`, "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		if status, payload := onlyResult(t, r.stdout); status != 200 || payload != `{"module":true}` {
			t.Errorf("result %d %s", status, payload)
		}
		if got := <-e.modGot; got != `{"m":1}` {
			t.Errorf("the module got %s", got)
		}
	})

	t.Run("table output is the quickstart's", func(t *testing.T) {
		r := e.iotctl(t, "", "method", "invoke", "-d", "dev1", "--name", "SetTelemetryInterval", "--payload", "10")
		want := "Device Method called\n" +
			"Device Method name       : SetTelemetryInterval\n" +
			"Device Method payload    : 10\n\n" +
			"Response status          : 200\n" +
			"Response payload         : {\"Response\":\"Executed direct method SetTelemetryInterval\"}\n"
		if r.code != 0 || r.stdout != want {
			t.Errorf("exit %d stdout:\n%s\nwant:\n%s", r.code, r.stdout, want)
		}
		<-e.got
	})

	t.Run("debug log on stderr, no secrets", func(t *testing.T) {
		r := e.iotctl(t, "", "method", "invoke", "-d", "dev1", "--name", "echo", "--payload", "1", "-o", "json", "--log-level", "debug")
		if r.code != 0 || !strings.Contains(r.stderr, "service request") {
			t.Fatalf("exit %d stderr %q; want a debug line for the request", r.code, r.stderr)
		}
		if status, _ := onlyResult(t, r.stdout); status != 200 {
			t.Errorf("status %d", status)
		}
		for _, secret := range []string{connstr.MustParse(e.cs).SharedAccessKey, "sig=", "SharedAccessSignature"} {
			if strings.Contains(r.stderr, secret) {
				t.Errorf("stderr %q contains a secret", r.stderr)
			}
		}
		<-e.got
	})

	t.Run("yaml output", func(t *testing.T) {
		r := e.iotctl(t, "", "method", "invoke", "-d", "dev1", "--name", "echo", "--payload", `{"a":1}`, "-o", "yaml")
		if r.code != 0 || !strings.Contains(r.stdout, "status: 200") || !strings.Contains(r.stdout, "payload:") {
			t.Errorf("exit %d stdout %q", r.code, r.stdout)
		}
		<-e.got
	})
}

func TestInvokeFailuresAgainstHub(t *testing.T) {
	t.Parallel() // no t.Setenv: see iotctlEnv
	e := startMethodEnv(t)
	parsed := connstr.MustParse(e.cs)
	wrongKey := connstr.ConnectionString{Kind: connstr.KindService, HostName: parsed.HostName, SharedAccessKeyName: "iothubowner",
		SharedAccessKey: "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ=="}
	devCS, err := e.hub.DeviceConnectionString("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
	}{
		{"device offline", []string{"-d", "dev2", "--name", "echo"}, nil, cmdutil.ExitOffline, []string{"404", "DeviceNotOnline"}},
		{"unknown device", []string{"-d", "ghost", "--name", "echo"}, nil, cmdutil.ExitNotFound, []string{"404", "DeviceNotFound"}},
		{"unknown module", []string{"-d", "dev1", "-m", "ghost", "--name", "echo"}, nil, cmdutil.ExitNotFound, []string{"404"}},
		{"wrong key", []string{"-d", "dev1", "--name", "echo", "--connection-string", wrongKey.Format()}, nil, cmdutil.ExitAuth, []string{"401"}},
		{"no connection string", []string{"-d", "dev1", "--name", "echo"}, map[string]string{"IOTCTL_CONNECTION_STRING": ""}, cmdutil.ExitUsage,
			[]string{"no service connection string", "--connection-string", "IOTCTL_CONNECTION_STRING"}},
		{"device string given as the service string", []string{"-d", "dev1", "--name", "echo", "--connection-string", devCS}, nil, cmdutil.ExitUsage,
			[]string{"this is a device connection string", "a service connection string is needed"}},
		{"device string in IOTCTL_CONNECTION_STRING", []string{"-d", "dev1", "--name", "echo"}, map[string]string{"IOTCTL_CONNECTION_STRING": devCS}, cmdutil.ExitUsage,
			[]string{"a service connection string is needed"}},
		{"malformed connection string", []string{"-d", "dev1", "--name", "echo", "--connection-string", "HostName=x"}, nil, cmdutil.ExitUsage, []string{"connstr"}},
		{"missing CA file", []string{"-d", "dev1", "--name", "echo", "--ca-file", "/nonexistent/ca.pem"}, nil, cmdutil.ExitUsage, []string{"/nonexistent/ca.pem"}},
		{"untrusted hub", []string{"-d", "dev1", "--name", "echo"}, map[string]string{"IOTCTL_CA_FILE": ""}, cmdutil.ExitFailure, []string{"certificate"}},
		{"bad output format", []string{"-d", "dev1", "--name", "echo", "-o", "xml"}, nil, cmdutil.ExitUsage, []string{"xml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.iotctlEnv(t, tt.env, append([]string{"method", "invoke"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("exit %d stderr %q; want %d", r.code, r.stderr, tt.code)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q; want nothing", r.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			for _, secret := range []string{parsed.SharedAccessKey, wrongKey.SharedAccessKey, connstr.MustParse(devCS).SharedAccessKey, "sig="} {
				if strings.Contains(r.stderr, secret) {
					t.Errorf("stderr %q contains a secret", r.stderr)
				}
			}
		})
	}
}

// A device that never answers: the call ends with exit 7 after the
// response timeout (the least IoT Hub takes, 5s), waited in parallel
// with other tests.
func TestInvokeDeviceNeverAnswers(t *testing.T) {
	t.Parallel() // no t.Setenv: see methodEnv.config
	e := startMethodEnv(t)
	start := time.Now()
	r := e.iotctl(t, "", "method", "invoke", "-d", "dev1", "--name", "silent", "--response-timeout", "5s", "-o", "json")
	if r.code != cmdutil.ExitTimeout || r.stdout != "" || !strings.Contains(r.stderr, "504") {
		t.Errorf("exit %d stdout %q stderr %q; want 7 and a 504", r.code, r.stdout, r.stderr)
	}
	// Not before the 5s it was given, and not the default 30s: a check of
	// which timeout the hub used, with room for a loaded machine.
	if d := time.Since(start); d < 5*time.Second || d >= 30*time.Second {
		t.Errorf("the call took %v; want the 5s response timeout, not the default 30s", d)
	}
}

// iotctlEnv is iotctl with extra environment set after the env's own,
// as its Factory's environment (cmd.ExecuteEnv), not the process's.
func (e *methodEnv) iotctlEnv(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	all := map[string]string{"IOTCTL_CONNECTION_STRING": e.cs, "IOTCTL_CA_FILE": e.hub.CAFile()}
	for k, v := range env {
		all[k] = v
	}
	var out, errOut bytes.Buffer
	code := cmd.ExecuteEnv(context.Background(), args, &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, all)
	return result{code, out.String(), errOut.String()}
}
