package simulate

import "fmt"

// filesBesidesDevices is the open files a fleet's process needs besides
// one connection per device: standard streams, the poller, the service
// client's and the metrics server's connections, files.
const filesBesidesDevices = 64

// checkOpenFiles reports an error naming the way out when this process
// may not open the fleet's connections (one per device, or fewer when
// AMQP devices share them): RLIMIT_NOFILE (ulimit -n) below conns plus
// filesBesidesDevices. It first raises the soft limit to the hard one,
// as servers do (Go's runtime does so at start too).
func checkOpenFiles(devices, conns int) error {
	need := uint64(conns) + filesBesidesDevices
	cur, hard, ok := raiseOpenFiles(need)
	if !ok || cur >= need {
		return nil
	}
	each := "a connection each"
	if conns < devices {
		each = fmt.Sprintf("%d connections", conns)
	}
	return fmt.Errorf("simulate: a fleet of %d devices needs about %d open files (%s), but this process may open %d (ulimit -n; hard limit %d): "+
		"raise the limit (as root: ulimit -Hn %d; ulimit -n %d; in a systemd unit LimitNOFILE=%d; in a container --ulimit nofile=%d), or simulate fewer devices per process (--shards)",
		devices, need, each, cur, hard, need, need, need, need)
}
