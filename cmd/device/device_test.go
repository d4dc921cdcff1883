package device

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/simulate"
)

const (
	deviceCS  = "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=c2VjcmV0"
	serviceCS = "HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
)

// execute runs sub (made with f) under a root like iotctl's and returns
// the exit code and captured streams.
func execute(t *testing.T, stdin string, sub func(*cmdutil.Factory) *cobra.Command, args ...string) (int, string, string) {
	t.Helper()
	return executeTTY(t, false, false, stdin, sub, args...)
}

// executeTTY is execute with stdout and stderr taken for terminals or
// not.
func executeTTY(t *testing.T, outTTY, errTTY bool, stdin string, sub func(*cmdutil.Factory) *cobra.Command, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut, OutTTY: outTTY, ErrTTY: errTTY})
	root := &cobra.Command{Use: "iotctl", SilenceErrors: true, SilenceUsage: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return f.Load(cmd) }}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	root.PersistentFlags().StringP(cmdutil.KeyOutput, "o", "table", "")
	root.PersistentFlags().String(cmdutil.KeyConfig, "", "")
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.AddCommand(sub(f))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("iotctl: " + err.Error() + "\n")
	}
	return cmdutil.ExitCode(err), out.String(), errOut.String()
}

func TestSimulateFlags(t *testing.T) {
	var got *simulateOptions
	capture := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSimulate(f, func(o *simulateOptions) error { got = o; return nil })
	}
	code, _, stderr := execute(t, "", capture, "simulate", "--connection-string", deviceCS, "--interval", "250ms",
		"--count", "5", "--property", "site=lab", "--property", "x=a=b", "--qos", "0",
		"--method", `reboot=200:{"ok":true}`, "--reported", `{"fw":"1.0"}`, "--data", `{"n":{{counter}}}`,
		"--content-encoding", "", "--ca-file", "/tmp/ca.pem")
	if code != 0 {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	s := got.sim
	if s.Interval != 250*time.Millisecond || s.Count != 5 || s.Properties["site"] != "lab" || s.Properties["x"] != "a=b" ||
		s.Device.QoS != device.QoS0 || len(s.Methods) != 1 || s.Methods[0].Status != 200 || string(s.Reported) != `{"fw":"1.0"}` ||
		s.Template == nil || s.ContentEncoding != "-" || s.ContentType != "application/json" || s.Device.CAFile != "/tmp/ca.pem" ||
		s.Device.ConnectionString != deviceCS || len(s.DeviceIDs) != 0 {
		t.Errorf("options %+v", s)
	}
	if s.Device.Transport != device.TransportMQTT || s.Device.C2DSettle != device.SettleComplete {
		t.Errorf("default transport %v, settle %v; want mqtt, complete", s.Device.Transport, s.Device.C2DSettle)
	}

	t.Run("transport and C2D settlement", func(t *testing.T) {
		code, _, stderr := execute(t, "", capture, "simulate", "--connection-string", deviceCS, "--transport", "amqp", "--c2d-settle", "abandon", "--websocket")
		if d := got.sim.Device; code != 0 || d.Transport != device.TransportAMQP || d.C2DSettle != device.SettleAbandon || !d.WebSocket {
			t.Fatalf("code %d stderr %q transport %v settle %v websocket %v; want amqp, abandon, websocket", code, stderr, d.Transport, d.C2DSettle, d.WebSocket)
		}
		t.Setenv("IOTCTL_TRANSPORT", "https")
		t.Setenv("IOTCTL_C2D_SETTLE", "reject")
		code, _, stderr = execute(t, "", capture, "simulate", "--connection-string", deviceCS)
		if d := got.sim.Device; code != 0 || d.Transport != device.TransportHTTPS || d.C2DSettle != device.SettleReject {
			t.Fatalf("from the environment: code %d stderr %q transport %v settle %v; want https, reject", code, stderr, d.Transport, d.C2DSettle)
		}
	})

	t.Run("connection string and CA from the environment", func(t *testing.T) {
		t.Setenv("IOTCTL_DEVICE_CONNECTION_STRING", deviceCS)
		t.Setenv("IOTCTL_CA_FILE", "/env/ca.pem")
		code, _, stderr := execute(t, "", capture, "simulate")
		if code != 0 || got.sim.Device.ConnectionString != deviceCS || got.sim.Device.CAFile != "/env/ca.pem" || got.sim.Template != nil {
			t.Fatalf("code %d stderr %q options %+v", code, stderr, got.sim)
		}
	})

	t.Run("fleet from a keys file", func(t *testing.T) {
		keys := filepath.Join(t.TempDir(), "keys.txt")
		os.WriteFile(keys, []byte("b c2VjcmV0\na c2VjcmV0\n"), 0o600)
		code, _, stderr := execute(t, "", capture, "simulate", "--connection-string", deviceCS, "--keys-file", keys, "--rate", "50", "--connect-rate", "10")
		if code != 0 || strings.Join(got.sim.DeviceIDs, ",") != "a,b" || got.sim.Device.HostName != "myhub.azure-devices.net" ||
			got.sim.Rate != 50 || got.sim.ConnectRate != 10 {
			t.Fatalf("code %d stderr %q options %+v", code, stderr, got.sim)
		}
		code, _, stderr = execute(t, "", capture, "simulate", "--hub-connection-string", serviceCS, "--keys-file", keys, "--devices", "3", "--device-prefix", "d-")
		if code != 0 || strings.Join(got.sim.DeviceIDs, ",") != "d-00001,d-00002,d-00003" || got.sim.Device.HostName != "localhost:8443" {
			t.Fatalf("code %d stderr %q options %+v", code, stderr, got.sim)
		}
		// Without --connect-rate: Azure's connection throttle against
		// Azure, no limit against another hub.
		if got.sim.ConnectRate != 0 {
			t.Errorf("default connect rate against localhost:8443 = %v; want 0 (no limit)", got.sim.ConnectRate)
		}
		code, _, stderr = execute(t, "", capture, "simulate", "--connection-string", deviceCS, "--keys-file", keys)
		if code != 0 || got.sim.ConnectRate != simulate.AzureConnectRate {
			t.Errorf("code %d stderr %q: default connect rate against %s = %v; want %v", code, stderr,
				got.sim.Device.HostName, got.sim.ConnectRate, simulate.AzureConnectRate)
		}
	})

	t.Run("fleet from the registry", func(t *testing.T) {
		code, _, stderr := execute(t, "", capture, "simulate", "--hub-connection-string", serviceCS, "--devices", "2")
		if code != 0 || len(got.sim.DeviceIDs) != 2 || got.sim.Keys == nil {
			t.Fatalf("code %d stderr %q options %+v", code, stderr, got.sim)
		}
	})

	t.Run("AMQP fleet sharing connections", func(t *testing.T) {
		code, _, stderr := execute(t, "", capture, "simulate", "--hub-connection-string", serviceCS, "--devices", "20",
			"--transport", "amqp", "--devices-per-connection", "5", "--telemetry-only")
		if code != 0 || got.sim.DevicesPerConnection != 5 || got.sim.Device.Transport != device.TransportAMQP || !got.sim.TelemetryOnly {
			t.Fatalf("code %d stderr %q: %d devices per connection over %s; want 5 over amqp", code, stderr,
				got.sim.DevicesPerConnection, got.sim.Device.Transport)
		}
	})

	t.Run("template from stdin", func(t *testing.T) {
		code, _, stderr := execute(t, `{"id":"{{deviceId}}"}`, capture, "simulate", "--connection-string", deviceCS, "--data-file", "-")
		if code != 0 || got.sim.Template == nil {
			t.Fatalf("code %d stderr %q", code, stderr)
		}
	})
}

