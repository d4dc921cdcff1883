package hub

import (
	"context"
	"net"
	"testing"
	"time"
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
		changed := h.sessions.wait("dev1")
		if s := h.sessions.get("dev1"); s != nil && h.Connected() == 1 {
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
