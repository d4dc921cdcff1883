package hub

import (
	"bytes"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/hub/telemetry"
)

// maxPendingPublishes is how many telemetry publishes of one connection
// may wait for the log on disk; the next one waits for a slot, which
// stops reading from the device.
const maxPendingPublishes = 256

// ackQueue holds a session's PUBACKs for telemetry stored, sent
// in the order the device published (MQTT 3.1.1, 4.6: PUBACKs in the
// order the PUBLISH packets were received).
type ackQueue struct {
	mu       sync.Mutex
	pids     []uint16
	flushing bool          // a flushAcks runs
	slots    chan struct{} // publishes waiting for the log; nil until the first
}

// storeTelemetry appends ev to the log without waiting: on disk, the
// device's next packets are read meanwhile, and its publishes share
// synced commits with each other's and other devices'. The PUBACK
// (QoS 1) goes only once the event is stored, in one write with the
// other PUBACKs of the connection queued by then (in memory too, where
// the event is stored before AppendAsync returns); an event that could
// not be stored is not acknowledged and its device is disconnected, so
// that it sends it again.
func (h *Hub) storeTelemetry(s *session, ev telemetry.Event, qos byte, pid uint16) {
	q := &s.acks
	q.mu.Lock()
	if q.slots == nil {
		q.slots = make(chan struct{}, maxPendingPublishes)
	}
	slots := q.slots
	q.mu.Unlock()
	slots <- struct{}{} // freed by the log's callback, which always comes
	h.telemetry.AppendAsync(ev, func(_ telemetry.Event, err error) {
		<-slots
		if err != nil {
			h.log.Info("device disconnected: telemetry not stored", "client", s.cl.ID, "err", err)
			s.cl.Stop(err)
			return
		}
		h.meter.messageIn("mqtt")
		if qos > 0 {
			h.queueAck(s, pid)
		}
	})
}

// queueAck queues a PUBACK and makes sure a flushAcks sends it. It runs
// on the log's committing goroutine, so it never blocks on the network.
func (h *Hub) queueAck(s *session, pid uint16) {
	q := &s.acks
	q.mu.Lock()
	q.pids = append(q.pids, pid)
	start := !q.flushing
	q.flushing = true
	q.mu.Unlock()
	if start && !h.workers.goFunc(func() { h.flushAcks(s) }) {
		// The hub is closing and its connections with it: the device
		// sends its unacknowledged publishes again.
		q.mu.Lock()
		q.pids, q.flushing = q.pids[:0], false
		q.mu.Unlock()
	}
}

// flushAcks sends the session's queued PUBACKs until none is left,
// each batch in one write.
func (h *Hub) flushAcks(s *session) {
	q := &s.acks
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
		if err := writeAcks(s.cl, batch, &buf); err != nil {
			// The connection is gone; the device publishes again.
			logClosed(h.log, "puback not sent", err)
		}
	}
}

// writeAcks sends a PUBACK for each of pids, in their order, in one
// write to the connection: one TLS record and one system call for
// what the log stored in one commit, instead of one for each (the
// encryption and the write of each PUBACK cost more than the rest of
// storing its event). It takes the client's lock, as mochi's
// Client.WritePacket does around its own writes (clients.go in
// github.com/mochi-mqtt/server/v2), so packets never interleave; buf
// is scratch space.
func writeAcks(cl *mqtt.Client, pids []uint16, buf *bytes.Buffer) error {
	buf.Reset()
	for _, pid := range pids {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid,
			ProtocolVersion: cl.Properties.ProtocolVersion}
		if err := pk.PubackEncode(buf); err != nil {
			return err
		}
	}
	if cl.Closed() || cl.Net.Conn == nil {
		return mqtt.ErrConnectionClosed
	}
	cl.Lock()
	defer cl.Unlock()
	_, err := cl.Net.Conn.Write(buf.Bytes())
	return err
}
