package benchkit

import (
	"fmt"
	"syscall"
)

// RaiseOpenFiles raises this process's RLIMIT_NOFILE, soft and hard, to
// at least n (the hard limit only as root), so that the hub and fleet
// it starts, which inherit it, can hold n connections each.
func RaiseOpenFiles(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= n {
		return nil
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, l.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("raising the open-files limit from %d (hard %d) to %d: %w (run as root, or ulimit -Hn %d first)", l.Cur, l.Max, n, err, n)
	}
	return nil
}
