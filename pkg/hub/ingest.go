package hub

import (
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ackQueue holds a connection's PUBACKs for telemetry stored on disk,
// sent in the order the device published (MQTT 3.1.1, 4.6: PUBACKs in
// the order the PUBLISH packets were received).
type ackQueue struct {
	mu       sync.Mutex
	pids     []uint16
	flushing bool // a flushAcks runs
}

// queueAck queues a PUBACK and makes sure a flushAcks sends it. It runs
// on the log's committing goroutine, so it never blocks on the network.
func (h *Hub) queueAck(c *mqttConn, pid uint16) {
	q := &c.acks
	q.mu.Lock()
	q.pids = append(q.pids, pid)
	start := !q.flushing
	q.flushing = true
	q.mu.Unlock()
	if start && !h.workers.goFunc(func() { h.flushAcks(c) }) {
		// The hub is closing and its connections with it: the device
		// sends its unacknowledged publishes again.
		q.mu.Lock()
		q.pids, q.flushing = q.pids[:0], false
		q.mu.Unlock()
	}
}

// flushAcks sends the session's queued PUBACKs until none is left.
func (h *Hub) flushAcks(c *mqttConn) {
	q := &c.acks
	var batch []uint16
	for {
		q.mu.Lock()
		if len(q.pids) == 0 {
			q.flushing = false
			q.mu.Unlock()
			return
		}
		batch, q.pids = q.pids, batch[:0]
		q.mu.Unlock()
		for _, pid := range batch {
			err := c.cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid})
			if err != nil {
				logClosed(h.log, "puback not sent", err)
				break // the connection is gone; the device publishes again
			}
		}
	}
}