func TestSimulateUsageErrorsExit3(t *testing.T) {
	t.Parallel()
	keys := filepath.Join(t.TempDir(), "keys.txt")
	os.WriteFile(keys, []byte("a not*base64\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no connection string", nil, "no device connection string"},
		{"bad connection string", []string{"--connection-string", "HostName=h.net;DeviceId=d"}, "connstr"},
		{"service string", []string{"--connection-string", serviceCS}, "device or module"},
		{"bad template", []string{"--data", "{{counter"}, "template"},
		{"template run error", []string{"--data", "{{randInt 9 1}}"}, "randInt"},
		{"bad method spec", []string{"--method", "reboot"}, "--method"},
		{"bad method status", []string{"--method", "reboot=abc"}, "status"},
		{"bad method json", []string{"--method", "reboot=200:{x"}, "JSON"},
		{"bad property", []string{"--property", "novalue"}, "--property"},
		{"bad qos", []string{"--qos", "2"}, "--qos"},
		{"bad reported", []string{"--reported", "[1]"}, "--reported"},
		{"zero interval", []string{"--interval", "0s"}, "--interval"},
		{"bad interval", []string{"--interval", "soon"}, "interval"},
		{"data and file", []string{"--data", "x", "--data-file", "f"}, "not both"},
		{"missing data file", []string{"--data-file", "/nonexistent/t.json"}, "--data-file"},
		{"unknown flag", []string{"--bogus"}, "bogus"},
		{"devices without keys", []string{"--devices", "3"}, "keys"},
		{"fleet without host", []string{"--devices", "3"}, "host name"},
		{"fleet zero devices", []string{"--devices", "0"}, "--devices"},
		{"bad keys file", []string{"--keys-file", keys}, "base64"},
		{"missing keys file", []string{"--keys-file", "/nonexistent/keys"}, "--keys-file"},
		{"hub string of the wrong kind", []string{"--devices", "2", "--hub-connection-string", deviceCS}, "service"},
		{"bad transport", []string{"--transport", "http"}, "--transport"},
		{"bad settle", []string{"--transport", "amqp", "--c2d-settle", "drop"}, "--c2d-settle"},
		{"reject over mqtt", []string{"--c2d-settle", "reject"}, "over MQTT"},
		{"abandon over mqtt", []string{"--transport", "mqtt", "--c2d-settle", "abandon"}, "over MQTT"},
		{"methods over https", []string{"--transport", "https", "--method", "reboot=200"}, "HTTPS"},
		{"twin over https", []string{"--transport", "https", "--reported", "{}"}, "HTTPS"},
		{"websocket over https", []string{"--transport", "https", "--websocket"}, "--websocket"},
		{"telemetry only with a method", []string{"--telemetry-only", "--method", "reboot=200"}, "--telemetry-only"},
		{"telemetry only with reported", []string{"--telemetry-only", "--reported", "{}"}, "--telemetry-only"},
		{"shared mqtt connections", []string{"--devices-per-connection", "10"}, "needs --transport amqp"},
		{"shared https connections", []string{"--transport", "https", "--devices-per-connection", "2"}, "needs --transport amqp"},
		{"shared connection of one device", []string{"--transport", "amqp", "--devices-per-connection", "2"}, "is for a fleet"},
		{"too many devices per connection", []string{"--transport", "amqp", "--devices-per-connection", "996"}, "use 1 to 995"},
		{"negative devices per connection", []string{"--transport", "amqp", "--devices-per-connection", "-1"}, "use 1 to 995"},
		{"fleet of certificates sharing", []string{"--transport", "amqp", "--devices", "4", "--device-ca", "ca.pem", "--devices-per-connection", "2",
			"--hub-connection-string", serviceCS}, "cannot share"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"simulate"}, tt.args...)
			if tt.name != "no connection string" && tt.name != "bad connection string" && tt.name != "service string" && !strings.HasPrefix(tt.name, "fleet") && tt.name != "hub string of the wrong kind" {
				args = append(args, "--connection-string", deviceCS)
			}
			code, stdout, stderr := execute(t, "", func(f *cmdutil.Factory) *cobra.Command {
				return newCmdSimulate(f, func(*simulateOptions) error { t.Error("ran despite a usage error"); return nil })
			}, args...)
			if code != cmdutil.ExitUsage || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("iotctl %q: code %d stdout %q stderr %q; want 3 and %q", args, code, stdout, stderr, tt.want)
			}
			if strings.Contains(stderr, "c2VjcmV0") || strings.Contains(stderr, "not*base64") {
				t.Errorf("stderr %q contains a key", stderr)
			}
		})
	}
}

