package interop

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoEventHubsSDK runs the tests of the nested module
// test/interop/goeventhubs (the official Go Event Hubs SDK against the
// local hub), so that `go test ./...` at the repository root, which
// does not enter nested modules, covers them too. The nested module
// keeps azeventhubs' go-amqp out of the main go.mod.
func TestGoEventHubsSDK(t *testing.T) {
	skipIfAsked(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH, so the nested module test/interop/goeventhubs cannot run: %v", err)
	}
	args := []string{"test", "-count=1"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./...")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = filepath.Join(dir(), "goeventhubs")
	out, err := cmd.CombinedOutput()
	t.Logf("go %v in %s:\n%s", args, cmd.Dir, out)
	if err != nil {
		if strings.Contains(string(out), "go mod tidy") {
			t.Fatalf("the nested module's go.mod is behind the main module's requirements (it uses this module through a replace): run 'go mod tidy' in %s and commit its go.mod and go.sum", cmd.Dir)
		}
		t.Fatalf("the Go Event Hubs SDK tests failed: %v", err)
	}
}
