package cmd_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
	hubsrv "github.com/iotctl/iotctl/pkg/hub"
)

// complete runs cobra's hidden __complete command as a shell's
// completion script does and returns the offered words.
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cmd.Execute(context.Background(), append([]string{"__complete"}, args...), &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, errOut.String())
	}
	var words []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, ":") {
			w, _, _ := strings.Cut(l, "\t")
			words = append(words, w)
		}
	}
	return words
}

func isolate(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "IOTCTL_") {
			t.Setenv(k, "")
		}
	}
}

func TestCompleteFlagWords(t *testing.T) {
	isolate(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"hub", "device", "list", "-o", ""}, "table json yaml"},
		{[]string{"hub", "query", "x", "-o", ""}, "table json yaml ndjson"},
		{[]string{"hub", "device", "create", "d", "--auth", ""}, "sas x509-thumbprint x509-ca"},
		{[]string{"hub", "monitor", "--from", ""}, "start now"},
		{[]string{"hub", "monitor", "--properties", ""}, "app sys anno all"},
		{[]string{"hub", "c2d", "send", "--ack", ""}, "none positive negative full"},
		{[]string{"hub", "device", "renew-key", "d", "--key-type", ""}, "primary secondary both swap"},
		{[]string{"hub", "sas", "--key-type", ""}, "primary"},
		{[]string{"device", "send", "--qos", ""}, "0 1"},
		{[]string{"device", "send", "--transport", ""}, "mqtt amqp https"},
		{[]string{"device", "simulate", "--transport", ""}, "mqtt amqp https"},
		{[]string{"device", "simulate", "--c2d-settle", ""}, "complete reject abandon"},
		{[]string{"--log-level", ""}, "debug info warn error"},
	} {
		if got := strings.Join(complete(t, tt.args...), " "); got != tt.want {
			t.Errorf("complete %q = %q; want %q", tt.args, got, tt.want)
		}
	}
	// The scripts of shells that show no descriptions run
	// __completeNoDesc: it completes flag values too.
	var out, errOut bytes.Buffer
	args := []string{"__completeNoDesc", "hub", "monitor", "--from", ""}
	code := cmd.Execute(context.Background(), args, &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if lines := strings.Split(out.String(), "\n"); code != 0 || len(lines) < 2 || lines[0] != "start" || lines[1] != "now" {
		t.Errorf("%q: exit %d stdout %q stderr %q; want start and now", args, code, out.String(), errOut.String())
	}
}

func TestCompleteDeviceIDs(t *testing.T) {
	isolate(t)
	h := hubsrv.New(&hubsrv.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	for _, id := range []string{"alpha", "alpine", "beta"} {
		if err := h.CreateDevice(id); err != nil {
			t.Fatal(err)
		}
	}
	cs, _ := h.ServiceConnectionString("iothubowner")
	t.Setenv("IOTCTL_CONNECTION_STRING", cs)
	t.Setenv("IOTCTL_CA_FILE", h.CAFile())
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"hub", "device", "show", ""}, "alpha alpine beta"},
		{[]string{"hub", "device", "show", "alp"}, "alpha alpine"},
		{[]string{"hub", "twin", "show", "b"}, "beta"},
		{[]string{"method", "invoke", "--device-id", "al"}, "alpha alpine"},
		{[]string{"hub", "device", "show", "alpha", ""}, ""},
	} {
		if got := strings.Join(complete(t, tt.args...), " "); got != tt.want {
			t.Errorf("complete %q = %q; want %q", tt.args, got, tt.want)
		}
	}
	// Without a hub, nothing is offered, quickly.
	t.Setenv("IOTCTL_CONNECTION_STRING", "")
	if got := complete(t, "hub", "device", "show", ""); len(got) != 0 {
		t.Errorf("complete without a hub = %q; want nothing", got)
	}
}
