package simulate

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iotctl/iotctl/pkg/device"
)

// PeakMemoryPerDevice is the memory, in bytes, a fleet's process takes
// per MQTT device at its peak (VmHWM), measured with bench/fleet: 22.3
// KB at 19,000 devices sending one message a minute, about 36 KB per
// connected device at 10,000 sending one a second (go run ./bench/fleet
// -devices 10000 -node 0 -rate-devices 0), rounded up. A Job's memory
// request is sized from it, as capacity planning goes by the peak.
const PeakMemoryPerDevice = 40 << 10

// PeakMemoryPerAMQPDevice is the memory, in bytes, a fleet's process
// takes per AMQP device (100 to a shared connection, on the lean AMQP
// engine, pkg/amqp1/client) at its peak, with methods, C2D and the
// twin (six links a device): 9.7 KB at 10,000 devices sending one
// message a minute (go run ./bench/fleet -devices 10000 -transport amqp
// -interval 1m -steady 60s -rate-devices 0 -node 0), 4.8 KB at 100,000
// (the same with -devices 100000 -connect-timeout 10m), rounded up with
// room for a peak above the steady state when the fleet connects
// faster than the collector runs (bench/fleet/README.md).
const PeakMemoryPerAMQPDevice = 12 << 10

// PeakMemoryPerAMQPTelemetryDevice is the same for --telemetry-only
// AMQP devices, which attach their telemetry link alone: 7.3 KB at 10,000 devices, 3.8 KB
// at 100,000 (the same command with -fleet-args "--telemetry-only"),
// rounded up from the smaller fleet's, where the process's fixed costs
// weigh more.
const PeakMemoryPerAMQPTelemetryDevice = 8 << 10

// PeakPerDevice is the measured peak memory per device, in bytes, of a
// fleet over tr: PeakMemoryPerAMQPDevice or
// PeakMemoryPerAMQPTelemetryDevice over AMQP, else PeakMemoryPerDevice
// (measured over MQTT; an HTTPS device holds no connection and takes
// less).
func PeakPerDevice(tr device.Transport, telemetryOnly bool) int64 {
	switch {
	case tr == device.TransportAMQP && telemetryOnly:
		return PeakMemoryPerAMQPTelemetryDevice
	case tr == device.TransportAMQP:
		return PeakMemoryPerAMQPDevice
	}
	return PeakMemoryPerDevice
}

// BaseMemory is the memory, in bytes, a fleet's process takes besides
// its devices (runtime, TLS roots, buffers), rounded up.
const BaseMemory = 64 << 20

// DefaultMetricsPort is the metrics port of a Job's pods when the
// command gives no --metrics-addr.
const DefaultMetricsPort = 9090

// Job describes a Kubernetes Indexed Job that runs a fleet in Shards
// pods, each simulating its own shard (see Shard): pod i gets
// JOB_COMPLETION_INDEX=i from Kubernetes.
type Job struct {
	// Name is the Job's name (a DNS label; see JobName).
	Name string
	// Image is the container image; iotctl must be on its PATH.
	Image string
	// Args are iotctl's arguments ("device", "simulate", ...), with
	// --shards but no --shard-index, and no secret.
	Args []string
	// Secret, if set, is the Secret whose keys become the pods'
	// environment (IOTCTL_HUB_CONNECTION_STRING=...).
	Secret string
	// Shards is the number of pods: completions and parallelism.
	Shards int
	// Devices is the size of the whole fleet; each pod's memory is
	// sized for the largest shard.
	Devices int
	// MetricsPort is the container port, named "metrics", the pods
	// serve Prometheus metrics on.
	MetricsPort int
	// PerDevice is the peak memory of a device in bytes, which the
	// pods' memory is sized from (see PeakPerDevice). Default:
	// PeakMemoryPerDevice.
	PerDevice int64
}

// MemoryRequest is the memory request of each pod in bytes:
// BaseMemory plus PerDevice per device of the largest shard, rounded
// up to a MiB.
func (j *Job) MemoryRequest() int64 {
	perShard := (j.Devices + j.Shards - 1) / max(1, j.Shards)
	per := j.PerDevice
	if per <= 0 {
		per = PeakMemoryPerDevice
	}
	b := int64(BaseMemory) + int64(perShard)*per
	return (b + 1<<20 - 1) &^ (1<<20 - 1)
}

// MemoryLimit is the memory limit of each pod: half as much again as
// the request, so that a peak above the measured one does not kill
// the pod.
func (j *Job) MemoryLimit() int64 { return j.MemoryRequest() * 3 / 2 }

// GoMemLimit is the GOMEMLIMIT the pods run with: 90% of the memory
// limit, so that the Go runtime collects harder before the kernel
// kills the pod.
func (j *Job) GoMemLimit() int64 { return j.MemoryLimit() / 10 * 9 }

