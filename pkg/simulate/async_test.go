package simulate

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iotctl/iotctl/internal/stacks"
	"github.com/iotctl/iotctl/internal/testcert"
	"github.com/iotctl/iotctl/pkg/device"
)

// slowHub is an MQTT hub that acknowledges telemetry only when the
// test releases it: it accepts every CONNECT, grants every
// subscription, answers pings, and reports each PUBLISH on received.
type slowHub struct {
	t        *testing.T
	ln       net.Listener
	pool     *x509.CertPool
	received chan string // the client id of each PUBLISH

	mu      sync.Mutex
	held    bool
	pending []func() // writes of the PUBACKs held back
	conns   sync.WaitGroup
}

func newSlowHub(t *testing.T) *slowHub {
	t.Helper()
	cert, pool, _ := testcert.Server(t, "slow hub")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	h := &slowHub{t: t, ln: ln, pool: pool, received: make(chan string, 10000), held: true}
	var open sync.Map
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(nc, true)
			h.conns.Go(func() { h.serve(nc) })
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		h.conns.Wait()
	})
	return h
}

// release sends the PUBACKs held back and acknowledges at once from
// now on.
func (h *slowHub) release() {
	h.mu.Lock()
	h.held = false
	pending := h.pending
	h.pending = nil
	h.mu.Unlock()
	for _, w := range pending {
		w()
	}
}

func (h *slowHub) serve(nc net.Conn) {
	defer nc.Close()
	var wmu sync.Mutex
	write := func(p packets.ControlPacket) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = p.Write(nc)
	}
	var id string
	for {
		p, err := packets.ReadPacket(nc)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packets.ConnectPacket:
			id = p.ClientIdentifier
			write(packets.NewControlPacket(packets.Connack))
		case *packets.SubscribePacket:
			ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			ack.MessageID, ack.ReturnCodes = p.MessageID, p.Qoss
			write(ack)
		case *packets.PingreqPacket:
			write(packets.NewControlPacket(packets.Pingresp))
		case *packets.PublishPacket:
			h.received <- id
			if p.Qos == 0 {
				continue
			}
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = p.MessageID
			h.mu.Lock()
			if h.held {
				h.pending = append(h.pending, func() { write(ack) })
				h.mu.Unlock()
				continue
			}
			h.mu.Unlock()
			write(ack)
		case *packets.DisconnectPacket:
			return
		}
	}
}

// A fleet of MQTT devices whose messages wait for their PUBACK keeps
// no goroutine per device for the wait: each device's connection has
// its reader and nothing else, the sends having returned once their
// PUBLISH was written. Once the hub acknowledges, every device sends
// its next message and the counts are exact. Before, each device's
// timer goroutine sat in SendEvent until the PUBACK came: two
// goroutines per device. (Not parallel: it counts every goroutine of
// the packages under test.)
func TestFleetParksNoGoroutineWhileWaitingForPubacks(t *testing.T) {
	const n = 20
	h := newSlowHub(t)
	ids := FleetIDs("slow-", n)
	keys := KeyMap{}
	for _, id := range ids {
		keys[id] = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
	}
	events := newSink()
	f, err := New(&Options{
		Device:    device.Options{HostName: h.ln.Addr().String(), RootCAs: h.pool},
		DeviceIDs: ids, Keys: keys, Interval: time.Millisecond, Count: 2, TelemetryOnly: true, Sink: events.put,
	})
	if err != nil {
		t.Fatal(err)
	}
	runFleet(t, f)

	seen := map[string]bool{}
	for len(seen) < n {
		seen[recv(t, h.received, "the first message of every device")] = true
	}
	// Every device has written its first message and waits for the
	// PUBACK; the senders return right after their write, so wait for
	// that (there is nothing to signal it) and fail if they stay.
	clientCode := []string{"device.(*Client).", "device.(*conn).", "simulate.(*simDevice)."}
	deadline := time.Now().Add(waitFor)
	got := stacks.Count(clientCode...)
	for got > n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = stacks.Count(clientCode...)
	}
	if got > n {
		t.Errorf("%d goroutines of the devices while %d messages wait for their PUBACK (%d senders waiting); want %d, the readers",
			got, n, got-n, n)
	}
	if senders := stacks.Count("simulate.(*simDevice)."); senders != 0 {
		t.Errorf("%d goroutines in a device's send while the PUBACKs are held; want 0", senders)
	}
	if s := f.Stats(); s.Sent != n || s.Acked != 0 {
		t.Errorf("Stats while held = sent %d, acked %d; want %d, 0", s.Sent, s.Acked, n)
	}

	h.release()
	var summary Event
	sent := 0 // EventSent, one per acknowledgement
	for summary.Type != EventSummary {
		if summary = recv(t, events.ch, "the summary, once every device sent its two messages"); summary.Type == EventSent {
			sent++
		}
	}
	if s := summary.Stats; s.Sent != 2*n || s.Acked != 2*n || s.Errors != 0 || sent != 2*n {
		t.Errorf("summary: sent %d, acked %d, errors %d, with %d sent events; want %d, %d, 0, %d",
			s.Sent, s.Acked, s.Errors, sent, 2*n, 2*n, 2*n)
	}
}
