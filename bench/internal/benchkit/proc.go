package benchkit

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Stop interrupts a started command (SIGINT, as Ctrl-C would) and waits
// for it to exit, killing it if it has not exited within wait. It does
// nothing for a command that was never started, and must not be called
// on a command something else waits for.
func Stop(cmd *exec.Cmd, wait time.Duration) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = cmd.Process.Kill()
		<-done
	}
}

// ProcStatusKB reads a "Name: N kB" line of /proc/PID/status, such as
// VmRSS (resident memory) or VmHWM (its peak). It is 0 when the process
// or the line is not there.
func ProcStatusKB(pid int, name string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, name+":") {
			f := strings.Fields(l)
			if len(f) < 2 {
				return 0
			}
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// RSSKB is a process's resident set size in KB (VmRSS), 0 when the
// process is not there.
func RSSKB(pid int) int { return ProcStatusKB(pid, "VmRSS") }

// CPUTime is a process's user + system CPU time so far, from
// /proc/PID/stat in clock ticks of 10 ms (USER_HZ on Linux). It is 0
// when the process is not there.
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses; utime
	// and stime are fields 14 and 15 of the whole line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}
