package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// RepoRoot is the nearest directory at or above the working directory
// that holds a go.mod: the repository root when a benchmark runs with
// `go run ./bench/...` from anywhere inside it. With no go.mod above, it
// is the working directory.
func RepoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return wd
}

// Build builds the iotctl command of this repository (RepoRoot) into
// dir/iotctl and returns that path. Cancelling ctx kills the build. Its
// error carries the compiler's output.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "iotctl")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}
