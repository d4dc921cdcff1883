package device

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// `device simulate --devices 3 --dps-group-key K` against the
// in-process hub: every device registers with its DPS, then connects
// and sends; the summary counts them provisioned. A key of no group
// exits 4.
func TestSimulateFleetThroughDPS(t *testing.T) {
	t.Parallel()
	h, svc := startHub(t)
	g, err := h.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	cmd := func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }
	args := []string{"simulate", "--devices", "3", "--device-prefix", "fleet-", "--dps-id-scope", h.DPS().IDScope(),
		"--hub-connection-string", svc, "--ca-file", h.CAFile(), "--count", "2", "--interval", "10ms", "-o", "json"}
	code, stdout, stderr := execute(t, "", cmd, append(args, "--dps-group-key", g.Attestation.SymmetricKey.PrimaryKey)...)
	if code != 0 {
		t.Fatalf("device simulate through DPS exited %d; stderr:\n%s", code, stderr)
	}
	provisioned := map[string]string{}
	var summary struct {
		Stats struct{ Devices, Acked, Errors, Provisioned int }
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e struct{ Type, DeviceID, AssignedHub string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", line, err)
		}
		switch e.Type {
		case "provisioned":
			provisioned[e.DeviceID] = e.AssignedHub
		case "summary":
			_ = json.Unmarshal([]byte(line), &summary)
		}
	}
	for _, id := range []string{"fleet-00001", "fleet-00002", "fleet-00003"} {
		if provisioned[id] != h.HostName() {
			t.Errorf("%s: provisioned to %q; want %q", id, provisioned[id], h.HostName())
		}
	}
	if s := summary.Stats; s.Devices != 3 || s.Acked != 6 || s.Errors != 0 || s.Provisioned != 3 {
		t.Errorf("summary %+v; want 3 devices provisioned, 6 messages acknowledged", s)
	}

	wrong, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "not-a-group-key")
	code, _, stderr = execute(t, "", cmd, append(args, "--dps-group-key", wrong)...)
	if code != cmdutil.ExitAuth || !strings.Contains(stderr, "DPS refused") {
		t.Errorf("a fleet with a key of no group exited %d (%s); want 4", code, stderr)
	}
}

func TestSimulateDPSUsage(t *testing.T) {
	t.Parallel()
	cmd := func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }
	for _, args := range [][]string{
		{"--dps-group-key", "a2V5", "--dps-id-scope", "0ne00000001"},                                            // no --devices
		{"--devices", "2", "--dps-group-key", "a2V5"},                                                           // no ID scope
		{"--devices", "2", "--dps-id-scope", "0ne00000001", "--dps-group-key", "not*base64"},                    // bad key
		{"--devices", "2", "--dps-id-scope", "0ne00000001", "--dps-group-key", "a2V5", "--dps-ca", "ca.pem"},    // both
		{"--devices", "2", "--dps-id-scope", "0ne00000001", "--dps-group-key", "a2V5", "--keys-file", "k.txt"},  // conflicting source
		{"--devices", "2", "--dps-id-scope", "0ne00000001", "--dps-group-key", "a2V5", "--device-ca", "ca.pem"}, // conflicting source
		{"--devices", "2", "--dps-id-scope", "0ne00000001", "--dps-ca", "/nonexistent.pem"},                     // unreadable CA
	} {
		code, _, stderr := execute(t, "", cmd, append([]string{"simulate"}, args...)...)
		if code != cmdutil.ExitUsage || stderr == "" {
			t.Errorf("simulate %v exited %d (%q); want 3 and a message", args, code, stderr)
		}
	}
}

func TestStatusLineCountsProvisionedDevices(t *testing.T) {
	t.Parallel()
	s := simulate.Stats{Devices: 10, Connected: 4, Provisioned: 7, Acked: 12}
	if got := statusLine(s); !strings.HasPrefix(got, "7 provisioned, 4/10 connected, ") {
		t.Errorf("statusLine(%+v) = %q; want it to start with the provisioned count", s, got)
	}
	s.Provisioned = 0
	if got := statusLine(s); strings.Contains(got, "provisioned") {
		t.Errorf("statusLine of a fleet without DPS = %q; want no provisioned count", got)
	}
}

// A fleet through DPS as a Kubernetes Job: the group key is a
// credential, so the manifest never holds it and the pods read it from
// the Secret.
func TestSimulateDPSK8sJobKeepsTheGroupKeyOutOfTheManifest(t *testing.T) {
	t.Parallel()
	cmd := func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }
	key := "c2VjcmV0LWdyb3VwLWtleS0wMTIzNDU2Nzg5YWJjZGVm"
	args := []string{"simulate", "--devices", "100", "--shards", "2", "--dps-id-scope", "0ne00000001", "--dps-group-key", key,
		"--dps-host", "global.azure-devices-provisioning.net", "--k8s-job", "--image", "registry.example/iotctl:1"}
	code, _, stderr := execute(t, "", cmd, args...)
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "IOTCTL_DPS_GROUP_KEY") {
		t.Errorf("--k8s-job without --k8s-secret exited %d (%s); want 3 naming IOTCTL_DPS_GROUP_KEY", code, stderr)
	}
	code, out, stderr := execute(t, "", cmd, append(args, "--k8s-secret", "fleet")...)
	if code != 0 || strings.Contains(out, key) || !strings.Contains(out, "--dps-id-scope") {
		t.Errorf("--k8s-job = %d %s\n%s; want a manifest with the DPS flags and without the key", code, stderr, out)
	}
}

// A fleet through DPS finds the local hub's DPS from the service
// connection string that `hub serve`'s env.sh exports (as `dps register`
// does), not only from --hub-connection-string; an Azure hub's string
// leaves the global endpoint.
func TestSimulateDPSHostFromServiceConnectionString(t *testing.T) {
	for _, tc := range []struct{ connectionString, want string }{
		{"HostName=127.0.0.40:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5", "127.0.0.40:8443"},
		{"HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5", "global.azure-devices-provisioning.net"},
		{"", "global.azure-devices-provisioning.net"},
	} {
		t.Setenv("IOTCTL_CONNECTION_STRING", tc.connectionString)
		var got string
		capture := func(f *cmdutil.Factory) *cobra.Command {
			c := newCmdSimulate(f, func(o *simulateOptions) error { got = o.defaultDPSHost(); return nil })
			// As under `iotctl device`: the device's --connection-string
			// is device-connection-string, not the service string.
			cmdutil.SetConfigKey(c.Flags(), cmdutil.KeyConnectionString, cmdutil.KeyDeviceConnectionString)
			return c
		}
		if code, _, stderr := execute(t, "", capture, "simulate", "--devices", "2", "--dps-id-scope", "0ne00000001", "--dps-group-key", "a2V5"); code != 0 {
			t.Fatalf("exited %d: %s", code, stderr)
		}
		if got != tc.want {
			t.Errorf("IOTCTL_CONNECTION_STRING=%q: DPS host %q; want %q", tc.connectionString, got, tc.want)
		}
	}
}
