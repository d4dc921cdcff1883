package hub_test

import (
	"context"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	hubsrv "github.com/iotctl/iotctl/pkg/hub"
)

// --pprof-addr that cannot be bound is a usage error, found when serve
// runs (the flag refusals found before are tested through runF).
func TestServeTelemetryFlagErrorsExit3(t *testing.T) {
	t.Parallel() // no t.Setenv: see certRun
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--pprof-addr", "127.0.0.1:notaport"}, []string{"--pprof-addr 127.0.0.1:notaport", "give a free host:port"}},
	} {
		args := append([]string{"hub", "serve", "--addr", "127.0.0.1:0", "--in-memory"}, tc.args...)
		code, _, stderr := certRun(t, nil, args...)
		if code != cmdutil.ExitUsage {
			t.Errorf("hub serve %v: exit %d; want %d (stderr %q)", tc.args, code, cmdutil.ExitUsage, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("hub serve %v: stderr %q does not say %q", tc.args, stderr, w)
			}
		}
	}
}

// A data dir's telemetry log keeps its partition count: serving it with
// another is a usage error that names both and the way out.
func TestServeOtherPartitionCountExit3(t *testing.T) {
	t.Parallel() // no t.Setenv: see certRun
	dir := t.TempDir()
	h := hubsrv.New(&hubsrv.Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := certRun(t, nil, "hub", "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--partitions", "8")
	if code != cmdutil.ExitUsage || !strings.Contains(stderr, "--partitions 8") || !strings.Contains(stderr, "4 partitions, not 8") {
		t.Errorf("hub serve --partitions 8 on a dir made with 4: exit %d, stderr %q; want 3 naming both", code, stderr)
	}
}
