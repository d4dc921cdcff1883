package hub

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// writesConn records each Write on a connection that is otherwise
// unused.
type writesConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *writesConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}

// The PUBACKs of a commit go to the device in one write, in the order
// of its publishes, as MQTT 3.1.1 PUBACKs (4 bytes each).
func TestFlushAcksWritesABatchAtOnce(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	conn := &writesConn{Conn: c1}
	s := &mqttConn{cl: newMQTTClient(conn)}
	var want []byte
	for pid := uint16(1); pid <= 50; pid++ {
		s.acks.pids = append(s.acks.pids, pid)
		want = append(want, packets.Puback<<4, 2, byte(pid>>8), byte(pid))
	}
	s.acks.flushing = true
	New(nil).flushAcks(s)
	if len(conn.writes) != 1 || !bytes.Equal(conn.writes[0], want) {
		t.Errorf("flushAcks of 50 PUBACKs wrote %d times: % x; want one write of % x", len(conn.writes), conn.writes, want)
	}
	if s.acks.flushing || len(s.acks.pids) != 0 {
		t.Errorf("after flushAcks: flushing %v, %d queued; want false, 0", s.acks.flushing, len(s.acks.pids))
	}
}
