package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CleanEnv is this process's environment without iotctl's settings
// (IOTCTL_*), proxies (*_PROXY, any case) or NODE_OPTIONS, with extra
// ("KEY=value") appended: what a benchmark gives the clients it times.
func CleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "IOTCTL_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") || k == "NODE_OPTIONS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// NodeReady checks that node is on PATH and, when dir/node_modules has
// no module (a slash-separated name such as "@azure/event-hubs"), runs
// `npm ci` in dir to install the pinned SDKs. Cancelling ctx kills npm.
func NodeReady(ctx context.Context, dir, module string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not on PATH: install Node.js 20 or newer")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(module))); err == nil {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return nil
}
