package hub

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/clitest"
	"github.com/iotctl/iotctl/pkg/connstr"
)

// runFlags is clitest.RunF with the Factory as NewFactory makes it.
func runFlags[T any](t *testing.T, newCmd func(*cmdutil.Factory, func(*T) error) *cobra.Command, args ...string) (*T, error) {
	t.Helper()
	return clitest.RunF(t, nil, newCmd, args...)
}

// usageCase is a clitest.UsageCase written short.
type usageCase struct {
	args []string
	want string
}

// checkUsage is clitest.CheckUsage with the Factory as NewFactory makes
// it.
func checkUsage[T any](t *testing.T, newCmd func(*cmdutil.Factory, func(*T) error) *cobra.Command, cases []usageCase) {
	t.Helper()
	cs := make([]clitest.UsageCase, len(cases))
	for i, c := range cases {
		cs[i] = clitest.UsageCase{Args: c.args, Want: c.want}
	}
	clitest.CheckUsage(t, nil, newCmd, cs)
}

func TestTwinFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	show, err := runFlags(t, newCmdTwinShow, "-d", "dev1", "-m", "mod1")
	if err != nil || show == nil || show.DeviceID != "dev1" || show.ModuleID != "mod1" {
		t.Errorf("twin show -d dev1 -m mod1 = %+v, %v", show, err)
	}
	upd, err := runFlags(t, newCmdTwinUpdate, "dev1", "--desired", `{"a":1}`, "--tags", `{"t":null}`, "--etag", "AAA=")
	if err != nil || upd == nil || upd.DeviceID != "dev1" || upd.Desired != `{"a":1}` || upd.Tags != `{"t":null}` || upd.Etag != "AAA=" {
		t.Errorf("twin update = %+v, %v", upd, err)
	}
	checkUsage(t, newCmdTwinShow, []usageCase{
		{nil, "no device id"},
		{[]string{"dev1", "-d", "dev2"}, "twice"},
	})
	checkUsage(t, newCmdTwinUpdate, []usageCase{
		{[]string{"dev1"}, "nothing to update"},
		{[]string{"dev1", "--desired", `[1]`}, "--desired must be a JSON object"},
		{[]string{"dev1", "--desired", `null`}, "--desired must be a JSON object"},
		{[]string{"dev1", "--tags", `{bad`}, "--tags must be a JSON object"},
		{[]string{"--tags", `{"a":1}`}, "no device id"},
	})
}

func TestDeviceCreateFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	thumb := strings.Repeat("a", 40)
	got, err := runFlags(t, newCmdDeviceCreate, "cam1", "--auth", "x509-thumbprint", "--primary-thumbprint", thumb, "--status", "disabled", "--edge")
	if err != nil || got == nil || got.DeviceID != "cam1" || got.Auth != "x509-thumbprint" || got.PrimaryThumbprint != thumb || got.Status != "disabled" || !got.Edge {
		t.Errorf("create cam1 --auth x509-thumbprint ... = %+v, %v", got, err)
	}
	// --generate-cert implies --auth x509-thumbprint.
	if got, err := runFlags(t, newCmdDeviceCreate, "cam2", "--generate-cert", t.TempDir()); err != nil || got == nil || got.Auth != "x509-thumbprint" {
		t.Errorf("create cam2 --generate-cert DIR = %+v, %v; want --auth x509-thumbprint", got, err)
	}
	key := "cHJpbWFyeS1rZXktcHJpbWFyeS1rZXktMTIzNDU2Nzg="
	checkUsage(t, newCmdDeviceCreate, []usageCase{
		{[]string{"cam2", "--auth", "x509-thumbprint"}, "--primary-thumbprint"},
		{[]string{"x", "--auth", "password"}, "--auth"},
		{[]string{"x", "--status", "maybe"}, "--status"},
		{[]string{"x", "--device-id", "y"}, "twice"},
		{nil, "no device id"},
		{[]string{"x", "--primary-key", "not base64!"}, "base64"},
		{[]string{"x", "--secondary-key", "c2hvcnQ="}, "--secondary-key is not a key"},
		{[]string{"x", "--auth", "x509-thumbprint", "--primary-thumbprint", "xyz"}, "SHA-1"},
		{[]string{"x", "--auth", "x509-thumbprint", "--primary-thumbprint", thumb, "--secondary-thumbprint", strings.Repeat("a", 41)}, "--secondary-thumbprint"},
		{[]string{"x", "--primary-thumbprint", thumb}, "need --auth x509-thumbprint"},
		{[]string{"x", "--auth", "x509-thumbprint", "--primary-thumbprint", thumb, "--primary-key", key}, "need --auth sas"},
		{[]string{"x", "--auth", "x509-ca", "--primary-thumbprint", thumb}, "no thumbprints"},
	})
}

func TestDeviceShowListDeleteFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	show, err := runFlags(t, newCmdDeviceShow, "-d", "dev1", "-m", "mod1", "--show-connection-string")
	if err != nil || show == nil || show.DeviceID != "dev1" || show.ModuleID != "mod1" || !show.ShowConnectionString || show.ShowSecrets {
		t.Errorf("show = %+v, %v", show, err)
	}
	list, err := runFlags(t, newCmdDeviceList, "--top", "5000", "--modules-of", "dev1")
	if err != nil || list == nil || list.Top != 5000 || list.ModulesOf != "dev1" {
		t.Errorf("list = %+v, %v", list, err)
	}
	del, err := runFlags(t, newCmdDeviceDelete, "dev1", "--module-id", "mod1", "--etag", "E")
	if err != nil || del == nil || del.DeviceID != "dev1" || del.ModuleID != "mod1" || del.Etag != "E" {
		t.Errorf("delete = %+v, %v", del, err)
	}
	checkUsage(t, newCmdDeviceShow, []usageCase{{nil, "no device id"}, {[]string{"a", "-d", "b"}, "twice"}})
	checkUsage(t, newCmdDeviceList, []usageCase{{[]string{"--top", "x"}, "invalid argument"}})
	checkUsage(t, newCmdDeviceDelete, []usageCase{{nil, "no device id"}})
}

// hub sas checks its flags before runF, the past by the Factory's clock.
func TestSASFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	newCmd := func(f *cmdutil.Factory, runF func(*sasOptions) error) *cobra.Command {
		f.Now = func() time.Time { return at }
		return newCmdSAS(f, runF)
	}
	got, err := runFlags(t, newCmd, "--expiry", "2031-01-02T00:00:00Z", "-d", "dev1")
	if err != nil || got == nil || !got.expiryTime.Equal(at.Add(24*time.Hour)) || got.deviceID != "dev1" {
		t.Errorf("sas --expiry a day ahead = %+v, %v", got, err)
	}
	checkUsage(t, newCmd, []usageCase{
		{[]string{"--expiry", "2030-01-01T00:00:00Z"}, "in the past (8760h0m0s ago)"},
		{[]string{"--expiry", "tomorrow"}, "not an RFC 3339 time"},
		{[]string{"--ttl", "0s"}, "--ttl must be positive"},
		{[]string{"--key-type", "secondary"}, "carries one key"},
		{[]string{"--key-type", "x"}, "use primary"},
	})
}

// hub connstr parse takes the string from its argument; an expired
// token is told by the Factory's clock.
func TestConnstrParseFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	got, err := runFlags(t, newCmdConnstrParse, "-", "--show-secrets")
	if err != nil || got == nil || got.input != "-" || !got.showSecrets {
		t.Errorf("connstr parse - --show-secrets = %+v, %v", got, err)
	}
	cs, err := connstr.Parse("HostName=h.azure-devices.net;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h.azure-devices.net%2Fdevices%2Fd&sig=c2ln&se=1000")
	if err != nil {
		t.Fatal(err)
	}
	if info := describe(cs, false, time.Unix(1000+90, 0)); info.TokenExpired != "expired 1m30s ago" {
		t.Errorf("describe at se+90s: TokenExpired %q; want expired 1m30s ago", info.TokenExpired)
	}
}

func TestC2DSendFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	newCmd := func(f *cmdutil.Factory, runF func(*c2dSendOptions) error) *cobra.Command {
		f.Now = func() time.Time { return at }
		return newCmdC2DSend(f, runF)
	}
	got, err := runFlags(t, newCmd, "-d", "dev1", "-m", "mod1", "--data", "hi", "--wait", "--expiry", "10s", "--property", "color=red", "--message-id", "m1")
	if err != nil || got == nil {
		t.Fatalf("c2d send = %+v, %v", got, err)
	}
	m := got.Message
	if got.Ack != "full" || string(m.Body) != "hi" || m.Ack != "full" || m.MessageID != "m1" || m.Properties["color"] != "red" || !m.ExpiryTime.Equal(at.Add(10*time.Second)) {
		t.Errorf("message %+v ack %q; want ack full (implied by --wait), expiry 10s after the clock", m, got.Ack)
	}
	if got, err := runFlags(t, newCmd, "-d", "dev1", "--data", ""); err != nil || got == nil || got.Message.MessageID == "" {
		t.Errorf("c2d send --data '' = %+v, %v; want an empty body and a new message id", got, err)
	}
	checkUsage(t, newCmd, []usageCase{
		{[]string{"-d", "dev1", "--data", "x", "--ack", "none", "--wait"}, "--wait needs feedback"},
		{[]string{"-d", "dev1", "--data", "x", "--ack", "sometimes"}, "--ack"},
		{[]string{"-d", "dev1", "--data", "x", "--expiry", "-1s"}, "--expiry"},
		{[]string{"-d", "dev1", "--data", "x", "--wait", "--timeout", "-1s"}, "--timeout"},
		{[]string{"-d", "dev1"}, "exactly one of --data and --data-file"},
		{[]string{"-d", "dev1", "--data", "x", "--data-file", "f"}, "exactly one of --data and --data-file"},
		{[]string{"-d", "dev1", "--data", "x", "--property", "color"}, "want key=value"},
		{[]string{"--data", "x"}, "no device id"},
		{[]string{"-d", "dev1", "--data-file", filepath.Join(t.TempDir(), "missing")}, "--data-file"},
		{[]string{"-d", "dev1", "--data", strings.Repeat("x", 65537)}, "up to 65536 bytes"},
	})
}

func TestFeedbackFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	got, err := runFlags(t, newCmdFeedback, "--wait-on-msg", "m1", "--count", "3", "--timeout", "2m")
	if err != nil || got == nil || got.WaitOnMsg != "m1" || got.Count != 3 || got.Timeout != 2*time.Minute {
		t.Errorf("feedback = %+v, %v", got, err)
	}
	checkUsage(t, newCmdFeedback, []usageCase{
		{[]string{"--count", "-1"}, "--count"},
		{[]string{"--timeout", "-1s"}, "--timeout"},
	})
}

func TestMonitorFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	got, err := runFlags(t, newCmdMonitor, "-d", "sim-*", "--from", "2026-11-26T08:00:00Z", "--consumer-group", "cg", "--count", "100", "--properties", "app, sys")
	if err != nil || got == nil {
		t.Fatalf("monitor = %+v, %v", got, err)
	}
	if want := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC); !got.monitor.FromTime.Equal(want) || got.monitor.From != "" || got.monitor.ConsumerGroup != "cg" ||
		got.DeviceGlob != "sim-*" || got.Count != 100 || !got.show["app"] || !got.show["sys"] || got.show["anno"] {
		t.Errorf("monitor options %+v; want from %s, group cg, app and sys properties", got, want)
	}
	if got, err := runFlags(t, newCmdMonitor); err != nil || got == nil || got.monitor.From != "now" || got.monitor.ConsumerGroup != "$Default" {
		t.Errorf("monitor defaults = %+v, %v; want from now, group $Default", got, err)
	}
	checkUsage(t, newCmdMonitor, []usageCase{
		{[]string{"--from", "yesterday"}, "--from"},
		{[]string{"--properties", "app,everything"}, "--properties"},
		{[]string{"--device-id", "sim-["}, "not a valid glob"},
		{[]string{"--count", "-5"}, "--count"},
		{[]string{"--timeout", "-1s"}, "--timeout"},
	})
}

func TestDeviceUpdateRenewKeyPurgeFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	checkUsage(t, newCmdDeviceUpdate, []usageCase{
		{[]string{"u1"}, "nothing to update"},
		{[]string{"u1", "--status", "off"}, `--status "off"`},
		{[]string{"u1", "--primary-key", "short"}, "--primary-key is not a key"},
		{[]string{"u1", "-m", "m1", "--status", "disabled"}, "--module-id goes with"},
	})
	checkUsage(t, newCmdDeviceRenewKey, []usageCase{{[]string{"r1", "--key-type", "tertiary"}, `--key-type "tertiary"`}})
	checkUsage(t, newCmdC2DPurge, []usageCase{{nil, "no device id"}})
	if got, err := runFlags(t, newCmdDeviceUpdate, "u1", "--status", "disabled", "--edge"); err != nil || got == nil || got.Status != "disabled" || got.Edge == nil || !*got.Edge {
		t.Errorf("update u1 --status disabled --edge = %+v, %v", got, err)
	}
}

func TestDeviceCACreateFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	if got, err := runFlags(t, newCmdDeviceCACreate); err != nil || got == nil || got.Dir != "." || got.Days != 365 || got.Name != "iotctl device CA" {
		t.Errorf("device-ca create = %+v, %v; want the current directory, 365 days", got, err)
	}
	if got, err := runFlags(t, newCmdDeviceCACreate, "certs", "--days", "30", "--name", "lab"); err != nil || got == nil || got.Dir != "certs" || got.Days != 30 || got.Name != "lab" {
		t.Errorf("device-ca create certs --days 30 --name lab = %+v, %v", got, err)
	}
	checkUsage(t, newCmdDeviceCACreate, []usageCase{{[]string{"--days", "0"}, "--days must be at least 1"}})
}

