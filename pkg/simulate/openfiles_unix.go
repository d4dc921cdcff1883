//go:build unix

package simulate

import "syscall"

// raiseOpenFiles raises the soft RLIMIT_NOFILE towards the hard limit
// when it is below need, and returns the limits then; ok is false when
// they cannot be read.
func raiseOpenFiles(need uint64) (cur, hard uint64, ok bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, false
	}
	if l.Cur < need && l.Cur < l.Max {
		want := l
		want.Cur = min(l.Max, max(need, l.Cur))
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			l = want
		}
	}
	return uint64(l.Cur), uint64(l.Max), true
}
