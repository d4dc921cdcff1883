package cmd_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd"
)

// TestDemoBinary runs iotctl as its own process, as a user would, and
// checks the quickstart's story: the 200 answer and the new interval.
// The process is this test binary, made iotctl by TestMain.
func TestDemoBinary(t *testing.T) {
	t.Parallel() // no t.Setenv: its own process, its own environment
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	demo := exec.Command(bin, "demo", "--interval", "200ms", "--invoke-after", "1s", "--payload", "1")
	demo.Env = append(os.Environ(), cmd.TestAsIotctl+"=1", "XDG_CONFIG_HOME="+t.TempDir())
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("iotctl demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		"Created device MyGoDevice",
		"Sending message: {\"temperature\": ",
		"Device Method name       : SetTelemetryInterval",
		"Device Method payload    : 1",
		"Response status          : 200",
		`Response payload         : {"Response":"Executed direct method SetTelemetryInterval"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	m := regexp.MustCompile(`the last messages were ([0-9.]+)s apart \(([0-9.]+)s before`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("output does not show the interval change:\n%s", text)
	}
	gap, _ := strconv.ParseFloat(m[1], 64)
	// The device waits the new interval (1 s, from 200 ms) after its
	// last message; a slow machine can only make the gap longer.
	if gap < 0.95 {
		t.Errorf("messages after the method were %.1fs apart; want the new 1s interval:\n%s", gap, text)
	}
}