// The manifest's shape: the fields of batch/v1 Job that iotctl sets,
// named as in the Kubernetes API (k8s.io/api/batch/v1 and core/v1).
type (
	jobManifest struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
		Spec       jobSpec  `yaml:"spec"`
	}
	metadata struct {
		Name   string            `yaml:"name,omitempty"`
		Labels map[string]string `yaml:"labels,omitempty"`
	}
	jobSpec struct {
		CompletionMode string      `yaml:"completionMode"`
		Completions    int         `yaml:"completions"`
		Parallelism    int         `yaml:"parallelism"`
		Template       podTemplate `yaml:"template"`
	}
	podTemplate struct {
		Metadata metadata `yaml:"metadata"`
		Spec     podSpec  `yaml:"spec"`
	}
	podSpec struct {
		RestartPolicy string      `yaml:"restartPolicy"`
		Containers    []container `yaml:"containers"`
	}
	container struct {
		Name      string          `yaml:"name"`
		Image     string          `yaml:"image"`
		Command   []string        `yaml:"command"`
		Args      []string        `yaml:"args"`
		Env       []envVar        `yaml:"env,omitempty"`
		EnvFrom   []envFromSource `yaml:"envFrom,omitempty"`
		Ports     []containerPort `yaml:"ports"`
		Resources resources       `yaml:"resources"`
	}
	envVar struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	}
	envFromSource struct {
		SecretRef secretRef `yaml:"secretRef"`
	}
	secretRef struct {
		Name string `yaml:"name"`
	}
	containerPort struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	}
	resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
)

// Labels of the Job and its pods (a PodMonitor selects the pods by
// them): app.kubernetes.io/name is "iotctl-simulate" and
// app.kubernetes.io/instance the Job's name, the recommended labels of
// https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/.
const (
	LabelName     = "app.kubernetes.io/name"
	LabelInstance = "app.kubernetes.io/instance"
	AppName       = "iotctl-simulate"
)

// Manifest returns the Job as YAML for kubectl apply -f -. Errors: a
// missing name, image or command, or fewer than one shard.
func (j *Job) Manifest() ([]byte, error) {
	switch {
	case j.Name == "":
		return nil, errors.New("simulate: the Job has no name")
	case j.Image == "":
		return nil, errors.New("simulate: the Job has no image")
	case len(j.Args) == 0:
		return nil, errors.New("simulate: the Job has no command")
	case j.Shards < 1:
		return nil, errors.New("simulate: the Job needs at least one shard")
	}
	labels := map[string]string{LabelName: AppName, LabelInstance: j.Name}
	c := container{
		Name: "simulate", Image: j.Image, Command: []string{"iotctl"}, Args: j.Args,
		Env:   []envVar{{Name: "GOMEMLIMIT", Value: strconv.FormatInt(j.GoMemLimit(), 10)}},
		Ports: []containerPort{{Name: "metrics", ContainerPort: j.MetricsPort, Protocol: "TCP"}},
		Resources: resources{
			Requests: map[string]string{"memory": mebibytes(j.MemoryRequest())},
			Limits:   map[string]string{"memory": mebibytes(j.MemoryLimit())},
		},
	}
	if j.Secret != "" {
		c.EnvFrom = []envFromSource{{SecretRef: secretRef{Name: j.Secret}}}
	}
	m := jobManifest{
		APIVersion: "batch/v1", Kind: "Job",
		Metadata: metadata{Name: j.Name, Labels: labels},
		Spec: jobSpec{
			CompletionMode: "Indexed", Completions: j.Shards, Parallelism: j.Shards,
			Template: podTemplate{
				Metadata: metadata{Labels: labels},
				// A failed pod is replaced by one with the same index.
				Spec: podSpec{RestartPolicy: "Never", Containers: []container{c}},
			},
		},
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&m); err != nil {
		return nil, fmt.Errorf("simulate: the Job manifest: %w", err)
	}
	return b.Bytes(), nil
}

func mebibytes(b int64) string { return strconv.FormatInt(b>>20, 10) + "Mi" }

var notLabelChar = regexp.MustCompile(`[^a-z0-9]+`)

// JobName returns the name of the Job of a fleet with device id prefix
// prefix: "iotctl-" and the prefix in lower case with every run of
// other characters than a-z and 0-9 made one "-" ("sim-" gives
// "iotctl-sim"), at most 40 characters, so that the pods' names
// (the Job's, the index and a suffix) stay within 63.
func JobName(prefix string) string {
	s := strings.Trim(notLabelChar.ReplaceAllString(strings.ToLower(prefix), "-"), "-")
	if s == "" {
		return AppName
	}
	name := "iotctl-" + s
	if len(name) > 40 {
		name = strings.TrimRight(name[:40], "-")
	}
	return name
}
