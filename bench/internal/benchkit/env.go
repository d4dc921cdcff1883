package benchkit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/iotctl/iotctl/internal/nodemodules"
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

// NodeReady checks that node is on PATH and that the pinned packages of
// dir (module among them) are installed, running `npm ci` in dir when
// one is missing. Cancelling ctx kills npm.
func NodeReady(ctx context.Context, dir, module string) error {
	if err := nodemodules.Ensure(ctx, dir); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(module))); err != nil {
		return fmt.Errorf("%s is not among the packages of %s/package.json", module, dir)
	}
	return nil
}
