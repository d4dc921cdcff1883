package device

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// k8sFlags are --k8s-job, --k8s-secret and --image: print the fleet as
// a Kubernetes Indexed Job instead of running it.
type k8sFlags struct {
	job    bool
	secret string
	image  string
}

func (k *k8sFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&k.job, "k8s-job", false, "print a Kubernetes Indexed Job that runs this fleet in --shards pods, instead of running it")
	fl.StringVar(&k.secret, "k8s-secret", "", "with --k8s-job: the Secret whose keys become the pods' environment (IOTCTL_HUB_CONNECTION_STRING, ...)")
	fl.StringVar(&k.image, "image", "", "with --k8s-job: the container image, with iotctl on its PATH")
}

// secretFlags are the flags whose values are credentials: a Job's
// manifest never holds them; the pods read them from the Secret.
var secretFlags = map[string]string{
	"hub-connection-string":           "IOTCTL_HUB_CONNECTION_STRING",
	cmdutil.KeyConnectionString:       "IOTCTL_DEVICE_CONNECTION_STRING",
	cmdutil.KeyDeviceConnectionString: "IOTCTL_DEVICE_CONNECTION_STRING",
	"dps-group-key":                   "IOTCTL_DPS_GROUP_KEY",
}

// notCarried are the flags of this process that the pods' command does
// not take as they are: --k8s-* and --image make the manifest, the
// Job sets --shards and --metrics-addr itself, the pods take their
// index from JOB_COMPLETION_INDEX, and a config file is not in the pod.
var notCarried = map[string]bool{
	"k8s-job": true, "k8s-secret": true, "image": true, "shards": true, "shard-index": true,
	"metrics-addr": true, cmdutil.KeyConfig: true, "help": true,
}

// fileFlags name files the pods read at the same path.
var fileFlags = []string{cmdutil.KeyCAFile, "keys-file", "data-file", "device-ca", "device-ca-key", "cert", "key"}

// validate checks the flags that only make sense with --k8s-job.
func (k *k8sFlags) validate(shardIndexSet bool) error {
	if !k.job {
		if k.secret != "" || k.image != "" {
			return cmdutil.Usagef("--k8s-secret and --image are for --k8s-job")
		}
		return nil
	}
	if k.image == "" {
		return cmdutil.Usagef("--k8s-job needs --image: a container image with iotctl on its PATH (e.g. FROM gcr.io/distroless/static with the static binary copied to /usr/local/bin/iotctl)")
	}
	if shardIndexSet {
		return cmdutil.Usagef("--shard-index is for one process: the pods of --k8s-job take theirs from %s", simulate.JobCompletionIndexEnv)
	}
	return nil
}

// printJob writes the Job manifest of the command whose flags are
// local and inherited to out, and warnings about files to errOut.
func (o *simulateOptions) printJob(local, inherited *pflag.FlagSet, out, errOut io.Writer) error {
	k := &o.k8s
	port := simulate.DefaultMetricsPort
	metricsAddr := ":" + strconv.Itoa(port)
	if o.metrics.addr != "" {
		_, p, _ := net.SplitHostPort(o.metrics.addr)
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return cmdutil.Usagef("--metrics-addr %q: with --k8s-job give a port from 1 to 65535 (the pods' metrics port)", o.metrics.addr)
		}
		port, metricsAddr = n, ":"+p
	}
	args := []string{"device", "simulate"}
	needSecret := ""
	var files []string
	carry := func(fl *pflag.Flag) {
		if !fl.Changed || notCarried[fl.Name] {
			return
		}
		if env, ok := secretFlags[fl.Name]; ok {
			needSecret = env
			return
		}
		for _, f := range fileFlags {
			if fl.Name == f {
				files = append(files, "--"+fl.Name+" "+fl.Value.String())
			}
		}
		if sv, ok := fl.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				args = append(args, "--"+fl.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+fl.Name+"="+fl.Value.String())
	}
	local.VisitAll(carry)
	inherited.VisitAll(carry)
	if needSecret != "" && k.secret == "" {
		return cmdutil.Usagef("--k8s-job: the pods need the connection string, and the manifest never holds one: put it in a Secret (kubectl create secret generic iotctl-fleet --from-literal=%s=...) and pass --k8s-secret iotctl-fleet", needSecret)
	}
	args = append(args, "--shards="+strconv.Itoa(o.shards.count), "--metrics-addr="+metricsAddr)
	tr, err := device.ParseTransport(o.conn.transportName)
	if err != nil {
		return cmdutil.Usagef("--transport %q: use mqtt, amqp or https", o.conn.transportName)
	}
	j := &simulate.Job{
		Name: simulate.JobName(o.prefix), Image: k.image, Args: args, Secret: k.secret,
		Shards: o.shards.count, Devices: o.shards.total, MetricsPort: port,
		PerDevice: simulate.PeakPerDevice(tr, o.telemetryOnly),
	}
	b, err := j.Manifest()
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		fmt.Fprintf(errOut, "note: the pods read %s at that path: put the file in the image or mount it there\n", f)
	}
	_, err = out.Write(b)
	return err
}