func TestSendFlagsAndUsageErrors(t *testing.T) {
	t.Parallel()
	var got *sendOptions
	capture := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSend(f, func(o *sendOptions) error { got = o; return nil })
	}
	code, _, stderr := execute(t, "", capture, "send", "--connection-string", deviceCS, "--data", "hello", "--property", "a=1", "--count", "3", "--content-type", "text/plain")
	if code != 0 || string(got.body) != "hello" || got.props["a"] != "1" || got.count != 3 || got.contentType != "text/plain" || got.dev.ConnectionString != deviceCS {
		t.Fatalf("code %d stderr %q options %+v", code, stderr, got)
	}
	code, _, _ = execute(t, "from stdin", capture, "send", "--connection-string", deviceCS, "--data-file", "-")
	if code != 0 || string(got.body) != "from stdin" {
		t.Fatalf("stdin: code %d body %q", code, got.body)
	}
	code, _, stderr = execute(t, "", capture, "send", "--connection-string", deviceCS, "--data", "x", "--transport", "https")
	if code != 0 || got.dev.Transport != device.TransportHTTPS {
		t.Fatalf("--transport https: code %d stderr %q transport %v", code, stderr, got.dev.Transport)
	}
	for _, args := range [][]string{
		{"--connection-string", deviceCS, "--data", "x", "--transport", "http"},
		{"--connection-string", deviceCS, "--data", "x", "--transport", "https", "--websocket"},
		{"--connection-string", deviceCS},
		{"--connection-string", deviceCS, "--data", "x", "--count", "0"},
		{"--connection-string", deviceCS, "--data", "x", "--qos", "2"},
		{"--connection-string", deviceCS, "--data", "x", "--property", "=v"},
		{"--connection-string", "garbage", "--data", "x"},
		{"--data", "x"},
	} {
		code, _, stderr := execute(t, "", capture, append([]string{"send"}, args...)...)
		if code != cmdutil.ExitUsage {
			t.Errorf("send %q: code %d stderr %q; want 3", args, code, stderr)
		}
	}
}

