package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/service"
)

// HubOptions say how StartHub runs `iotctl hub serve`. A nil
// *HubOptions means the zero value, every field at its default.
type HubOptions struct {
	// DataDir is the hub's --data-dir, where it keeps its registry and
	// its telemetry on disk. Default: empty, --in-memory.
	DataDir string

	// Addr is the MQTT listener's address (--addr).
	// Default: "127.0.0.1:0", a free loopback port.
	Addr string

	// StandardPorts adds --standard-ports: HTTPS on 443 and AMQP on
	// 5671 of Addr's host (root or CAP_NET_BIND_SERVICE).
	// Default: false (free ports).
	StandardPorts bool

	// HostName is --host-name, the host the hub's connection strings
	// name. Default: empty, the hub's own default.
	HostName string

	// SANs are added to the hub's certificate, one --san each.
	// Default: none.
	SANs []string

	// Env is the hub's environment. Default (nil): this process's.
	Env []string

	// Stderr receives the hub's log (it runs with --log-level error).
	// Default (nil): kept in memory, and added to StartHub's error when
	// the hub does not start.
	Stderr io.Writer

	// PprofAddr is --pprof-addr: where the hub serves Go's runtime
	// profiles (HubInfo.PprofAddress has the address it took).
	// Default: empty, no profiles.
	PprofAddr string

	// MetricsAddr is --metrics-addr: where the hub serves its
	// Prometheus metrics (HubInfo.MetricsURL has the address it took).
	// Default: empty, none.
	MetricsAddr string

	// StopWait is how long Stop waits after interrupting the hub
	// before it kills it. Default: 5s.
	StopWait time.Duration
}

// HubInfo is the start-up JSON of `iotctl hub serve -o json`.
type HubInfo struct {
	HostName         string   `json:"hostName"`
	Addresses        []string `json:"addresses"` // the MQTT listener first
	CAFile           string   `json:"caFile"`
	ConnectionString string   `json:"connectionString"` // iothubowner
	EventHub         string   `json:"eventHubConnectionString"`
	PprofAddress     string   `json:"pprofAddress"` // with HubOptions.PprofAddr
	MetricsURL       string   `json:"metricsUrl"`   // with HubOptions.MetricsAddr
}

// Hub is a running `iotctl hub serve`. Its methods are safe to call
// from one goroutine at a time.
type Hub struct {
	// Info is what the hub printed when it started.
	Info HubInfo

	cmd      *exec.Cmd
	stopWait time.Duration
}

// StartHub starts bin as `iotctl hub serve --in-memory -o json
// --log-level error` (--data-dir instead of --in-memory with DataDir) with the listeners opts asks for, and returns once
// the hub has printed its start-up JSON. Cancelling ctx kills the hub;
// call Stop when done. When the hub does not start, StartHub stops it
// and its error says so, with the hub's stderr unless opts.Stderr took
// it.
func StartHub(ctx context.Context, bin string, opts *HubOptions) (*Hub, error) {
	var o HubOptions
	if opts != nil {
		o = *opts
	}
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.StopWait == 0 {
		o.StopWait = 5 * time.Second
	}
	args := []string{"hub", "serve", "--addr", o.Addr}
	if o.StandardPorts {
		args = append(args, "--standard-ports")
	}
	if o.HostName != "" {
		args = append(args, "--host-name", o.HostName)
	}
	for _, san := range o.SANs {
		args = append(args, "--san", san)
	}
	if o.DataDir != "" {
		args = append(args, "--data-dir", o.DataDir)
	} else {
		args = append(args, "--in-memory")
	}
	if o.PprofAddr != "" {
		args = append(args, "--pprof-addr", o.PprofAddr)
	}
	if o.MetricsAddr != "" {
		args = append(args, "--metrics-addr", o.MetricsAddr)
	}
	args = append(args, "-o", "json", "--log-level", "error")

	h := &Hub{cmd: exec.CommandContext(ctx, bin, args...), stopWait: o.StopWait}
	h.cmd.Env = o.Env
	var errOut bytes.Buffer
	h.cmd.Stderr = o.Stderr
	if o.Stderr == nil {
		h.cmd.Stderr = &errOut
	}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := h.cmd.Start(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(out)
	if err := json.NewDecoder(br).Decode(&h.Info); err != nil {
		h.Stop()
		if o.Stderr == nil {
			return nil, fmt.Errorf("reading the hub's start-up JSON: %w\n%s", err, errOut.String())
		}
		return nil, fmt.Errorf("reading the hub's start-up JSON: %w", err)
	}
	go io.Copy(io.Discard, br)
	return h, nil
}

// PID is the hub's process id.
func (h *Hub) PID() int { return h.cmd.Process.Pid }

// Stop interrupts the hub as Ctrl-C would and waits for it to exit,
// killing it after HubOptions.StopWait.
func (h *Hub) Stop() { Stop(h.cmd, h.stopWait) }

// CreateDevices registers ids on h through the service API (pkg/service),
// 32 at a time, and returns their primary keys in the order of ids.
func (h *Hub) CreateDevices(ctx context.Context, ids []string) ([]string, error) {
	cs, err := connstr.Parse(h.Info.ConnectionString)
	if err != nil {
		return nil, err
	}
	svc, err := service.New(cs, &service.Options{CAFile: h.Info.CAFile})
	if err != nil {
		return nil, err
	}
	defer svc.Close()
	keys := make([]string, len(ids))
	err = Parallel(len(ids), 32, func(i int) error {
		d, err := svc.CreateDevice(ctx, &service.Device{DeviceID: ids[i]})
		if err != nil {
			return fmt.Errorf("creating %s: %w", ids[i], err)
		}
		keys[i] = d.Authentication.SymmetricKey.PrimaryKey
		return nil
	})
	return keys, err
}
