package interop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub"
)

// The official Azure Python SDKs (azure-eventhub with its pure-Python
// AMQP stack, azure-iot-device over MQTT) run from a virtual
// environment the tests make themselves, as npm ci installs the Node
// SDKs: python/requirements.txt pins every package, and the environment
// lives in the user cache directory under a name that carries a hash of
// that file, so a changed pin makes a new one.

// minPython is the oldest Python the pinned packages support
// (azure-eventhub 5.15 requires 3.9 or newer).
const minPython = "3.9"

var (
	pyOnce sync.Once
	pyPath string
	pyErr  error
)

// requirePython returns the path of the interpreter of the virtual
// environment that holds python/requirements.txt, making it once per
// process when it is missing. It skips only with IOTCTL_SKIP_INTEROP=1;
// without a usable Python 3 or a reachable package index it fails,
// saying what to install or what pip answered.
func requirePython(t *testing.T) string {
	t.Helper()
	skipIfAsked(t)
	pyOnce.Do(func() { pyPath, pyErr = pythonVenv() })
	if pyErr != nil {
		t.Fatal(pyErr)
	}
	return pyPath
}

// pythonVenv makes (or finds) the virtual environment for
// requirements.txt and returns its interpreter.
func pythonVenv() (string, error) {
	req := filepath.Join(dir(), "python", "requirements.txt")
	b, err := os.ReadFile(req)
	if err != nil {
		return "", fmt.Errorf("reading the Python requirements: %w", err)
	}
	sum := sha256.Sum256(b)
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory for the Python virtual environment (set XDG_CACHE_HOME or HOME): %w", err)
	}
	root := filepath.Join(cache, "iotctl-interop")
	venv := filepath.Join(root, "venv-"+hex.EncodeToString(sum[:8]))
	if venvReady(venv) == nil {
		return venvPython(venv), nil
	}
	base, err := findPython()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("creating %s for the Python virtual environment: %w", root, err)
	}
	// The environment is built under a temporary name and renamed into
	// place once complete, so another test process never sees half of
	// one. Renaming keeps it usable: the interpreter finds its
	// site-packages from its own location (pyvenv.cfg), and the tests
	// run nothing else from it.
	tmp, err := os.MkdirTemp(root, "building-")
	if err != nil {
		return "", fmt.Errorf("creating a directory for the Python virtual environment: %w", err)
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, base, "-m", "venv", tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s -m venv %s failed (on Debian or Ubuntu, apt-get install python3-venv): %v\n%s", base, tmp, err, out)
	}
	pip := exec.CommandContext(ctx, venvPython(tmp), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r", req)
	if out, err := pip.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pip install -r %s failed; is the package index (PyPI, or PIP_INDEX_URL) reachable? %v\n%s", req, err, tail(out, 40))
	}
	if err := venvReady(tmp); err != nil {
		return "", fmt.Errorf("the Python virtual environment lacks the SDKs after pip install: %w", err)
	}
	if err := os.RemoveAll(venv); err != nil {
		return "", fmt.Errorf("removing the unusable Python virtual environment %s: %w", venv, err)
	}
	if err := os.Rename(tmp, venv); err != nil {
		if venvReady(venv) == nil { // another process got there first
			return venvPython(venv), nil
		}
		return "", fmt.Errorf("moving the Python virtual environment into place: %w", err)
	}
	return venvPython(venv), nil
}

func venvPython(venv string) string { return filepath.Join(venv, "bin", "python") }

// venvReady checks that the environment's interpreter runs and imports
// both SDKs.
func venvReady(venv string) error {
	out, err := exec.Command(venvPython(venv), "-c", "import azure.eventhub, azure.iot.device, azure.storage.blob").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, tail(out, 10))
	}
	return nil
}

