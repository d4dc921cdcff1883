package device

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// The pods' memory request comes from the measured peak per device of
// the fleet's transport: an AMQP fleet's figure (with or without
// --telemetry-only) is not MQTT's.
func TestK8sJobMemoryByTransport(t *testing.T) {
	hubCS := "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
	sim := func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }
	for _, tc := range []struct {
		args      []string
		perDevice int64
	}{
		{nil, simulate.PeakMemoryPerDevice},
		{[]string{"--transport", "mqtt", "--telemetry-only"}, simulate.PeakMemoryPerDevice},
		{[]string{"--transport", "amqp"}, simulate.PeakMemoryPerAMQPDevice},
		{[]string{"--transport", "amqp", "--telemetry-only"}, simulate.PeakMemoryPerAMQPTelemetryDevice},
	} {
		args := append([]string{"simulate", "--devices", "1000", "--shards", "2", "--hub-connection-string", hubCS,
			"--k8s-job", "--image", "registry.example/iotctl:1.0", "--k8s-secret", "iotctl-fleet"}, tc.args...)
		code, stdout, stderr := execute(t, "", sim, args...)
		if code != 0 {
			t.Fatalf("%q exited %d; stderr:\n%s", tc.args, code, stderr)
		}
		job, err := decodeJob(t, []byte(stdout))
		if err != nil {
			t.Fatalf("%q: decoding the manifest: %v", tc.args, err)
		}
		want := resource.NewQuantity((simulate.BaseMemory+500*tc.perDevice+1<<20-1)&^(1<<20-1), resource.BinarySI)
		got := job.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory]
		if got.Cmp(*want) != 0 {
			t.Errorf("%q: memory request %s; want %s (500 devices a pod at %d KB)", tc.args, got.String(), want.String(), tc.perDevice>>10)
		}
	}
}

// decodeJob decodes a manifest into the Kubernetes API's own Job type,
// refusing any field that type does not have.
func decodeJob(t *testing.T, manifest []byte) (*batchv1.Job, error) {
	t.Helper()
	var j batchv1.Job
	err := yaml.UnmarshalStrict(manifest, &j)
	return &j, err
}

// `device simulate --k8s-job` prints an Indexed Job that the
// Kubernetes API's batch/v1 Job type decodes strictly: N pods at once,
// each running the same command with --shards N and its index from
// JOB_COMPLETION_INDEX, the connection string from the Secret and
// never in the manifest, memory sized for a shard, and a metrics port.
// Run as a pod runs it, the command simulates that pod's shard.
func TestK8sJobManifest(t *testing.T) {
	const key = "c2VjcmV0"
	hubCS := "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=" + key
	sim := func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }
	code, stdout, stderr := execute(t, "", sim, "simulate", "--devices", "10", "--shards", "4",
		"--hub-connection-string", hubCS, "--interval", "1m", "--property", "site=lab", "--property", "rack=2",
		"--metrics-addr", ":9191", "--k8s-job", "--image", "registry.example/iotctl:1.0", "--k8s-secret", "iotctl-fleet")
	if code != 0 {
		t.Fatalf("--k8s-job exited %d; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout+stderr, key) {
		t.Fatalf("the output holds the connection string's key:\n%s", stdout)
	}
	job, err := decodeJob(t, []byte(stdout))
	if err != nil {
		t.Fatalf("decoding the manifest strictly into batch/v1 Job: %v\n%s", err, stdout)
	}

	if job.APIVersion != "batch/v1" || job.Kind != "Job" || job.Name != "iotctl-sim" {
		t.Errorf("apiVersion %q kind %q name %q; want batch/v1 Job iotctl-sim", job.APIVersion, job.Kind, job.Name)
	}
	spec := job.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode %v; want Indexed", spec.CompletionMode)
	}
	if spec.Completions == nil || *spec.Completions != 4 || spec.Parallelism == nil || *spec.Parallelism != 4 {
		t.Errorf("completions %v parallelism %v; want 4 and 4", spec.Completions, spec.Parallelism)
	}
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q; want Never", pod.RestartPolicy)
	}
	if got := spec.Template.Labels[simulate.LabelInstance]; got != job.Name {
		t.Errorf("pod label %s = %q; want the Job's name, for a PodMonitor", simulate.LabelInstance, got)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "registry.example/iotctl:1.0" || !slices.Equal(c.Command, []string{"iotctl"}) {
		t.Errorf("image %q command %q; want the --image and iotctl", c.Image, c.Command)
	}
	wantArgs := []string{"device", "simulate", "--devices=10", "--interval=1m0s", "--property=site=lab", "--property=rack=2",
		"--shards=4", "--metrics-addr=:9191"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args %q; want %q", c.Args, wantArgs)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "iotctl-fleet" {
		t.Errorf("envFrom %+v; want the Secret iotctl-fleet", c.EnvFrom)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 9191 {
		t.Errorf("ports %+v; want metrics on 9191", c.Ports)
	}
	// 10 devices in 4 shards: at most 3 per pod.
	wantReq := resource.NewQuantity((simulate.BaseMemory+3*simulate.PeakMemoryPerDevice+1<<20-1)&^(1<<20-1), resource.BinarySI)
	req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
	if req.Cmp(*wantReq) != 0 || lim.Cmp(req) <= 0 {
		t.Errorf("memory request %s limit %s; want %s and a larger limit", req.String(), lim.String(), wantReq.String())
	}
	var gomem int64 = -1
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomem, _ = strconv.ParseInt(e.Value, 10, 64)
		}
	}
	if gomem <= req.Value()/2 || gomem >= lim.Value() {
		t.Errorf("GOMEMLIMIT %d; want below the limit %d and well above half the request", gomem, lim.Value())
	}

	// A pod: the Job's command with the Secret's variable and its index.
	t.Setenv("IOTCTL_HUB_CONNECTION_STRING", hubCS)
	t.Setenv(simulate.JobCompletionIndexEnv, "3")
	var got *simulateOptions
	capture := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdSimulate(f, func(o *simulateOptions) error { got = o; return nil })
	}
	if code, _, stderr := execute(t, "", capture, c.Args[1:]...); code != 0 || got == nil {
		t.Fatalf("the pod's command %q exited %d; stderr:\n%s", c.Args, code, stderr)
	}
	if want := simulate.FleetIDs("sim-", 10)[7:]; !slices.Equal(got.sim.DeviceIDs, want) {
		t.Errorf("pod 3 simulates %q; want the last shard %q", got.sim.DeviceIDs, want)
	}
	if got.sim.ConnectRate != simulate.AzureConnectRate/4 {
		t.Errorf("pod 3 connects %v devices a second; want a quarter of the hub's throttle, %v", got.sim.ConnectRate, simulate.AzureConnectRate/4.0)
	}
}