func TestExitErrorMapping(t *testing.T) {
	t.Parallel()
	if code := cmdutil.ExitCode(exitError(&device.ConnectError{Code: 5, Host: "h:8883"})); code != cmdutil.ExitAuth {
		t.Errorf("refused CONNECT exits %d; want 4", code)
	}
	if code := cmdutil.ExitCode(exitError(&device.ConnectError{Code: 3, Host: "h:8883"})); code != cmdutil.ExitFailure {
		t.Errorf("server unavailable exits %d; want 1", code)
	}
	if code := cmdutil.ExitCode(exitError(&simulate.TemplateError{Err: errors.New("x")})); code != cmdutil.ExitUsage {
		t.Errorf("template error exits %d; want 3", code)
	}
	if code := cmdutil.ExitCode(exitError(simulate.ErrNoKey)); code != cmdutil.ExitUsage {
		t.Errorf("missing key exits %d; want 3", code)
	}
}

func TestPrinter(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	io := &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}
	at := time.Date(2026, 3, 1, 9, 30, 5, 123e6, time.UTC)
	p := newPrinter(io, chooseDisplay(output.FormatTable, io, false, false, false), false)
	p.loc = time.UTC
	p.print(simulate.Event{Type: simulate.EventConnected, Time: at, DeviceID: "dev1"})
	p.print(simulate.Event{Type: simulate.EventSent, Time: at, DeviceID: "dev1", Body: json.RawMessage(`{"temperature": 21.5}`), Properties: map[string]string{"temperatureAlert": "false"}})
	p.print(simulate.Event{Type: simulate.EventMethod, Time: at.Add(time.Second), Method: "SetTelemetryInterval", Payload: json.RawMessage(`"10"`), Status: 200, Response: json.RawMessage(`{"Response": "ok"}`), IntervalSeconds: 10})
	p.print(simulate.Event{Type: simulate.EventSummary, Time: at, Stats: &simulate.Stats{Devices: 1, Sent: 1, Acked: 1}})
	want := "09:30:05.123 Sending message: {\"temperature\": 21.5} [temperatureAlert=false]\n" +
		"09:30:06.123 Method SetTelemetryInterval called with payload \"10\": status 200 {\"Response\": \"ok\"}; telemetry interval now 10s\n" +
		"Summary: 1 message(s) sent, 1 acknowledged, 0 error(s), 0 method call(s), 0 twin change(s), 0 C2D message(s), 0 reconnect(s); 1 device(s), 0.0s, 0.0 msg/s\n"
	if out.String() != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), want)
	}
	if errOut.String() != "09:30:05.123 Device dev1 connected\n" {
		t.Errorf("stderr %q", errOut.String())
	}

	out.Reset()
	p = newPrinter(io, chooseDisplay(output.FormatJSON, io, true, false, false), true)
	p.print(simulate.Event{Type: simulate.EventSent, DeviceID: "sim-00001", Seq: 1, Body: json.RawMessage(`{"a":1}`)})
	p.print(simulate.Event{Type: simulate.EventStats, Stats: &simulate.Stats{Devices: 2}})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("json lines %q", lines)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e["type"] != "sent" || e["deviceId"] != "sim-00001" || e["body"].(map[string]any)["a"] != 1.0 {
		t.Errorf("sent line %s: %v", lines[0], err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &e); err != nil || e["type"] != "stats" || e["stats"].(map[string]any)["devices"] != 2.0 {
		t.Errorf("stats line %s: %v", lines[1], err)
	}
}

