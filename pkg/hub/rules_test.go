package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/sas"
)

// IoT Hub closes the connection of a device that publishes at QoS 2.
func TestQoS2PublishDisconnects(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.c.Publish("devices/dev1/messages/events/", 2, false, "x")
	select {
	case <-d.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("a QoS 2 publish did not disconnect the device")
	}
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf("dev1"), 0, 10)
	if len(evs) != 0 {
		t.Errorf("the QoS 2 message was stored: %+v", evs)
	}
}

// A second connection with the same device id drops the first.
func TestSecondConnectionDropsTheFirst(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	first, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, h, cs, ""); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	select {
	case <-first.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the first connection was not dropped")
	}
	// The second session is registered just after its CONNACK; wait
	// for that change rather than racing it.
	deadline := time.After(10 * time.Second)
	for {
		changed := h.core.Wait(ident("dev1"))
		if s := h.core.Session(ident("dev1")); s != nil && h.Connected() == 1 {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("Connected() = %d; want 1", h.Connected())
		}
	}
}

// Close does not wait for a client that connected and never spoke.
func TestCloseEndsSilentConnections(t *testing.T) {
	h := New(&Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", h.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a silent connection")
	}
}

// A CONNECT for MQTT 5 gets the MQTT 3.1.1 CONNACK "unacceptable
// protocol version" (return code 0x01) and the connection is closed,
// as IoT Hub's 3.1.1 endpoint answers; the same CONNECT at level 4 is
// accepted.
func TestMQTT5Refused(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	for _, tc := range []struct {
		version byte
		want    []byte
	}{
		{5, []byte{0x20, 0x02, 0x00, 0x01}},
		{4, []byte{0x20, 0x02, 0x00, 0x00}},
	} {
		c, err := tls.Dial("tcp", h.Addrs()[0], tlsFor(t, h))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		key, _ := cs.Key()
		tok, err := sas.Sign(sas.DeviceResource(cs.HostName, "dev1"), key, nil)
		if err != nil {
			t.Fatal(err)
		}
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Connect},
			ProtocolVersion: tc.version,
			Connect: packets.ConnectParams{
				ProtocolName:     []byte("MQTT"),
				ClientIdentifier: "dev1",
				Keepalive:        60,
				UsernameFlag:     true,
				Username:         []byte(cs.HostName + "/dev1/?api-version=2021-04-12"),
				PasswordFlag:     true,
				Password:         []byte(tok.Encode()),
			},
		}
		var buf bytes.Buffer
		if err := pk.ConnectEncode(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(tc.want))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("MQTT level %d: reading the CONNACK: %v", tc.version, err)
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("MQTT level %d: CONNACK % x; want % x", tc.version, got, tc.want)
		}
		if tc.version == 5 {
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Errorf("MQTT 5: the hub sent %d more bytes and kept the connection open; want it closed", n)
			}
		}
	}
}

// A device's connection ends when its SAS token expires, as on IoT Hub;
// a device whose token is still valid stays connected.
func TestExpiredTokenEndsTheConnection(t *testing.T) {
	h := startHub(t)
	short := createDevice(t, h, "short")
	long := createDevice(t, h, "long")
	tok, err := sas.Sign(sas.DeviceResource(short.HostName, "short"), mustKey(t, short), &sas.SignOptions{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d, err := dial(t, h, short, tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, h, long, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.lost:
	case <-time.After(15 * time.Second):
		t.Fatal("the device is still connected after its token expired")
	}
	if now := time.Now(); !tok.Expired(now) {
		t.Errorf("the connection ended at %v, before its token expired at %v", now, tok.Expiry())
	}
	if h.core.Session(ident("long")) == nil {
		t.Error("the device with a valid token was disconnected too")
	}
}
