package hub

import (
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/hub/telemetry"
)

// maxPendingPublishes is how many telemetry publishes of one connection
// may wait for the log on disk; the next one waits for a slot, which
// stops reading from the device.
const maxPendingPublishes = 256

// ackQueue holds a session's PUBACKs for telemetry stored on disk, sent
// in the order the device published (MQTT 3.1.1, 4.6: PUBACKs in the
// order the PUBLISH packets were received).
type ackQueue struct {
	mu       sync.Mutex
	pids     []uint16
	flushing bool          // a flushAcks runs
	slots    chan struct{} // publishes waiting for the log; nil until the first
}

// storeTelemetry appends ev to the log on disk without waiting: the
// device's next packets are read meanwhile, and its publishes share
// synced commits with each other's and other devices'. The PUBACK
// (QoS 1) goes only once the event is durable; an event that could not
// be stored is not acknowledged and its device is disconnected, so that
// it sends it again.
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

// flushAcks sends the session's queued PUBACKs until none is left.
func (h *Hub) flushAcks(s *session) {
	q := &s.acks
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
			err := s.cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pid})
			if err != nil {
				logClosed(h.log, "puback not sent", err)
				break // the connection is gone; the device publishes again
			}
		}
	}
}