// --sas-ttl sets the lifetime of the device's tokens in `device send`,
// `device simulate` and its fleets, 1h by default and at least 10s.
func TestSASTTLFlag(t *testing.T) {
	var sent *sendOptions
	var simulated *simulateOptions
	send := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSend(f, func(o *sendOptions) error { sent = o; return nil })
	}
	sim := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSimulate(f, func(o *simulateOptions) error { simulated = o; return nil })
	}
	keys := filepath.Join(t.TempDir(), "keys.txt")
	os.WriteFile(keys, []byte("a c2VjcmV0\n"), 0o600)
	for _, tt := range []struct {
		args []string
		want time.Duration
	}{
		{nil, time.Hour},
		{[]string{"--sas-ttl", "20s"}, 20 * time.Second},
		{[]string{"--sas-ttl", "10s"}, 10 * time.Second},
		{[]string{"--sas-ttl", "24h"}, 24 * time.Hour},
	} {
		code, _, stderr := execute(t, "", send, append([]string{"send", "--connection-string", deviceCS, "--data", "x"}, tt.args...)...)
		if code != 0 || sent.dev.TokenTTL != tt.want {
			t.Errorf("send %q: code %d stderr %q TokenTTL %v; want %v", tt.args, code, stderr, sent.dev.TokenTTL, tt.want)
		}
		code, _, stderr = execute(t, "", sim, append([]string{"simulate", "--connection-string", deviceCS}, tt.args...)...)
		if code != 0 || simulated.sim.Device.TokenTTL != tt.want {
			t.Errorf("simulate %q: code %d stderr %q TokenTTL %v; want %v", tt.args, code, stderr, simulated.sim.Device.TokenTTL, tt.want)
		}
		code, _, stderr = execute(t, "", sim, append([]string{"simulate", "--connection-string", deviceCS, "--keys-file", keys}, tt.args...)...)
		if code != 0 || simulated.sim.Device.TokenTTL != tt.want {
			t.Errorf("fleet %q: code %d stderr %q TokenTTL %v; want %v", tt.args, code, stderr, simulated.sim.Device.TokenTTL, tt.want)
		}
	}
	t.Setenv("IOTCTL_SAS_TTL", "30s")
	if code, _, stderr := execute(t, "", send, "send", "--connection-string", deviceCS, "--data", "x"); code != 0 || sent.dev.TokenTTL != 30*time.Second {
		t.Errorf("IOTCTL_SAS_TTL=30s: code %d stderr %q TokenTTL %v; want 30s", code, stderr, sent.dev.TokenTTL)
	}
	for _, bad := range []string{"9s", "0s", "-1m"} {
		for _, args := range [][]string{
			{"send", "--connection-string", deviceCS, "--data", "x", "--sas-ttl", bad},
			{"simulate", "--connection-string", deviceCS, "--sas-ttl", bad},
		} {
			cmd := send
			if args[0] == "simulate" {
				cmd = sim
			}
			code, _, stderr := execute(t, "", cmd, args...)
			if code != cmdutil.ExitUsage || !strings.Contains(stderr, "--sas-ttl "+bad) || !strings.Contains(stderr, "at least 10s") {
				t.Errorf("%q: code %d stderr %q; want 3 and a message naming --sas-ttl and its minimum", args, code, stderr)
			}
		}
	}
}

