package cmd_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/cmd/method"
	"github.com/iotctl/iotctl/internal/clitest"
)

const (
	serviceCS = "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
	deviceCS  = "HostName=myhub.azure-devices.net;DeviceId=fromDeviceString;SharedAccessKey=c2VjcmV0"
)

// parse runs `invoke args` under a root like iotctl's with a capturing
// runF, and returns the options runF got (nil when it was not called),
// the exit code and stderr.
func parse(t *testing.T, stdin string, args ...string) (*method.InvokeOptions, int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	var got *method.InvokeOptions
	ran := false
	root := &cobra.Command{Use: "iotctl", SilenceErrors: true, SilenceUsage: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { ran = true; return f.Load(cmd) }}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	root.PersistentFlags().StringP(cmdutil.KeyOutput, "o", "table", "")
	root.PersistentFlags().String(cmdutil.KeyConfig, "", "")
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.AddCommand(method.NewCmdInvoke(f, func(o *method.InvokeOptions) error { got = o; return nil }))
	root.SetArgs(append([]string{"invoke"}, args...))
	err := root.ExecuteContext(context.Background())
	var ue *cmdutil.UsageError
	if err != nil && !ran && !errors.As(err, &ue) {
		// As cmd.Execute does: cobra failed before any command ran.
		err = &cmdutil.UsageError{Err: err}
	}
	if err != nil {
		errOut.WriteString("iotctl: " + err.Error() + "\n")
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q; want nothing from flag parsing", out.String())
	}
	return got, cmdutil.ExitCode(err), errOut.String()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInvokeDeviceIDPrecedence(t *testing.T) {
	cfgAll := "device-id: fromConfig\ndevice-connection-string: " + deviceCS + "\n"
	cfgCS := "device-connection-string: " + deviceCS + "\n"
	tests := []struct {
		name   string
		env    map[string]string
		config string
		args   []string
		want   string
	}{
		{"flag wins over everything", map[string]string{"IOTCTL_DEVICE_ID": "fromEnv", "IOTCTL_DEVICE_CONNECTION_STRING": deviceCS}, cfgAll, []string{"--device-id", "fromFlag"}, "fromFlag"},
		{"short flag", nil, cfgAll, []string{"-d", "fromFlag"}, "fromFlag"},
		{"IOTCTL_DEVICE_ID over the config file", map[string]string{"IOTCTL_DEVICE_ID": "fromEnv"}, cfgAll, nil, "fromEnv"},
		{"config device-id over the device string", map[string]string{"IOTCTL_DEVICE_CONNECTION_STRING": deviceCS}, cfgAll, nil, "fromConfig"},
		{"DeviceId of IOTCTL_DEVICE_CONNECTION_STRING", map[string]string{"IOTCTL_DEVICE_CONNECTION_STRING": deviceCS}, "", nil, "fromDeviceString"},
		{"DeviceId of the config's device string", nil, cfgCS, nil, "fromDeviceString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clitest.Isolate(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append([]string{"--name", "m"}, tt.args...)
			if tt.config != "" {
				args = append(args, "--config", writeConfig(t, tt.config))
			}
			o, code, stderr := parse(t, "", args...)
			if code != 0 || o == nil {
				t.Fatalf("code %d stderr %q", code, stderr)
			}
			if o.DeviceID != tt.want {
				t.Errorf("device id %q; want %q", o.DeviceID, tt.want)
			}
		})
	}
	t.Run("none at all", func(t *testing.T) {
		clitest.Isolate(t)
		o, code, stderr := parse(t, "", "--name", "m")
		if o != nil || code != cmdutil.ExitUsage || !strings.Contains(stderr, "--device-id") || !strings.Contains(stderr, "IOTCTL_DEVICE_ID") {
			t.Errorf("code %d stderr %q; want 3 naming --device-id and IOTCTL_DEVICE_ID", code, stderr)
		}
	})
}

func TestInvokePayloadForms(t *testing.T) {
	file := filepath.Join(t.TempDir(), "payload.json")
	os.WriteFile(file, []byte("{\n  \"interval\": 5\n}\n"), 0o600)
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"number", "", []string{"--payload", "10"}, `10`},
		{"JSON string", "", []string{"--payload", `"10"`}, `"10"`},
		{"object", "", []string{"--payload", `{"a":1}`}, `{"a":1}`},
		{"array", "", []string{"--payload", `[1,"x",null]`}, `[1,"x",null]`},
		{"null", "", []string{"--payload", `null`}, `null`},
		{"spaces around", "", []string{"--payload", "  true \n"}, `true`},
		{"alias --method-payload", "", []string{"--method-payload", `{"a":1}`}, `{"a":1}`},
		{"--payload-string", "", []string{"--payload-string", "hello world"}, `"hello world"`},
		{"--payload-string with quotes", "", []string{"--payload-string", `say "hi"`}, `"say \"hi\""`},
		{"--payload-string empty", "", []string{"--payload-string", ""}, `""`},
		{"--payload-file", "", []string{"--payload-file", file}, "{\n  \"interval\": 5\n}"},
		{"--payload-file - reads stdin", "[1,2]\n", []string{"--payload-file", "-"}, `[1,2]`},
		{"no payload is null", "", nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clitest.Isolate(t)
			o, code, stderr := parse(t, tt.stdin, append([]string{"-d", "dev1", "--name", "m"}, tt.args...)...)
			if code != 0 || o == nil {
				t.Fatalf("code %d stderr %q", code, stderr)
			}
			if string(o.PayloadJSON) != tt.want {
				t.Errorf("payload %s; want %s", o.PayloadJSON, tt.want)
			}
		})
	}
}

