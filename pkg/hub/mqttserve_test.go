package hub

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
)

// readPacket reads one packet from c (within 10 s) and returns its type
// and the bytes after its fixed header.
func readPacket(t *testing.T, r *bufio.Reader, c *tls.Conn) (byte, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := r.ReadByte()
	if err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	var fh packets.FixedHeader
	if err := fh.Decode(b); err != nil {
		t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		t.Fatal(err)
	}
	rest := make([]byte, n)
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatal(err)
	}
	return fh.Type, rest
}

func writePacket(t *testing.T, c *tls.Conn, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = 4
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	default:
		t.Fatalf("writePacket: type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// mqttConnOf returns the MQTT connection of device id, or nil.
func mqttConnOf(h *Hub, id string) *mqttConn {
	s := h.core.Session(ident(id))
	if s == nil {
		return nil
	}
	c, _ := s.Conn().(*mqttConn)
	return c
}

// Each MQTT connection runs on one goroutine, the hub's read loop, and
// none of mochi's writers.
func TestMQTTConnectionRunsOnOneGoroutine(t *testing.T) {
	h := startHub(t)
	ids := []string{"dev1", "dev2", "dev3"}
	for _, id := range ids {
		rawMQTT(t, h, createDevice(t, h, id), message.MethodRequestFilter)
	}
	loops, writers := 0, 0
	for _, g := range goroutineStacks() {
		if strings.Contains(g, "hub.(*Hub).mqttConnLoop(") {
			loops++
		}
		if strings.Contains(g, "mochi-mqtt/server/v2.(*Client).WriteLoop(") {
			writers++
		}
	}
	if loops != len(ids) || writers != 0 {
		t.Errorf("%d connections run %d read loops and %d mochi writers; want %d and 0", len(ids), loops, writers, len(ids))
	}
}

// A C2D message waiting when the device subscribes comes after the
// SUBACK.
func TestMQTTSubackComesBeforeAWaitingC2DMessage(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m1", Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	c := rawMQTT(t, h, cs, message.C2DFilter("dev1"))
	typ, rest := readPacket(t, bufio.NewReader(c), c)
	if typ != packets.Publish || !bytes.Contains(rest, []byte("hello")) {
		t.Fatalf("after the SUBACK: packet type %d % x; want the C2D PUBLISH", typ, rest)
	}
}

// PINGREQ is answered, UNSUBSCRIBE acknowledged and ends the
// subscription, and a PUBREL (a QoS 2 exchange, which IoT Hub does not
// take part in) ends the connection.
func TestMQTTPingUnsubscribeAndQoS2Flow(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	c := rawMQTT(t, h, cs, message.MethodRequestFilter)
	r := bufio.NewReader(c)

	writePacket(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if typ, _ := readPacket(t, r, c); typ != packets.Pingresp {
		t.Fatalf("PINGREQ answered with packet type %d; want PINGRESP", typ)
	}

	conn := mqttConnOf(h, "dev1")
	if conn == nil || !conn.subscribed(message.MethodRequestFilter) {
		t.Fatal("dev1 has no session subscribed to method requests")
	}
	writePacket(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 7,
		Filters: packets.Subscriptions{{Filter: message.MethodRequestFilter}}})
	if typ, rest := readPacket(t, r, c); typ != packets.Unsuback || !bytes.Equal(rest, []byte{0, 7}) {
		t.Fatalf("UNSUBSCRIBE answered with packet type %d % x; want UNSUBACK 00 07", typ, rest)
	}
	if conn.subscribed(message.MethodRequestFilter) {
		t.Error("the method subscription is still there after UNSUBSCRIBE")
	}

	writePacket(t, c, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 9})
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ne net.Error
	if _, err := r.ReadByte(); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("after a PUBREL the connection is still open (read: %v)", err)
	}
}

// A device that connects with CleanSession 0 keeps its C2D
// subscription across connections: it gets a message sent while it was
// away without subscribing again. CleanSession 1 starts without it.
func TestMQTTPersistentSessionKeepsTheC2DSubscription(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	first := rawMQTT(t, h, cs, message.C2DFilter("dev1"))
	first.Close()
	deadline := time.After(10 * time.Second)
	for {
		changed := h.core.Wait(ident("dev1"))
		if h.core.Session(ident("dev1")) == nil {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("the first connection's session did not end")
		}
	}
	if _, err := h.reg.Enqueue("dev1", "", &registry.C2DMessage{MessageID: "m1", Body: []byte("while away")}); err != nil {
		t.Fatal(err)
	}
	c, present := rawConnect(t, h, cs, false)
	if !present {
		t.Error("CONNACK with CleanSession 0 after a session: Session Present 0; want 1")
	}
	if typ, rest := readPacket(t, bufio.NewReader(c), c); typ != packets.Publish || !bytes.Contains(rest, []byte("while away")) {
		t.Fatalf("after the CONNACK: packet type %d % x; want the C2D PUBLISH", typ, rest)
	}
	c.Close()

	if _, present := rawConnect(t, h, cs, true); present {
		t.Error("CONNACK with CleanSession 1: Session Present 1; want 0")
	}
	if _, present := rawConnect(t, h, cs, false); present {
		t.Error("CONNACK with CleanSession 0 after a clean session: Session Present 1; want 0")
	}
}
