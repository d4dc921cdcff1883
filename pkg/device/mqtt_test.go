package device

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// These tests drive conn against a scripted hub on the other end of a
// net.Pipe, for what a real broker does not do on request: refuse,
// stay silent, send what it should not.

// pipeHub is the hub's end of a connection under test.
type pipeHub struct {
	t  *testing.T
	nc net.Conn
}

func (h *pipeHub) read() packets.ControlPacket {
	h.t.Helper()
	_ = h.nc.SetReadDeadline(time.Now().Add(waitFor))
	p, err := packets.ReadPacket(h.nc)
	if err != nil {
		h.t.Fatalf("hub: reading a packet: %v", err)
	}
	return p
}

func (h *pipeHub) write(p packets.ControlPacket) {
	h.t.Helper()
	_ = h.nc.SetWriteDeadline(time.Now().Add(waitFor))
	if err := p.Write(h.nc); err != nil {
		h.t.Fatalf("hub: writing %s: %v", packetName(p), err)
	}
}

// dialPipe runs dialMQTT against a hub that reads the CONNECT and
// answers with CONNACK code. keepAlive is in seconds.
func dialPipe(t *testing.T, code byte, keepAlive uint16, onPublish func(*conn, *packets.PublishPacket), onLost func(*conn, error)) (*conn, byte, *pipeHub, error) {
	t.Helper()
	client, server := net.Pipe()
	h := &pipeHub{t: t, nc: server}
	t.Cleanup(func() { client.Close(); server.Close() })
	got := make(chan *packets.ConnectPacket, 1)
	go func() {
		p, err := packets.ReadPacket(server)
		if err != nil {
			close(got)
			return
		}
		got <- p.(*packets.ConnectPacket)
		ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
		ack.ReturnCode = code
		_ = ack.Write(server)
	}()
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.Keepalive = "MQTT", 4, "dev1", keepAlive
	if onPublish == nil {
		onPublish = func(*conn, *packets.PublishPacket) {}
	}
	cn, rc, err := dialMQTT(client, cp, time.Second, onPublish, onLost)
	if c := recv(t, got, "CONNECT"); c == nil || c.ClientIdentifier != "dev1" || c.Keepalive != keepAlive {
		t.Fatalf("hub got CONNECT %+v", c)
	}
	return cn, rc, h, err
}

func TestConnReturnsTheRefusalCode(t *testing.T) {
	cn, rc, _, err := dialPipe(t, packets.ErrRefusedNotAuthorised, 0, nil, nil)
	if cn != nil || err != nil || rc != packets.ErrRefusedNotAuthorised {
		t.Fatalf("dialMQTT = %v, %d, %v; want nil, 5, nil", cn, rc, err)
	}
}

func TestConnHubClosingBeforeConnackIsAnError(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		_, _ = packets.ReadPacket(server)
		server.Close()
	}()
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier = "MQTT", 4, "dev1"
	_, _, err := dialMQTT(client, cp, time.Second, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "closed the connection instead of answering CONNECT") {
		t.Fatalf("dialMQTT = %v; want the hub-closed error", err)
	}
}