// The strict decoding the test above relies on refuses a field batch/v1
// Job does not have.
func TestDecodeJobRefusesUnknownFields(t *testing.T) {
	t.Parallel()
	j := &simulate.Job{Name: "iotctl-sim", Image: "i", Args: []string{"device", "simulate"}, Shards: 2, Devices: 4, MetricsPort: 9090}
	m, err := j.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeJob(t, m); err != nil {
		t.Fatalf("the manifest itself: %v", err)
	}
	bad := bytes.Replace(m, []byte("  completionMode: Indexed\n"), []byte("  completionMode: Indexed\n  shardCount: 2\n"), 1)
	if bytes.Equal(bad, m) {
		t.Fatal("the manifest has no completionMode line to add a field after")
	}
	if _, err := decodeJob(t, bad); err == nil || !strings.Contains(err.Error(), "shardCount") {
		t.Errorf("decoding a Job with the unknown field shardCount = %v; want an error naming it", err)
	}
}

// Flags --k8s-job cannot do without, or that do not go with it, exit
// 3 before anything is printed, and no key is ever printed.
func TestK8sJobUsageErrorsExit3(t *testing.T) {
	t.Parallel()
	fleet := []string{"simulate", "--devices", "4", "--shards", "2", "--hub-connection-string", serviceCS}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no image", append(fleet, "--k8s-job", "--k8s-secret", "s"), "--k8s-job needs --image"},
		{"no secret", append(fleet, "--k8s-job", "--image", "i"), "--k8s-secret"},
		{"shard index", append(fleet, "--k8s-job", "--image", "i", "--k8s-secret", "s", "--shard-index", "1"), "JOB_COMPLETION_INDEX"},
		{"secret without job", append(fleet, "--shard-index", "0", "--k8s-secret", "s"), "are for --k8s-job"},
		{"one device", []string{"simulate", "--connection-string", deviceCS, "--k8s-job", "--image", "i"}, "give --devices N"},
		{"metrics port 0", append(fleet, "--k8s-job", "--image", "i", "--k8s-secret", "s", "--metrics-addr", ":0"), "port from 1 to 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := execute(t, "", func(f *cmdutil.Factory) *cobra.Command { return newCmdSimulate(f, nil) }, tt.args...)
			if code != cmdutil.ExitUsage || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("iotctl %q: code %d stdout %q stderr %q; want 3 and %q", tt.args, code, stdout, stderr, tt.want)
			}
			if strings.Contains(stderr, "c2VjcmV0") {
				t.Errorf("stderr %q holds a key", stderr)
			}
		})
	}
}