// Connection events are printed from their typed reason: a planned
// token renewal in its own words, a lost connection with the reason and
// the error; in JSON the reason stays the same words.
func TestPrinterConnectionReasons(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	io := &cmdutil.IOStreams{Out: &out, ErrOut: &errOut}
	at := time.Date(2026, 3, 1, 9, 30, 5, 0, time.UTC)
	p := newPrinter(io, chooseDisplay(output.FormatTable, io, false, false, false), false)
	p.loc = time.UTC
	p.print(simulate.Event{Type: simulate.EventReconnecting, Time: at, Reason: device.ReasonTokenRenewal})
	p.print(simulate.Event{Type: simulate.EventDisconnected, Time: at, Reason: device.ReasonConnectionLost, Error: "EOF"})
	p.print(simulate.Event{Type: simulate.EventReconnecting, Time: at, Reason: device.ReasonConnectionLost, Attempt: 2, DelaySeconds: 1.5})
	want := "09:30:05.000 Reconnecting to renew the SAS token\n" +
		"09:30:05.000 Disconnected (connection lost: EOF)\n" +
		"09:30:05.000 Reconnecting in 1.5s (attempt 2)\n"
	if got := out.String() + errOut.String(); got != want {
		t.Errorf("printed:\n%s\nwant:\n%s", got, want)
	}

	out.Reset()
	p = newPrinter(io, chooseDisplay(output.FormatJSON, io, false, false, false), false)
	p.print(simulate.Event{Type: simulate.EventReconnecting, Reason: device.ReasonTokenRenewal})
	p.print(simulate.Event{Type: simulate.EventConnected})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"reason":"token renewal"`) || strings.Contains(lines[1], `"reason"`) {
		t.Errorf("json lines %q; want the renewal's reason in words and none on connected", lines)
	}
}

// failReader fails the test if anything reads it.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("check read standard input; it must read nothing")
	return 0, errors.New("read")
}

// simulateOptions.check refuses wrong flags alone: it opens no file,
// reads no standard input and looks at no configuration, so those
// refusals need nothing but the flags.
func TestSimulateCheckReadsNothing(t *testing.T) {
	t.Parallel()
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: failReader{t}, Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		o    simulateOptions
		want string
	}{
		{simulateOptions{interval: time.Second, statsInterval: time.Second, qos: "1", dataFile: "-", methods: []string{"reboot"}}, "--method"},
		{simulateOptions{interval: time.Second, statsInterval: time.Second, qos: "1", devices: 2, devicesSet: true, deviceCA: missing, keysFile: missing}, "not both"},
		{simulateOptions{interval: time.Second, statsInterval: time.Second, qos: "1", keysFile: missing, conn: connectFlags{deviceID: "d1"}}, "has its own identities"},
		{simulateOptions{interval: time.Second, statsInterval: time.Second, qos: "2", dataFile: "-"}, "--qos"},
	} {
		tc.o.f = f
		err := tc.o.check()
		if err == nil || !strings.Contains(err.Error(), tc.want) || cmdutil.ExitCode(exitError(err)) != cmdutil.ExitUsage {
			t.Errorf("check() = %v; want a usage error with %q", err, tc.want)
		}
	}
	ok := simulateOptions{f: f, interval: time.Second, statsInterval: time.Second, qos: "0", dataFile: "-", keysFile: missing, reported: `{"a":1}`}
	if err := ok.check(); err != nil {
		t.Errorf("check() of good flags = %v; want nil (files are resolve's to read)", err)
	}
}
