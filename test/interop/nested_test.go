package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestGoEventHubsSDK runs the tests of the nested module
// test/interop/goeventhubs (the official Go Event Hubs SDK against the
// local hub), so that `go test ./...` at the repository root, which
// does not enter nested modules, covers them too. The nested module
// keeps azeventhubs' go-amqp out of the main go.mod.
func TestGoEventHubsSDK(t *testing.T) {
	if os.Getenv("IOTCTL_SKIP_INTEROP") == "1" {
		t.Skip("IOTCTL_SKIP_INTEROP=1")
	}
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
		t.Fatalf("the Go Event Hubs SDK tests failed: %v", err)
	}
}