func TestInvokeFlags(t *testing.T) {
	clitest.Isolate(t)
	t.Setenv("IOTCTL_CA_FILE", "/env/ca.pem")
	o, code, stderr := parse(t, "", "-d", "dev1", "-m", "mod1", "--method-name", "reboot", "--timeout", "1m", "--connect-timeout", "20s")
	if code != 0 || o == nil {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	if o.Name != "reboot" || o.ModuleID != "mod1" || o.ResponseTimeout != time.Minute || o.ConnectTimeout != 20*time.Second || o.CAFile != "/env/ca.pem" {
		t.Errorf("options %+v", o)
	}
	o, code, stderr = parse(t, "", "-d", "dev1", "--name", "reboot", "--ca-file", "/flag/ca.pem")
	if code != 0 || o == nil {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	if o.ResponseTimeout != 30*time.Second || o.ConnectTimeout != 0 || o.CAFile != "/flag/ca.pem" {
		t.Errorf("defaults: response %v connect %v ca %q; want 30s, 0 and the flag's CA", o.ResponseTimeout, o.ConnectTimeout, o.CAFile)
	}
	for _, edge := range [][]string{{"--response-timeout", "5s"}, {"--response-timeout", "300s"}, {"--connect-timeout", "300s"}, {"--connect-timeout", "0s"}} {
		if _, code, stderr := parse(t, "", append([]string{"-d", "d", "--name", "m"}, edge...)...); code != 0 {
			t.Errorf("%v: code %d stderr %q; want 0 (in range)", edge, code, stderr)
		}
	}
}

func TestInvokeUsageErrorsExit3(t *testing.T) {
	big := `"` + strings.Repeat("x", 128*1024) + `"`
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string
	}{
		{"text as --payload", "", []string{"--payload", "hello"}, []string{"--payload is not valid JSON", "use --payload-string"}},
		{"unquoted keys", "", []string{"--payload", "{a:1}"}, []string{"not valid JSON", "--payload-string"}},
		{"empty --payload", "", []string{"--payload", ""}, []string{"not valid JSON", "--payload-string"}},
		{"text in --payload-file", "", []string{"--payload-file", "-"}, []string{"--payload-file - is not valid JSON", "--payload-string"}},
		{"--payload and --payload-string", "", []string{"--payload", "1", "--payload-string", "x"}, []string{"only one of"}},
		{"--payload and --payload-file", "", []string{"--payload", "1", "--payload-file", "-"}, []string{"only one of"}},
		{"--payload-file and --payload-string", "", []string{"--payload-file", "-", "--payload-string", ""}, []string{"only one of"}},
		{"alias and --payload-string", "", []string{"--method-payload", "1", "--payload-string", "x"}, []string{"only one of"}},
		{"missing payload file", "", []string{"--payload-file", "/nonexistent/p.json"}, []string{"--payload-file"}},
		{"payload over 128 KB", "", []string{"--payload", big}, []string{"131072"}},
		{"--payload-string over 128 KB", "", []string{"--payload-string", strings.Repeat("x", 128*1024)}, []string{"131072"}},
		{"response timeout too short", "", []string{"--response-timeout", "4s"}, []string{"--response-timeout", "5s to 300s"}},
		{"response timeout too long", "", []string{"--response-timeout", "301s"}, []string{"--response-timeout"}},
		{"response timeout alias too long", "", []string{"--timeout", "10m"}, []string{"--response-timeout"}},
		{"connect timeout negative", "", []string{"--connect-timeout", "-1s"}, []string{"--connect-timeout"}},
		{"connect timeout too long", "", []string{"--connect-timeout", "5m1s"}, []string{"--connect-timeout"}},
		{"bad duration", "", []string{"--response-timeout", "soon"}, []string{"response-timeout"}},
		{"no method name", "", []string{"--name", ""}, []string{"--name"}},
		{"positional argument", "", []string{"extra"}, []string{"extra"}},
		{"unknown flag", "", []string{"--bogus"}, []string{"bogus"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clitest.Isolate(t)
			args := append([]string{"-d", "dev1", "--name", "m"}, tt.args...)
			o, code, stderr := parse(t, "hello\n", args...)
			if o != nil || code != cmdutil.ExitUsage {
				t.Fatalf("code %d (ran: %v) stderr %q; want 3 without running", code, o != nil, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
		})
	}
}
