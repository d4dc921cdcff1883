package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// nodeFleet is node_amqp.js running the Node SDK devices.
type nodeFleet struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan nodeLine
	keys  string
	cpu0  time.Duration
	ready int
}

// nodeLine is one line node_amqp.js prints.
type nodeLine struct {
	Type      string  `json:"type"`
	Connected int     `json:"connected"`
	Acked     int64   `json:"acked"`
	Errors    int64   `json:"errors"`
	SendS     float64 `json:"sendS"`
	Message   string  `json:"message"`
}

// startNodeFleet creates the Node devices and starts node_amqp.js,
// which opens them; they send for dur once start is called.
func startNodeFleet(ctx context.Context, h *benchkit.Hub, interop string, dur time.Duration) (*nodeFleet, error) {
	ids := simulate.FleetIDs("node-", nodeOpts.devices)
	keys, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "amqpdev-node-keys-*.txt")
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriter(f)
	for i, id := range ids {
		fmt.Fprintf(w, "%s %s\n", id, keys[i])
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	cfg, _ := json.Marshal(map[string]any{"host": h.Info.HostName, "keysFile": f.Name(), "devices": nodeOpts.devices,
		"window": nodeOpts.window, "durationS": dur.Seconds()})
	cmd := exec.CommandContext(ctx, "node", filepath.Join(benchkit.RepoRoot(), "bench", "amqpdev", "node_amqp.js"), string(cfg))
	cmd.Env = benchkit.CleanEnv("NODE_EXTRA_CA_CERTS="+h.Info.CAFile, "NODE_PATH="+filepath.Join(interop, "node_modules"))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	n := &nodeFleet{cmd: cmd, stdin: stdin, lines: make(chan nodeLine, 16), keys: f.Name()}
	go func() {
		defer close(n.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var l nodeLine
			if json.Unmarshal(sc.Bytes(), &l) != nil {
				continue
			}
			if l.Type == "error" {
				fmt.Fprintln(os.Stderr, "node device error:", l.Message)
				continue
			}
			n.lines <- l
		}
	}()
	return n, nil
}

// next returns the fleet's next line of type typ.
func (n *nodeFleet) next(typ string) (nodeLine, error) {
	for l := range n.lines {
		if l.Type == typ {
			return l, nil
		}
	}
	return nodeLine{}, fmt.Errorf("node_amqp.js ended before it printed %q (its errors are above)", typ)
}

// waitReady waits until node_amqp.js opened its devices.
func (n *nodeFleet) waitReady() error {
	l, err := n.next("ready")
	if err != nil {
		return err
	}
	n.ready = l.Connected
	if n.ready < nodeOpts.devices {
		return fmt.Errorf("%d of %d Node SDK devices opened (their errors are above)", n.ready, nodeOpts.devices)
	}
	return nil
}

// start lets the Node devices send.
func (n *nodeFleet) start() error {
	n.cpu0 = benchkit.CPUTime(n.cmd.Process.Pid)
	_, err := io.WriteString(n.stdin, "go\n")
	return err
}

// wait returns node_amqp.js's summary once its devices stopped sending.
func (n *nodeFleet) wait() (nodeLine, error) { return n.next("summary") }

// cpu is the CPU time node took since start.
func (n *nodeFleet) cpu() time.Duration { return benchkit.CPUTime(n.cmd.Process.Pid) - n.cpu0 }

// stop ends node_amqp.js and removes its keys file.
func (n *nodeFleet) stop() {
	benchkit.Stop(n.cmd, 10*time.Second)
	os.Remove(n.keys)
}