// A hub that answers pings keeps the connection; the client pings
// after the keep-alive without traffic.
func TestConnKeepAlivePings(t *testing.T) {
	lost := make(chan error, 1)
	cn, _, h, err := dialPipe(t, 0, 1, nil, func(_ *conn, err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close(0)
	for range 2 {
		if p := h.read(); packetName(p) != "PINGREQ" {
			t.Fatalf("hub got %s; want PINGREQ", packetName(p))
		}
		h.write(packets.NewControlPacket(packets.Pingresp))
	}
	select {
	case err := <-lost:
		t.Fatalf("connection lost although every ping was answered: %v", err)
	default:
	}
}

// A hub that stops answering pings is a lost connection.
func TestConnKeepAliveTimeoutEndsTheConnection(t *testing.T) {
	lost := make(chan error, 1)
	cn, _, h, err := dialPipe(t, 0, 1, nil, func(_ *conn, err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	if p := h.read(); packetName(p) != "PINGREQ" {
		t.Fatalf("hub got %s; want PINGREQ", packetName(p))
	}
	if err := recv(t, lost, "the lost report"); !errors.Is(err, errPingTimeout) {
		t.Fatalf("lost with %v; want errPingTimeout", err)
	}
	if !cn.isLost() {
		t.Fatal("the connection is not marked lost")
	}
	if err := cn.publish0("t", nil); !errors.Is(err, errLost) {
		t.Fatalf("publish on the lost connection = %v; want errLost", err)
	}
}

// An incoming QoS 1 PUBLISH is acknowledged after its handler
// returned, and an empty payload reaches the handler as empty.
func TestConnAcksAnIncomingPublishAfterItsHandler(t *testing.T) {
	var returned atomic.Bool
	got := make(chan *packets.PublishPacket, 1)
	cn, _, h, err := dialPipe(t, 0, 0, func(_ *conn, p *packets.PublishPacket) {
		got <- p
		returned.Store(true)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close(0)
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName = 1, 7, "$iothub/methods/POST/reboot/?$rid=1"
	h.write(p)
	in := recv(t, got, "the PUBLISH")
	if in.TopicName != p.TopicName || len(in.Payload) != 0 {
		t.Fatalf("handler got %q with %d bytes; want %q, empty", in.TopicName, len(in.Payload), p.TopicName)
	}
	ack, ok := h.read().(*packets.PubackPacket)
	if !ok || ack.MessageID != 7 {
		t.Fatalf("hub got %v; want PUBACK 7", ack)
	}
	if !returned.Load() {
		t.Fatal("PUBACK sent before the handler returned")
	}
}

// recWaiter records what a conn tells a waiter.
type recWaiter struct {
	acks  chan packets.ControlPacket
	losts chan struct{}
}

func newRecWaiter() *recWaiter {
	return &recWaiter{acks: make(chan packets.ControlPacket, 10), losts: make(chan struct{}, 10)}
}

func (w *recWaiter) acked(_ *conn, p packets.ControlPacket) { w.acks <- p }
func (w *recWaiter) lost(*conn)                             { w.losts <- struct{}{} }

// publish1 writes a QoS 1 PUBLISH whose acknowledgement w waits for.
func publish1(cn *conn, topic string, payload []byte, w waiter) error {
	id, err := cn.await(w)
	if err != nil {
		return err
	}
	return cn.writeBytes(appendPublish(nil, topic, 1, id, payload))
}

// A QoS 1 PUBLISH's waiter is told of its own PUBACK, on the reader,
// and of nothing else: a PUBACK for another id is ignored.
func TestConnPublishWaitsForItsPuback(t *testing.T) {
	cn, _, h, err := dialPipe(t, 0, 0, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cn.close(0)
	w := newRecWaiter()
	sent := make(chan error, 1)
	go func() { sent <- publish1(cn, "devices/dev1/messages/events/", []byte("x"), w) }()
	p, ok := h.read().(*packets.PublishPacket)
	if !ok || p.Qos != 1 || p.MessageID == 0 || string(p.Payload) != "x" {
		t.Fatalf("hub got %v; want a QoS 1 PUBLISH", p)
	}
	if err := recv(t, sent, "the write"); err != nil {
		t.Fatalf("publish = %v", err)
	}
	other := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	other.MessageID = p.MessageID + 1
	h.write(other)
	ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	ack.MessageID = p.MessageID
	h.write(ack)
	if got := recv(t, w.acks, "the PUBACK"); got.(*packets.PubackPacket).MessageID != p.MessageID {
		t.Fatalf("waiter got the PUBACK of %d; want %d", got.(*packets.PubackPacket).MessageID, p.MessageID)
	}
	cn.close(0)
	select {
	case p := <-w.acks:
		t.Fatalf("waiter got a second acknowledgement %v", p)
	case <-w.losts:
		t.Fatal("an acknowledged waiter was told its connection was lost")
	default:
	}
}

// A connection that drops tells the waiters of unacknowledged
// publishes that they are lost (so that they are sent again), once,
// reports the loss once, and takes no more waiters.
func TestConnDropFailsWaitingPublishes(t *testing.T) {
	lost := make(chan error, 2)
	cn, _, h, err := dialPipe(t, 0, 0, nil, func(_ *conn, err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	w := newRecWaiter()
	sent := make(chan error, 1)
	go func() { sent <- publish1(cn, "t", nil, w) }()
	h.read()
	if err := recv(t, sent, "the write"); err != nil {
		t.Fatalf("publish = %v", err)
	}
	h.nc.Close()
	recv(t, w.losts, "the waiter's lost")
	if err := recv(t, lost, "the lost report"); err == nil || !strings.Contains(err.Error(), "closed the connection") {
		t.Fatalf("lost with %v; want the hub-closed error", err)
	}
	cn.close(0)
	if _, err := cn.await(w); !errors.Is(err, errLost) {
		t.Fatalf("await on the lost connection = %v; want errLost", err)
	}
	select {
	case err := <-lost:
		t.Fatalf("a second lost report: %v", err)
	case <-w.losts:
		t.Fatal("the waiter was told twice")
	case p := <-w.acks:
		t.Fatalf("the waiter got %v after the drop", p)
	default:
	}
}

// close sends DISCONNECT and does not report a loss.
func TestConnCloseSendsDisconnect(t *testing.T) {
	lost := make(chan error, 1)
	cn, _, h, err := dialPipe(t, 0, 0, nil, func(_ *conn, err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	go cn.close(time.Second)
	if p := h.read(); packetName(p) != "DISCONNECT" {
		t.Fatalf("hub got %s; want DISCONNECT", packetName(p))
	}
	<-cn.lost
	select {
	case err := <-lost:
		t.Fatalf("close reported a loss: %v", err)
	default:
	}
}

// close returns within its quiesce time even when a write is stuck
// on a hub that reads nothing, and the stuck write fails with errLost.
func TestConnCloseDoesNotWaitForAStuckWrite(t *testing.T) {
	lost := make(chan error, 1)
	cn, _, h, err := dialPipe(t, 0, 0, nil, func(_ *conn, err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	cn.ackTimeout = time.Hour // the write deadline: only close can end the write
	sent := make(chan error, 1)
	go func() { sent <- cn.publish0("t", []byte("stuck")) }()
	// A pipe's Write returns when all was read: after one byte, the
	// publish is inside its write, holding the write lock.
	_ = h.nc.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := h.nc.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { cn.close(50 * time.Millisecond); close(closed) }()
	recv(t, closed, "close")
	if err := recv(t, sent, "the stuck publish"); !errors.Is(err, errLost) {
		t.Fatalf("stuck publish = %v; want errLost", err)
	}
	select {
	case err := <-lost:
		t.Fatalf("close reported a loss: %v", err)
	default:
	}
}

// A packet the hub has no business sending ends the connection.
func TestConnUnexpectedPacketEndsTheConnection(t *testing.T) {
	lost := make(chan error, 1)
	_, _, h, err := dialPipe(t, 0, 0, nil, func(_ *conn, err error) { lost <- err })
	if err != nil {
		t.Fatal(err)
	}
	h.write(packets.NewControlPacket(packets.Connack))
	if err := recv(t, lost, "the lost report"); err == nil || !strings.Contains(err.Error(), "unexpected CONNACK") {
		t.Fatalf("lost with %v; want unexpected CONNACK", err)
	}
}

func TestReadPacketRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"over the limit", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, "over the"},
		{"five length bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, "malformed packet length"},
		{"a SUBSCRIBE", []byte{0x82, 0x00}, "unexpected SUBSCRIBE"},
		{"type 0", []byte{0x00, 0x00}, "unexpected type 0"},
		{"truncated body", []byte{0x40, 0x02, 0x00}, io.ErrUnexpectedEOF.Error()},
		{"empty", nil, io.EOF.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := readPacket(bytes.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("readPacket(% x) = %v, %v; want an error with %q", tt.in, p, err, tt.want)
			}
		})
	}
}

// readPacket reads what paho's encoder writes, for every packet type
// a hub sends.
func TestReadPacketReadsWhatPahoWrites(t *testing.T) {
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID, pub.TopicName, pub.Payload = 1, 9, "devices/d/messages/devicebound/%24.mid=1", bytes.Repeat([]byte("a"), 300)
	sub := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	sub.MessageID, sub.ReturnCodes = 3, []byte{0, 1, 0x80}
	for _, want := range []packets.ControlPacket{pub, sub, packets.NewControlPacket(packets.Pingresp), packets.NewControlPacket(packets.Connack)} {
		var b bytes.Buffer
		if err := want.Write(&b); err != nil {
			t.Fatal(err)
		}
		got, err := readPacket(&b)
		if err != nil {
			t.Fatalf("readPacket(%s) = %v", packetName(want), err)
		}
		var again bytes.Buffer
		if err := got.Write(&again); err != nil {
			t.Fatal(err)
		}
		var orig bytes.Buffer
		_ = want.Write(&orig)
		if !bytes.Equal(again.Bytes(), orig.Bytes()) {
			t.Errorf("%s: read back as % x; want % x", packetName(want), again.Bytes(), orig.Bytes())
		}
	}
}

// readPacket never panics and never reads a body over the limit,
// whatever the hub sends.
func FuzzReadPacket(f *testing.F) {
	f.Add([]byte{0x30, 0x05, 0x00, 0x01, 't', 'h', 'i'})
	f.Add([]byte{0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x07, 'x'})
	f.Add([]byte{0x90, 0x03, 0x00, 0x01, 0x80})
	f.Add([]byte{0x20, 0x02, 0x00, 0x00})
	f.Add([]byte{0x40, 0x02, 0x00, 0x01})
	f.Add([]byte{0xd0, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		p, err := readPacket(r)
		if err != nil {
			return
		}
		if p == nil {
			t.Fatal("nil packet without an error")
		}
		if read := len(in) - r.Len(); read > maxPacket+5 {
			t.Fatalf("read %d bytes, over the limit", read)
		}
	})
}

// appendPublish makes the bytes paho's PublishPacket.Write makes, at
// both QoS and at remaining lengths of one, two and three bytes.
func TestAppendPublishMatchesPaho(t *testing.T) {
	for _, size := range []int{0, 1, 100, 127, 128, 16000, 16383, 16384, 70000} {
		for _, qos := range []byte{0, 1} {
			payload := bytes.Repeat([]byte{'x'}, size)
			topic := "devices/d1/messages/events/a=b"
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.Qos, p.TopicName, p.Payload = qos, topic, payload
			if qos > 0 {
				p.MessageID = 0x1234
			}
			var want bytes.Buffer
			if err := p.Write(&want); err != nil {
				t.Fatal(err)
			}
			got := appendPublish(nil, topic, qos, p.MessageID, payload)
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("appendPublish(qos %d, %d-byte payload) = % x...; want % x...", qos, size, got[:min(len(got), 40)], want.Bytes()[:min(want.Len(), 40)])
			}
			if cap(got) != len(got) {
				t.Errorf("appendPublish(qos %d, %d-byte payload): cap %d for %d bytes", qos, size, cap(got), len(got))
			}
		}
	}
}

// BenchmarkPublishEncode compares the encoding of a quickstart-sized
// telemetry PUBLISH by paho's packets with appendPublish:
//
//	go test -run - -bench PublishEncode -benchmem ./pkg/device
func BenchmarkPublishEncode(b *testing.B) {
	topic := "devices/fleet-00001/messages/events/temperatureAlert=false&%24.ct=application%2Fjson&%24.ce=utf-8"
	payload := []byte(`{"temperature": 27.123456789,"humidity": 71.98765432}`)
	b.Run("paho", func(b *testing.B) {
		for b.Loop() {
			p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			p.Qos, p.TopicName, p.Payload, p.MessageID = 1, topic, payload, 7
			_ = p.Write(io.Discard)
		}
	})
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			_ = appendPublish(nil, topic, 1, 7, payload)
		}
	})
}