// findPython returns the first interpreter on PATH that is Python
// minPython or newer with the venv module and ensurepip (which Debian
// ships apart, in python3-venv).
func findPython() (string, error) {
	check := fmt.Sprintf("import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (%s,) else 3)", strings.ReplaceAll(minPython, ".", ", "))
	var tried []string
	for _, name := range []string{"python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		out, err := exec.Command(p, "-c", check).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return p, nil
		case errors.As(err, &ee) && ee.ExitCode() == 3:
			tried = append(tried, p+": older than Python "+minPython)
		case strings.Contains(string(out), "ensurepip") || strings.Contains(string(out), "venv"):
			tried = append(tried, p+": no venv module or ensurepip")
		default:
			tried = append(tried, fmt.Sprintf("%s: %v %s", p, err, tail(out, 3)))
		}
	}
	if len(tried) == 0 {
		tried = append(tried, "no python3 or python on PATH")
	}
	return "", fmt.Errorf("no usable Python %s or newer with venv for the Python interoperability tests (%s): install Python 3 with its venv module (Debian or Ubuntu: apt-get install python3 python3-venv), or set IOTCTL_SKIP_INTEROP=1",
		minPython, strings.Join(tried, "; "))
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// newPythonEnv is a hub for the Python tests: the venv first, then a
// hub of the test's own.
func newPythonEnv(t *testing.T, opts hub.Options) (*env, string) {
	t.Helper()
	py := requirePython(t)
	return startHub(t, opts), py
}

// pythonCmd runs a script of python/ with the venv's interpreter,
// unbuffered.
func pythonCmd(ctx context.Context, py, script string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, py, append([]string{"-u", filepath.Join(dir(), "python", script)}, args...)...)
	cmd.Dir = filepath.Join(dir(), "python")
	return cmd
}

// pyLines runs a script to its end and returns the JSON objects it
// printed, one per line, and its last line's "result" or "error".
func pyLines(t *testing.T, py, script string, args ...string) (lines []map[string]any, result map[string]any, perr map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := pythonCmd(ctx, py, script, args...).Output()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			lines = append(lines, m)
		}
	}
	if len(lines) > 0 {
		last := lines[len(lines)-1]
		result, _ = last["result"].(map[string]any)
		perr, _ = last["error"].(map[string]any)
	}
	if result == nil && perr == nil { // it failed before it could say why
		t.Fatalf("python %s %s ended without a result or an error (%v)\nstdout: %s\nstderr: %s", script, op(args), err, out, stderrOf(err))
	}
	return lines, result, perr
}

// op is what a script was asked to do, for failure messages: its
// arguments without the first (a connection string).
func op(args []string) string {
	if len(args) < 2 {
		return ""
	}
	return strings.Join(args[1:], " ")
}

// startPython starts a script of python/ beside the test (see
// startScript).
func startPython(t *testing.T, py, script string, args ...string) *scriptProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	return startScript(t, pythonCmd(ctx, py, script, args...), cancel, "python "+script)
}

// Without a usable python3 on PATH the helper fails and says what to
// install; an interpreter too old for the pins is named as such.
func TestFindPythonSaysWhatToInstall(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	if p, err := findPython(); err == nil || !strings.Contains(err.Error(), "no python3 or python on PATH") ||
		!strings.Contains(err.Error(), "apt-get install python3 python3-venv") {
		t.Errorf("findPython() with an empty PATH = %q, %v; want an error saying to install python3 and python3-venv", p, err)
	}
	old := filepath.Join(empty, "python3")
	if err := os.WriteFile(old, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := findPython(); err == nil || !strings.Contains(err.Error(), old+": older than Python "+minPython) {
		t.Errorf("findPython() with only an old python3 = %q, %v; want an error naming it as too old", p, err)
	}
}

// When pip cannot reach the package index the helper fails, says so
// and shows what pip answered.
func TestPythonVenvWithoutIndex(t *testing.T) {
	skipIfAsked(t)
	if _, err := findPython(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("PIP_INDEX_URL", "http://127.0.0.1:1/simple")
	t.Setenv("PIP_RETRIES", "0")
	t.Setenv("PIP_NO_CACHE_DIR", "1")
	_, err := pythonVenv()
	if err == nil || !strings.Contains(err.Error(), "is the package index (PyPI, or PIP_INDEX_URL) reachable?") ||
		!strings.Contains(err.Error(), "azure-core") {
		t.Errorf("pythonVenv() with an unreachable index: %v; want an error that says so and shows pip's answer", err)
	}
}