// The CA's validity comes from the Factory's clock.
func TestDeviceCACreateClock(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	at := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &bytes.Buffer{}})
	f.Now = func() time.Time { return at }
	f.V.Set(cmdutil.KeyOutput, "json")
	if err := deviceCACreateRun(&deviceCACreateOptions{f: f, Dir: t.TempDir(), Name: "n", Days: 2}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"notAfter": "2031-01-03T00:00:00Z"`) {
		t.Errorf("printed %s; want notAfter two days after the clock", out.String())
	}
}

// hub serve resolves its flags into the hub's options before runF and
// refuses wrong ones without starting a hub.
func TestServeFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	got, err := runFlags(t, newCmdServe, "--addr", "127.0.0.1:0", "--in-memory", "--consumer-group", "cg1", "--retention", "2h", "--partitions", "2", "--max-events", "10")
	if err != nil || got == nil {
		t.Fatalf("serve = %+v, %v", got, err)
	}
	if h := got.Hub; h.Addr != "127.0.0.1:0" || !h.InMemory || len(h.ConsumerGroups) != 1 || h.ConsumerGroups[0] != "cg1" || h.Retention != 2*time.Hour ||
		h.Partitions != 2 || h.MaxEvents != 10 || h.Entra != nil {
		t.Errorf("hub options %+v", h)
	}
	checkUsage(t, newCmdServe, []usageCase{
		{[]string{"--retention", "200h"}, "--retention 200h0m0s: give a duration from 1s to 168h (IoT Hub keeps telemetry 1 day by default, at most 7 days)"},
		{[]string{"--retention", "0s"}, "--retention 0s"},
		{[]string{"--max-events", "-1"}, "--max-events -1"},
		{[]string{"--max-bytes", "-5"}, "--max-bytes -5"},
		{[]string{"--cert", "c.pem"}, "--cert and --key go together"},
		{[]string{"--consumer-group", "bad group!"}, "--consumer-group"},
		{[]string{"--entra-issuer", "https://sts.windows.net/t/"}, "need --entra-jwks"},
		{[]string{"--seed", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml"},
		{[]string{"--metrics-addr", "9090"}, "--metrics-addr \"9090\": want HOST:PORT"},
	})
	if got, err := runFlags(t, newCmdServe, "--metrics-addr", "127.0.0.1:0"); err != nil || got == nil || got.MetricsAddr != "127.0.0.1:0" {
		t.Errorf("serve --metrics-addr 127.0.0.1:0 = %+v, %v; want it kept for serveRun, nothing listening yet", got, err)
	}
}

// hub serve turns the file upload flags into the hub's file upload
// settings, with IoT Hub's defaults and ranges; without a storage
// connection string there are none.
func TestServeFileUploadFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	got, err := runFlags(t, newCmdServe, "--in-memory")
	if err != nil || got == nil || got.Hub.FileUpload != nil {
		t.Fatalf("serve without --storage-connection-string = %+v, %v; want no file upload", got, err)
	}
	cs := "AccountName=a;AccountKey=a2V5"
	got, err = runFlags(t, newCmdServe, "--in-memory", "--storage-connection-string", cs, "--file-upload-notifications", "--file-notification-max-delivery-count", "5")
	if err != nil || got == nil || got.Hub.FileUpload == nil {
		t.Fatalf("serve --storage-connection-string = %+v, %v", got, err)
	}
	fu := got.Hub.FileUpload
	if fu.StorageConnectionString != cs || fu.Container != "fileupload" || fu.SASTTL != time.Hour || !fu.Notifications ||
		fu.NotificationTTL != time.Hour || fu.NotificationLock != time.Minute || fu.NotificationMaxDeliveries != 5 {
		t.Errorf("file upload settings = %+v", fu)
	}
	checkUsage(t, newCmdServe, []usageCase{
		{[]string{"--storage-connection-string", cs, "--file-upload-sas-ttl", "25h"}, "--file-upload-sas-ttl"},
		{[]string{"--storage-connection-string", cs, "--file-notification-ttl", "30s"}, "--file-notification-ttl"},
		{[]string{"--storage-connection-string", cs, "--file-notification-lock-duration", "1s"}, "--file-notification-lock-duration"},
		{[]string{"--storage-connection-string", cs, "--file-notification-max-delivery-count", "101"}, "--file-notification-max-delivery-count"},
	})
}

func TestFileNotificationsFlags(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	got, err := runFlags(t, newCmdFileNotifications, "--count", "3", "--timeout", "2m")
	if err != nil || got == nil || got.Count != 3 || got.Timeout != 2*time.Minute {
		t.Errorf("file-notifications = %+v, %v", got, err)
	}
	checkUsage(t, newCmdFileNotifications, []usageCase{
		{[]string{"--count", "-1"}, "--count"},
		{[]string{"--timeout", "-1s"}, "--timeout"},
	})
}
