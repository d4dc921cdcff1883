package hub

import (
	"bytes"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ackQueue holds a connection's PUBACKs for telemetry stored (on disk: synced),
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

// flushAcks sends the session's queued PUBACKs until none is left,
// each batch in one write.
func (h *Hub) flushAcks(c *mqttConn) {
	q := &c.acks
	var batch []uint16
	var buf bytes.Buffer
	for {
		q.mu.Lock()
		if len(q.pids) == 0 {
			q.flushing = false
			q.mu.Unlock()
			return
		}
		batch, q.pids = q.pids, batch[:0]
		q.mu.Unlock()
		if err := writeAcks(c.cl, batch, &buf); err != nil {
			// The connection is gone; the device publishes again.
			logClosed(h.log, "puback not sent", err)
		}
	}
}

// writeAcks sends a PUBACK for each of pids, in their order, in one
// write to the connection: one TLS record and one system call for
// what the log stored in one commit, instead of one for each (the
// encryption and the write of each PUBACK cost more than the rest of
// storing its event). It writes under the client's write lock, as its
// other packets, so packets never interleave; buf is scratch space.
func writeAcks(cl *mqttClient, pids []uint16, buf *bytes.Buffer) error {
	buf.Reset()
	for _, pid := range pids {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid, ProtocolVersion: cl.version}
		if err := pk.PubackEncode(buf); err != nil {
			return err
		}
	}
	return cl.write(buf.Bytes())
}
