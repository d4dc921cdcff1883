// Package loopback gives a test process loopback addresses of its own,
// for servers that must come back on the same address and port.
//
// A port picked free on 127.0.0.1 and bound again later may be taken in
// between: every connection on the machine comes from 127.0.0.1 (the
// loopback route's source address), so any of them, from any test
// process running at the same time, may be given that port as its own.
// On an address of the process's own only its own listeners can take
// it.
package loopback

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

var next atomic.Int32

// IP returns a loopback address for this process alone: 127.A.B.C, A
// and B from the process id, C different at each call (for 50 calls).
func IP() string {
	pid := os.Getpid()
	return fmt.Sprintf("127.%d.%d.%d", 1+pid%250, (pid/250)%250, 200+next.Add(1)%50)
}

// FreeAddr returns IP():PORT with a port that was free on it a moment
// ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", IP()+":0")
	if err != nil {
		return "", fmt.Errorf("loopback: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
