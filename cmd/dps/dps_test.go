package dps_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub"
	hubdps "github.com/iotctl/iotctl/pkg/hub/dps"
)

// run executes iotctl in process with captured streams, no config file
// and only the IOTCTL_* variables in env.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	for _, k := range []string{"IOTCTL_CONNECTION_STRING", "IOTCTL_CA_FILE", "IOTCTL_DPS_ID_SCOPE", "IOTCTL_OUTPUT"} {
		t.Setenv(k, env[k])
	}
	var out, errOut bytes.Buffer
	code := cmd.Execute(context.Background(), args, &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestDeriveKey(t *testing.T) {
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
