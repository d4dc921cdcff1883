package hub

import (
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// c2dMaxInflight bounds the unacknowledged C2D messages per device.
const c2dMaxInflight = 50

// c2dExpirySweep is how often the hub drops the expired C2D messages
// of every queue, so that a message to a device that never connects
// still ends with its Expired feedback, as on IoT Hub, and delivers
// the messages whose lock expired to their connected devices.
const c2dExpirySweep = 5 * time.Second

// expireC2D sweeps the C2D queues every c2dExpirySweep until the hub
// stops.
func (h *Hub) expireC2D() {
	tick := time.NewTicker(c2dExpirySweep)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
		n, err := h.reg.ExpireC2D()
		if err != nil {
			h.log.Warn("c2d expiry sweep failed", "err", err)
			continue
		}
		if n > 0 {
			h.log.Debug("c2d messages expired", "count", n)
		}
		// Locks expire without an event: deliver what they free.
		ids, err := h.reg.DeliverableC2D()
		if err != nil {
			h.log.Warn("c2d queue scan failed", "err", err)
			continue
		}
		for _, id := range ids {
			h.C2DEnqueued(id.DeviceID, id.ModuleID)
		}
	}
}

// kickC2D makes sure a delivery of s's queued C2D messages runs after
// this call: it starts one on a goroutine of its own, or has the
// running one go round again. Kicks come on subscribe, enqueue,
// completion, a replaced connection's abandoned messages, and from the
// hub's sweep for queues whose locks expired, so an idle device costs
// no goroutine.
func (h *Hub) kickC2D(s *session) {
	s.mu.Lock()
	if s.delivering {
		s.again = true
		s.mu.Unlock()
		return
	}
	s.delivering = true
	s.mu.Unlock()
	if !h.workers.goFunc(func() { h.deliverC2D(s) }) {
		// The hub is closing: nothing more is delivered.
		s.mu.Lock()
		s.delivering = false
		s.mu.Unlock()
	}
}

// deliverC2D delivers until nothing is left to hand out and no kick
// came meanwhile.
func (h *Hub) deliverC2D(s *session) {
	for {
		h.deliverPending(s)
		s.mu.Lock()
		if !s.again {
			s.delivering = false
			s.mu.Unlock()
			return
		}
		s.again = false
		s.mu.Unlock()
	}
}

// deliverPending publishes s's deliverable C2D messages at QoS 1, once
// the device has subscribed to them, until the queue has none left or
// c2dMaxInflight wait for their PUBACK, which completes each
// (completeC2D).
func (h *Hub) deliverPending(s *session) {
	filter := message.C2DFilter(s.deviceID)
	if s.moduleID != "" {
		filter = message.ModuleInputFilter(s.deviceID, s.moduleID)
	}
	if !s.subscribed(filter) {
		return
	}
	for {
		select {
		case <-s.done:
			return
		case <-h.ctx.Done():
			return
		default:
		}
		s.mu.Lock()
		full := len(s.inflight) >= c2dMaxInflight
		s.mu.Unlock()
		if full {
			return
		}
		m, lock, ok, err := h.store.nextC2D(s.deviceID, s.moduleID)
		if err != nil {
			h.log.Warn("c2d queue read failed", "device", s.deviceID, "err", err)
			return
		}
		if !ok {
			return
		}
		topic := message.C2DTopic(s.deviceID, m)
		if s.moduleID != "" {
			topic = message.ModuleInputTopic(s.deviceID, s.moduleID, m.InputName, m)
		}
		s.mu.Lock()
		s.nextPID++
		if s.nextPID == 0 {
			s.nextPID = 1
		}
		pid := s.nextPID
		s.inflight[pid] = lock
		s.mu.Unlock()
		if err := s.write(topic, m.Body, 1, pid); err != nil {
			logClosed(h.log, "c2d delivery", err)
			return
		}
		h.meter.c2d(c2dDelivered)
		h.log.Debug("c2d delivered", "device", s.deviceID, "module", s.moduleID, "messageId", m.MessageID)
	}
}

// completeC2D completes the message delivered with packet id pid.
func (h *Hub) completeC2D(s *session, pid uint16) {
	s.mu.Lock()
	lock, ok := s.inflight[pid]
	delete(s.inflight, pid)
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := h.store.completeC2D(s.deviceID, s.moduleID, lock); err != nil {
		h.log.Info("c2d complete failed", "device", s.deviceID, "err", err)
	} else {
		h.meter.c2d(c2dCompleted)
	}
	h.kickC2D(s)
}

// abandonInflight returns a disconnected device's unacknowledged
// messages to its queue so they are delivered again on reconnect.
func (h *Hub) abandonInflight(s *session) {
	s.mu.Lock()
	locks := make([]string, 0, len(s.inflight))
	for _, l := range s.inflight {
		locks = append(locks, l)
	}
	clear(s.inflight)
	s.mu.Unlock()
	for _, l := range locks {
		if err := h.store.abandonC2D(s.deviceID, s.moduleID, l); err != nil {
			h.log.Debug("c2d abandon failed", "device", s.deviceID, "err", err)
		}
	}
}

// C2DEnqueued wakes the delivery of a connected device after a message
// was queued for it.
func (h *Hub) C2DEnqueued(deviceID, moduleID string) {
	if s := h.sessions.get(clientKey(deviceID, moduleID)); s != nil {
		h.kickC2D(s)
	}
}
