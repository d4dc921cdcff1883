package benchkit

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestMedianAndPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name     string
		in       []time.Duration
		median   time.Duration
		p0, p90  time.Duration
		p100     time.Duration
		unsorted bool
	}{
		{"empty", nil, 0, 0, 0, 0, false},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, false},
		{"odd, unsorted", ms(5, 1, 3), 3 * time.Millisecond, 1 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond, true},
		{"even: mean of the middle two", ms(4, 1, 2, 3), 2500 * time.Microsecond, 1 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond, true},
		{"21 runs: p90 at index 18", ms(21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1),
			11 * time.Millisecond, 1 * time.Millisecond, 19 * time.Millisecond, 21 * time.Millisecond, true},
	}
	for _, tt := range tests {
		before := append([]time.Duration(nil), tt.in...)
		if got := Median(tt.in); got != tt.median {
			t.Errorf("%s: Median(%v) = %v; want %v", tt.name, tt.in, got, tt.median)
		}
		for _, p := range []struct {
			pct  int
			want time.Duration
		}{{0, tt.p0}, {90, tt.p90}, {100, tt.p100}} {
			if got := Percentile(tt.in, p.pct); got != p.want {
				t.Errorf("%s: Percentile(%v, %d) = %v; want %v", tt.name, tt.in, p.pct, got, p.want)
			}
		}
		for i := range before {
			if tt.in[i] != before[i] {
				t.Errorf("%s: Median or Percentile reordered their argument: %v; was %v", tt.name, tt.in, before)
				break
			}
		}
	}
}

func TestParallelRunsEveryIndexOnce(t *testing.T) {
	const n = 1000
	var seen [n]atomic.Int32
	var running, most atomic.Int32
	err := Parallel(n, 7, func(i int) error {
		r := running.Add(1)
		for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
		}
		seen[i].Add(1)
		running.Add(-1)
		return nil
	})
	if err != nil {
		t.Fatalf("Parallel(%d, 7, ok) = %v; want nil", n, err)
	}
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Fatalf("Parallel(%d, 7, f) called f(%d) %d times; want once", n, i, c)
		}
	}
	if m := most.Load(); m > 7 {
		t.Errorf("Parallel(%d, 7, f) ran %d calls at once; want at most 7", n, m)
	}
}

func TestParallelReturnsTheFirstErrorAndStops(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	err := Parallel(1000, 1, func(i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Parallel with f(3) failing = %v; want %v", err, boom)
	}
	if c := calls.Load(); c != 4 {
		t.Errorf("Parallel on one worker called f %d times after f(3) failed; want 4 (no index after the failure)", c)
	}
	if err := Parallel(0, 4, func(int) error { t.Error("f called for n = 0"); return nil }); err != nil {
		t.Errorf("Parallel(0, 4, f) = %v; want nil", err)
	}
}

func TestProcReadsThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc: not Linux")
	}
	pid := os.Getpid()
	if rss := RSSKB(pid); rss <= 0 {
		t.Errorf("RSSKB(self) = %d; want > 0", rss)
	}
	if rss, hwm := RSSKB(pid), ProcStatusKB(pid, "VmHWM"); hwm < rss {
		t.Errorf("ProcStatusKB(self, VmHWM) = %d; want at least VmRSS %d", hwm, rss)
	}
	if got := ProcStatusKB(pid, "NoSuchLine"); got != 0 {
		t.Errorf("ProcStatusKB(self, NoSuchLine) = %d; want 0", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for CPUTime(pid) == 0 && time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			_ = filepath.Join("a", "b")
		}
	}
	if c := CPUTime(pid); c <= 0 {
		t.Errorf("CPUTime(self) = %v after some work; want > 0", c)
	}
	if RSSKB(-1) != 0 || CPUTime(-1) != 0 {
		t.Errorf("RSSKB(-1), CPUTime(-1) = %d, %v; want 0, 0", RSSKB(-1), CPUTime(-1))
	}
}

func TestCleanEnv(t *testing.T) {
	t.Setenv("IOTCTL_CONNECTION_STRING", "HostName=h;SharedAccessKeyName=k;SharedAccessKey=a2V5")
	t.Setenv("https_proxy", "http://proxy:3128")
	t.Setenv("NODE_OPTIONS", "--inspect")
	t.Setenv("BENCHKIT_KEPT", "1")
	env := CleanEnv("EXTRA=2")
	has := map[string]bool{}
	for _, kv := range env {
		has[kv] = true
	}
	for _, gone := range []string{"IOTCTL_CONNECTION_STRING=HostName=h;SharedAccessKeyName=k;SharedAccessKey=a2V5", "https_proxy=http://proxy:3128", "NODE_OPTIONS=--inspect"} {
		if has[gone] {
			t.Errorf("CleanEnv kept %s", gone)
		}
	}
	if !has["BENCHKIT_KEPT=1"] || env[len(env)-1] != "EXTRA=2" {
		t.Errorf("CleanEnv(EXTRA=2) = %v; want BENCHKIT_KEPT=1 kept and EXTRA=2 last", env)
	}
}

func TestStopInterruptsThenKills(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// start runs a shell with an INT trap and returns once the trap is set.
	start := func(trap string) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(sh, "-c", "trap '"+trap+"' INT; echo ready; while :; do sleep 0.01; done")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("the shell printed %q, %v; want ready", line, err)
		}
		return cmd
	}

	cmd := start("exit 7")
	Stop(cmd, 10*time.Second)
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("Stop on a shell that exits 7 on SIGINT: exit code %d; want 7", code)
	}

	cmd = start("")
	began := time.Now()
	Stop(cmd, 200*time.Millisecond)
	if d := time.Since(began); d < 200*time.Millisecond || cmd.ProcessState == nil || cmd.ProcessState.String() != "signal: killed" {
		t.Errorf("Stop on a shell that ignores SIGINT returned after %v (%v); want it killed after 200ms", d, cmd.ProcessState)
	}

	Stop(exec.Command(sh), time.Second) // never started: nothing to do
}
