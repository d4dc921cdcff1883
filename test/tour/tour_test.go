// Package tour runs the README's five-minute tour, line for line,
// against a local hub started as the README says, so the README cannot
// rot.
package tour

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tourBlock extracts the shell block between the tour markers.
func tourBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "<!-- tour:start -->")
	end := strings.Index(s, "<!-- tour:end -->")
	if start < 0 || end < start {
		t.Fatal("README.md has no tour:start/tour:end block")
	}
	block := s[start:end]
	block = block[strings.Index(block, "```sh\n")+len("```sh\n"):]
	return block[:strings.LastIndex(block, "```")]
}

func TestReadmeTour(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "iotctl"), ".")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	home := filepath.Join(tmp, "home")
	env := []string{"HOME=" + home, "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "IOTCTL_") && !strings.HasPrefix(kv, "XDG_") {
			env = append(env, kv)
		}
	}

	// Terminal 1: the hub (on a free port instead of 8443, so tests can
	// run side by side; env.sh carries the real address).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := exec.CommandContext(ctx, filepath.Join(bin, "iotctl"), "hub", "serve", "--addr", "127.0.0.1:0")
	serve.Env = env
	var serveOut bytes.Buffer
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = serve.Process.Signal(os.Interrupt)
		_ = serve.Wait()
	}()
	envFile := filepath.Join(home, ".local", "share", "iotctl", "hub", "env.sh")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(envFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub serve wrote no %s:\n%s", envFile, serveOut.String())
		}
		<-time.After(50 * time.Millisecond)
	}

	// Terminal 2: the README's lines, as they are.
	script := "set -eu -o pipefail\n" + tourBlock(t)
	tour := exec.CommandContext(ctx, "bash", "-c", script)
	tour.Env = env
	tour.Dir = tmp
	out, err := tour.CombinedOutput()
	if err != nil {
		t.Fatalf("the README tour failed: %v\n%s\nhub:\n%s", err, out, serveOut.String())
	}
	for _, want := range []string{"Response status          : 200", `{"Response":"Invalid parameter"}`, "exit code 8", "MyGoDevice",
		"feedback\tSuccess", `"type":"event","deviceId":"MyGoDevice"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the tour's output lacks %q:\n%s", want, out)
		}
	}
	log, _ := os.ReadFile(filepath.Join(tmp, "simulate.log"))
	if !strings.Contains(string(log), "Sending message: ") {
		t.Errorf("simulate.log has no sent messages:\n%s", log)
	}
}
