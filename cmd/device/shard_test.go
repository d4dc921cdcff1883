package device

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/clitest"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// childArgsEnv, when set in the environment of this test binary, makes
// it run `device simulate` with the JSON array of arguments it holds,
// instead of the tests, and exit with the command's code: a shard
// process of TestShardProcessesCoverTheFleet.
const childArgsEnv = "IOTCTL_TEST_SIMULATE_CHILD_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgsEnv); raw != "" {
		os.Exit(runChild(raw))
	}
	os.Exit(clitest.Main(m))
}

func runChild(raw string) int {
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "child arguments:", err)
		return 1
	}
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	root := &cobra.Command{Use: "iotctl", SilenceErrors: true, SilenceUsage: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return f.Load(cmd) }}
	root.PersistentFlags().StringP(cmdutil.KeyOutput, "o", "table", "")
	root.PersistentFlags().String(cmdutil.KeyConfig, "", "")
	root.AddCommand(newCmdSimulate(f, nil))
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "iotctl:", err)
	}
	return cmdutil.ExitCode(err)
}

// Four shard processes of one fleet of 10 devices, started at once
// against the in-process hub: the devices they simulate, put together,
// are the fleet's, each in exactly one process; the same when each
// process takes its index from JOB_COMPLETION_INDEX, as in the pods of
// a Kubernetes Indexed Job.
func TestShardProcessesCoverTheFleet(t *testing.T) {
	t.Parallel()
	h, svc := startHub(t)
	const devices, shards = 10, 4
	fleet := simulate.FleetIDs("sim-", devices)
	for _, mode := range []string{"--shard-index", simulate.JobCompletionIndexEnv} {
		t.Run(mode, func(t *testing.T) {
			got := make([][]string, shards)
			var wg sync.WaitGroup
			for i := range shards {
				wg.Add(1)
				go func() {
					defer wg.Done()
					args := []string{"simulate", "--devices", strconv.Itoa(devices), "--shards", strconv.Itoa(shards),
						"--hub-connection-string", svc, "--ca-file", h.CAFile(), "--count", "1", "-o", "json"}
					env := []string{}
					if mode == "--shard-index" {
						args = append(args, "--shard-index", strconv.Itoa(i))
					} else {
						env = append(env, simulate.JobCompletionIndexEnv+"="+strconv.Itoa(i))
					}
					got[i] = shardProcess(t, args, env)
				}()
			}
			wg.Wait()
			seen := map[string]int{}
			var union []string
			for i, ids := range got {
				if len(ids) < devices/shards || len(ids) > devices/shards+1 {
					t.Errorf("shard %d simulated %d devices %q; want %d or %d", i, len(ids), ids, devices/shards, devices/shards+1)
				}
				for _, id := range ids {
					seen[id]++
				}
				union = append(union, ids...)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s was simulated by %d shards; want 1", id, n)
				}
			}
			slices.Sort(union)
			if !slices.Equal(union, fleet) {
				t.Errorf("the shards simulated %q; want the fleet %q", union, fleet)
			}
		})
	}
}

// shardProcess runs `device simulate args` in a process of its own
// with only env (and a home of its own) in its environment, and returns
// the ids of the devices whose message was acknowledged, checking that
// its summary counts as many devices.
func shardProcess(t *testing.T, args, env []string) []string {
	raw, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(env, childArgsEnv+"="+string(raw), "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "PATH="+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("shard process %v: %v; stderr:\n%s", env, err, stderr.String())
		return nil
	}
	var ids []string
	devices := -1
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var e struct {
			Type     string          `json:"type"`
			DeviceID string          `json:"deviceId"`
			Stats    *simulate.Stats `json:"stats"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("shard process stdout line %q is not JSON: %v", line, err)
			continue
		}
		switch e.Type {
		case simulate.EventSent:
			ids = append(ids, e.DeviceID)
		case simulate.EventError:
			t.Errorf("shard process error event: %s", line)
		case simulate.EventSummary:
			devices = e.Stats.Devices
		}
	}
	if devices != len(ids) {
		t.Errorf("shard process summary counts %d devices; %d sent a message (%q)", devices, len(ids), ids)
	}
	return ids
}

// Bad shard and metrics flags exit 3 with a message that names the
// flag and the way out, before anything connects.
func TestFleetScaleUsageErrorsExit3(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte("a c2VjcmV0\nb c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := []string{"simulate", "--devices", "3", "--hub-connection-string", serviceCS}
	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"shards of one device", []string{"simulate", "--connection-string", deviceCS, "--shards", "2", "--shard-index", "0"}, "", "give --devices N"},
		{"no index", append(fleet, "--shards", "2"), "", "give --shard-index (0 to 1), or run it in a Kubernetes Indexed Job"},
		{"index out of range", append(fleet, "--shards", "2", "--shard-index", "2"), "", `--shard-index "2": want a number from 0 to 1`},
		{"bad env index", append(fleet, "--shards", "2"), "two", `JOB_COMPLETION_INDEX "two"`},
		{"more shards than devices", append(fleet, "--shards", "4", "--shard-index", "0"), "", "use at most 3 shards"},
		{"more shards than keys", []string{"simulate", "--keys-file", keys, "--host", "h.example", "--shards", "3", "--shard-index", "0"}, "", "use at most 2 shards"},
		{"zero shards", append(fleet, "--shards", "0"), "", `--shards "0": must be at least 1`},
		{"metrics address without a port", append(fleet, "--metrics-addr", "9090"), "", `--metrics-addr "9090": want HOST:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(simulate.JobCompletionIndexEnv, tt.env)
			code, stdout, stderr := execute(t, "", func(f *cmdutil.Factory) *cobra.Command {
				return newCmdSimulate(f, func(*simulateOptions) error { t.Error("ran despite a usage error"); return nil })
			}, tt.args...)
			if code != cmdutil.ExitUsage || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("iotctl %q: code %d stdout %q stderr %q; want 3 and %q", tt.args, code, stdout, stderr, tt.want)
			}
		})
	}
}
