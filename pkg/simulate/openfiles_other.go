//go:build !unix

package simulate

// raiseOpenFiles has no limits to read where RLIMIT_NOFILE does not
// exist.
func raiseOpenFiles(uint64) (cur, hard uint64, ok bool) { return 0, 0, false }
