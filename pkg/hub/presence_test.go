package hub

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
)

// getDevice reads a device through the hub's service API.
func getDevice(t *testing.T, h *Hub, id string) iothub.Device {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFor(t, h)}}
	defer c.CloseIdleConnections()
	res, err := c.Do(serviceRequest(t, h, "GET", "/devices/"+id, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var d iothub.Device
	if err := json.Unmarshal(body, &d); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /devices/%s: %d %s (%v)", id, res.StatusCode, body, err)
	}
	return d
}

// ident is the identity of an MQTT client id.
func ident(clientID string) core.Identity {
	d, m := splitClientID(clientID)
	return core.Identity{DeviceID: d, ModuleID: m}
}

// waitDisconnected waits until the hub has seen id's connection end.
func waitDisconnected(t *testing.T, h *Hub, id string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := h.core.Wait(ident(id))
		if h.core.Session(ident(id)) == nil {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s is still connected", id)
		}
	}
}

// A device that disconnects keeps its connectionStateUpdatedTime (the
// time it disconnected) and lastActivityTime in the service API, also
// after the hub restarts.
func TestDisconnectedDeviceKeepsItsTimes(t *testing.T) {
	dir := t.TempDir()
	h := New(&Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	cs := createDevice(t, h, "dev1")
	if d := getDevice(t, h, "dev1"); d.ConnectionState != iothub.Disconnected || !d.ConnectionStateUpdatedTime.IsZero() || !d.LastActivityTime.IsZero() {
		t.Fatalf("a device that never connected: %+v; want Disconnected with zero times", d)
	}
	start := time.Now()
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.publish(t, message.TelemetryTopic("dev1", "", nil), 1, "hello")
	connected := getDevice(t, h, "dev1")
	if connected.ConnectionState != iothub.Connected || connected.LastActivityTime.Before(start) {
		t.Fatalf("a connected device: %+v", connected)
	}
	d.c.Disconnect(100)
	waitDisconnected(t, h, "dev1")

	check := func(when string) {
		got := getDevice(t, h, "dev1")
		if got.ConnectionState != iothub.Disconnected {
			t.Errorf("%s: connectionState %q; want Disconnected", when, got.ConnectionState)
		}
		if got.ConnectionStateUpdatedTime.Before(connected.LastActivityTime.Time) {
			t.Errorf("%s: connectionStateUpdatedTime %v; want the time it disconnected, after %v", when,
				got.ConnectionStateUpdatedTime, connected.LastActivityTime)
		}
		if !got.LastActivityTime.Equal(connected.LastActivityTime.Time) {
			t.Errorf("%s: lastActivityTime %v; want %v, its last message", when, got.LastActivityTime, connected.LastActivityTime)
		}
	}
	check("after the disconnect")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h = New(&Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	check("after a restart")
}
