package cmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/cmd/dps"
	"github.com/iotctl/iotctl/internal/clitest"
	"github.com/iotctl/iotctl/pkg/hub"
	hubdps "github.com/iotctl/iotctl/pkg/hub/dps"
)

// run executes iotctl in process with captured streams, no config file
// (TestMain) and only the IOTCTL_* variables in env (cmd.ExecuteEnv),
// so that the tests run in parallel.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmd.ExecuteEnv(context.Background(), args, &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, env)
	return code, out.String(), errOut.String()
}

func TestDeriveKey(t *testing.T) {
	t.Parallel() // no t.Setenv: see run
	// The sample of Azure's docs (articles/iot-dps/iot-dps-https-sym-key-support.md).
	code, out, errOut := run(t, nil, "dps", "derive-key", "--group-key",
		"G3vn0IZH9oK3d4wsxFpWBtd2KUrtjI+39dZVRf26To8w9OX0LaFV9yZ93ELXY7voqHEUsNhnb9bt717UP87KxA==", "--registration-id", "my-symkey-device")
	if code != 0 || out != "Q+erii/qT0ty8UwJPpnDYucSU2Np3B1053zvwW2S+ns=\n" {
		t.Errorf("derive-key = %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{
		{"--group-key", "not*base64", "--registration-id", "dev"},
		{"--group-key", "c2VjcmV0", "--registration-id", "a/b"},
		{"--group-key", "c2VjcmV0"},
	} {
		code, _, errOut := run(t, nil, append([]string{"dps", "derive-key"}, args...)...)
		if code != cmdutil.ExitUsage || errOut == "" {
			t.Errorf("derive-key %v exited %d (%q); want 3 and a message", args, code, errOut)
		}
	}
}

func startHub(t *testing.T) *hub.Hub {
	t.Helper()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// `dps register` against the local hub: the host comes from the
// configured service connection string, the ID scope from
// IOTCTL_DPS_ID_SCOPE; refusals exit 4.
func TestRegisterAgainstTheLocalHub(t *testing.T) {
	t.Parallel() // no t.Setenv: see run
	h := startHub(t)
	svc, _ := h.ServiceConnectionString("iothubowner")
	env := map[string]string{"IOTCTL_CONNECTION_STRING": svc, "IOTCTL_CA_FILE": h.CAFile(), "IOTCTL_DPS_ID_SCOPE": h.DPS().IDScope()}
	g, err := h.DPS().PutGroup(&hubdps.EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &hubdps.Attestation{Type: hubdps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	groupKey := g.Attestation.SymmetricKey.PrimaryKey

	code, out, errOut := run(t, env, "dps", "register", "--registration-id", "dev-1", "--group-key", groupKey, "--payload", `{"a":1}`, "-o", "json")
	if code != 0 {
		t.Fatalf("register exited %d: %s", code, errOut)
	}
	var got struct {
		Status, AssignedHub, DeviceID, ConnectionString string
		Payload                                         json.RawMessage
	}
	json.Unmarshal([]byte(out), &got)
	var payload bytes.Buffer
	json.Compact(&payload, got.Payload)
	key, _ := hubdps.DeriveKey(groupKey, "dev-1")
	if got.Status != "assigned" || got.AssignedHub != h.HostName() || got.DeviceID != "dev-1" ||
		got.ConnectionString != "HostName="+h.HostName()+";DeviceId=dev-1;SharedAccessKey="+key || payload.String() != `{"a":1}` {
		t.Errorf("register -o json = %s", out)
	}
	if cs, err := h.DeviceConnectionString("dev-1", ""); err != nil || cs != got.ConnectionString {
		t.Errorf("the hub's connection string of dev-1 = %q, %v; want the printed one", cs, err)
	}

	code, out, _ = run(t, env, "dps", "register", "--registration-id", "dev-1", "--key", key, "-o", "env")
	if code != 0 || out != "export IOTCTL_DEVICE_CONNECTION_STRING='"+got.ConnectionString+"'\n" {
		t.Errorf("register -o env = %d %q", code, out)
	}

	other, _ := hubdps.DeriveKey(groupKey, "dev-2")
	code, _, errOut = run(t, env, "dps", "register", "--registration-id", "dev-3", "--key", other)
	if code != cmdutil.ExitAuth || !strings.Contains(errOut, "401") {
		t.Errorf("register with another device's key exited %d (%s); want 4", code, errOut)
	}
	env2 := map[string]string{"IOTCTL_CONNECTION_STRING": svc, "IOTCTL_CA_FILE": h.CAFile(), "IOTCTL_DPS_ID_SCOPE": "0ne00000000"}
	code, _, errOut = run(t, env2, "dps", "register", "--registration-id", "dev-1", "--key", key)
	if code != cmdutil.ExitAuth || !strings.Contains(errOut, h.DPS().IDScope()) {
		t.Errorf("register with another ID scope exited %d (%s); want 4 naming the hub's scope", code, errOut)
	}
}

func TestRegisterUsage(t *testing.T) {
	t.Parallel() // no t.Setenv: see run
	for _, args := range [][]string{
		{"--registration-id", "dev"},
		{"--registration-id", "dev", "--key", "a2V5", "--group-key", "a2V5"},
		{"--key", "a2V5"},
		{"--registration-id", "dev", "--key", "a2V5", "--payload", "{"},
		{"--registration-id", "dev!", "--key", "a2V5"},
	} {
		code, _, errOut := run(t, map[string]string{"IOTCTL_DPS_ID_SCOPE": "0ne00000001"}, append([]string{"dps", "register"}, args...)...)
		if code != cmdutil.ExitUsage || errOut == "" {
			t.Errorf("register %v exited %d (%q); want 3", args, code, errOut)
		}
	}
	code, _, errOut := run(t, nil, "dps", "register", "--registration-id", "dev", "--key", "a2V5")
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, "IOTCTL_DPS_ID_SCOPE") {
		t.Errorf("register without an ID scope exited %d (%q); want 3 naming IOTCTL_DPS_ID_SCOPE", code, errOut)
	}
}

// The enrollment, enrollment-group and registration commands against
// the local hub's DPS, with the DPS connection string from the
// environment; a missing one exits 5, bad input 3.
func TestEnrollmentCommandsAgainstTheLocalHub(t *testing.T) {
	t.Parallel() // no t.Setenv: see run
	h := startHub(t)
	dpsCS, err := h.DPSConnectionString()
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := h.ServiceConnectionString("iothubowner")
	env := map[string]string{"IOTCTL_DPS_CONNECTION_STRING": dpsCS, "IOTCTL_CA_FILE": h.CAFile(),
		"IOTCTL_CONNECTION_STRING": svc, "IOTCTL_DPS_ID_SCOPE": h.DPS().IDScope()}

	code, out, errOut := run(t, env, "dps", "enrollment-group", "create", "--enrollment-id", "fleet",
		"--initial-twin-tags", `{"site":"lab"}`, "--initial-twin-properties", `{"interval":5}`, "--edge-enabled",
		"--reprovision-policy", "reprovisionandresetdata", "-o", "json")
	var v struct {
		ID, Attestation, PrimaryKey, ReprovisionPolicy string
		IotEdge                                        bool
	}
	if json.Unmarshal([]byte(out), &v); code != 0 || v.ID != "fleet" || v.Attestation != "symmetricKey" || !v.IotEdge ||
		v.ReprovisionPolicy != "reprovisionandresetdata" || v.PrimaryKey != "REDACTED" {
		t.Fatalf("enrollment-group create = %d %s %s; want the group, its key redacted", code, out, errOut)
	}
	code, out, _ = run(t, env, "dps", "enrollment-group", "show", "fleet", "--show-secrets", "-o", "json")
	json.Unmarshal([]byte(out), &v)
	g, _ := h.DPS().Group("fleet")
	if code != 0 || v.PrimaryKey != g.Attestation.SymmetricKey.PrimaryKey {
		t.Fatalf("enrollment-group show --show-secrets = %d %s; want the generated key", code, out)
	}
	// A member registers with the derived key and gets the initial twin.
	code, _, errOut = run(t, env, "dps", "register", "--registration-id", "edge-1", "--group-key", v.PrimaryKey)
	if code != 0 {
		t.Fatalf("register = %d %s", code, errOut)
	}
	if d, err := h.Registry().Device("edge-1"); err != nil || d.Capabilities == nil || !d.Capabilities.IotEdge {
		t.Errorf("the provisioned device = %+v, %v; want an Edge device", d, err)
	}
	code, out, errOut = run(t, env, "dps", "registration", "show", "edge-1", "-o", "json")
	if code != 0 || !strings.Contains(out, `"assigned"`) {
		t.Errorf("registration show = %d %s %s", code, out, errOut)
	}
	if code, _, errOut = run(t, env, "dps", "registration", "delete", "edge-1"); code != 0 {
		t.Errorf("registration delete = %d %s", code, errOut)
	}
	if code, _, _ = run(t, env, "dps", "registration", "show", "edge-1"); code != cmdutil.ExitNotFound {
		t.Errorf("registration show after delete exited %d; want 5", code)
	}

	key := "c2VjcmV0LWtleS1vZi10aGUtZW5yb2xsbWVudC0wMTIzNDU2Nzg5"
	code, _, errOut = run(t, env, "dps", "enrollment", "create", "--enrollment-id", "dev-9", "--device-id", "device-nine",
		"--primary-key", key, "--secondary-key", key, "--provisioning-status", "disabled")
	if code != 0 {
		t.Fatalf("enrollment create = %d %s", code, errOut)
	}
	code, out, _ = run(t, env, "dps", "enrollment", "list")
	if code != 0 || !strings.Contains(out, "dev-9") || !strings.Contains(out, "disabled") || strings.Contains(out, key) {
		t.Errorf("enrollment list = %d %q; want dev-9 disabled, no key", code, out)
	}
	// A disabled enrollment refuses its device: exit 4.
	if code, _, errOut = run(t, env, "dps", "register", "--registration-id", "dev-9", "--key", key); code != cmdutil.ExitAuth || !strings.Contains(errOut, "disabled") {
		t.Errorf("register with a disabled enrollment = %d %s; want 4 saying disabled", code, errOut)
	}
	if code, _, errOut = run(t, env, "dps", "enrollment", "delete", "dev-9"); code != 0 {
		t.Errorf("enrollment delete = %d %s", code, errOut)
	}
	for _, args := range [][]string{{"enrollment", "show", "dev-9"}, {"enrollment", "delete", "dev-9"}, {"enrollment-group", "show", "nope"}} {
		if code, _, errOut := run(t, env, append([]string{"dps"}, args...)...); code != cmdutil.ExitNotFound || errOut == "" {
			t.Errorf("dps %v exited %d (%q); want 5", args, code, errOut)
		}
	}
	// An allocation policy DPS does not know: DPS's 400, exit 3.
	code, _, errOut = run(t, env, "dps", "enrollment", "create", "--enrollment-id", "dev-10", "--allocation-policy", "roundRobin")
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, "roundRobin") {
		t.Errorf("enrollment create --allocation-policy roundRobin = %d %s; want 3 naming it", code, errOut)
	}
}

func TestEnrollmentUsage(t *testing.T) {
	t.Parallel() // no t.Setenv: see run
	env := map[string]string{"IOTCTL_DPS_CONNECTION_STRING": "HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=c2VjcmV0"}
	for _, args := range [][]string{
		{"enrollment", "create"},
		{"enrollment", "create", "--enrollment-id", "a/b"},
		{"enrollment", "create", "--enrollment-id", "d", "--attestation-type", "tpm"},
		{"enrollment", "create", "--enrollment-id", "d", "--attestation-type", "x509"},
		{"enrollment", "create", "--enrollment-id", "d", "--initial-twin-tags", "[1]"},
		{"enrollment", "create", "--enrollment-id", "d", "--provisioning-status", "on"},
		{"enrollment-group", "create", "--enrollment-id", "g", "--reprovision-policy", "always"},
		{"enrollment-group", "create", "--enrollment-id", "g", "--attestation-type", "x509", "--certificate-path", "/nonexistent.pem"},
	} {
		code, _, errOut := run(t, env, append([]string{"dps"}, args...)...)
		if code != cmdutil.ExitUsage || errOut == "" {
			t.Errorf("dps %v exited %d (%q); want 3 and a message", args, code, errOut)
		}
	}
	code, _, errOut := run(t, nil, "dps", "enrollment", "list")
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, "IOTCTL_DPS_CONNECTION_STRING") {
		t.Errorf("enrollment list without a connection string = %d %q; want 3 naming IOTCTL_DPS_CONNECTION_STRING", code, errOut)
	}
}

// The id of show and delete comes from the argument or from the flag az
// uses (--enrollment-id, --registration-id); both must agree.
func TestShowAndDeleteTakeTheIDAsArgumentOrFlag(t *testing.T) {
	t.Parallel() // no t.Setenv: see clitest.RunF
	for _, group := range []bool{false, true} {
		for name, newCmd := range map[string]func(*cmdutil.Factory, bool, func(*dps.EnrollmentOptions) error) *cobra.Command{
			"show": dps.NewCmdEnrollmentShow, "delete": dps.NewCmdEnrollmentDelete,
		} {
			mk := func(f *cmdutil.Factory, runF func(*dps.EnrollmentOptions) error) *cobra.Command {
				return newCmd(f, group, runF)
			}
			for _, args := range [][]string{{"cam-1"}, {"--enrollment-id", "cam-1"}, {"cam-1", "--enrollment-id", "cam-1"}} {
				o, err := clitest.RunF(t, nil, mk, args...)
				if err != nil || o == nil || o.ID != "cam-1" || o.Group != group {
					t.Errorf("%s (group %v) %v = %+v, %v; want id cam-1", name, group, args, o, err)
				}
			}
			clitest.CheckUsage(t, nil, mk, []clitest.UsageCase{
				{Args: nil, Want: "give it as the argument or with --enrollment-id"},
				{Args: []string{"a", "--enrollment-id", "b"}, Want: "given twice"},
			})
		}
	}
	for name, newCmd := range map[string]func(*cmdutil.Factory, func(*dps.RegistrationOptions) error) *cobra.Command{
		"show": dps.NewCmdRegistrationShow, "delete": dps.NewCmdRegistrationDelete,
	} {
		for _, args := range [][]string{{"dev-1"}, {"--registration-id", "dev-1"}} {
			o, err := clitest.RunF(t, nil, newCmd, args...)
			if err != nil || o == nil || o.RegistrationID != "dev-1" {
				t.Errorf("registration %s %v = %+v, %v; want dev-1", name, args, o, err)
			}
		}
		clitest.CheckUsage(t, nil, newCmd, []clitest.UsageCase{
			{Args: nil, Want: "no registration id"},
			{Args: []string{"a", "--registration-id", "b"}, Want: "given twice"},
		})
	}
	o, err := clitest.RunF(t, nil, func(f *cmdutil.Factory, runF func(*dps.EnrollmentOptions) error) *cobra.Command {
		return dps.NewCmdEnrollmentList(f, true, runF)
	})
	if err != nil || o == nil || !o.Group {
		t.Errorf("enrollment-group list = %+v, %v", o, err)
	}
}
