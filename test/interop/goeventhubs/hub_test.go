package goeventhubs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/message"
)

// testTimeout bounds every wait.
const testTimeout = 30 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// testHub is an in-process hub with a TLS config that trusts its CA.
type testHub struct {
	t       *testing.T
	hub     *hub.Hub
	tls     *tls.Config
	devices map[string]*device.Client
}

func startHub(t *testing.T) *testHub {
	t.Helper()
	if os.Getenv("IOTCTL_SKIP_INTEROP") == "1" {
		t.Skip("IOTCTL_SKIP_INTEROP=1")
	}
	// The hub's clock moves on a millisecond each time it is read, so
	// that events sent in a burst have enqueued times of their own
	// (AMQP timestamps and the time filters have millisecond
	// precision); it stays within a second or so of the wall clock.
	base := time.Now()
	var ticks atomic.Int64
	now := func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * time.Millisecond) }
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, Now: now})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("starting the hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	pem, err := os.ReadFile(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", h.CAFile())
	}
	// azeventhubs gives go-amqp the endpoint's host with its port as
	// the host name (internal/namespace.go), which go-amqp would use as
	// the TLS server name; Azure's endpoints have no port, ours does.
	return &testHub{t: t, hub: h, tls: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}}
}

// eventHubCS is the Event Hub-compatible connection string of policy.
func (h *testHub) eventHubCS(policy string) string {
	h.t.Helper()
	cs, err := h.hub.EventHubConnectionString(policy)
	if err != nil {
		h.t.Fatal(err)
	}
	return cs
}

// send makes device id (created and connected on first use) send n
// telemetry messages over MQTT and returns the events the hub logged
// from it, oldest first.
func (h *testHub) send(id string, n int) []telemetry.Event {
	h.t.Helper()
	if h.devices == nil {
		h.devices = map[string]*device.Client{}
	}
	ctx := testCtx(h.t)
	d := h.devices[id]
	if d == nil {
		if err := h.hub.CreateDevice(id); err != nil {
			h.t.Fatal(err)
		}
		cs, err := h.hub.DeviceConnectionString(id, "")
		if err != nil {
			h.t.Fatal(err)
		}
		d, err = device.New(&device.Options{ConnectionString: cs, CAFile: h.hub.CAFile()})
		if err != nil {
			h.t.Fatal(err)
		}
		if err := d.Connect(ctx); err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(func() { _ = d.Close(context.Background()) })
		h.devices[id] = d
	}
	for i := range n {
		if err := d.SendEvent(ctx, &message.Message{Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			h.t.Fatal(err)
		}
	}
	return h.events(id)
}

// events returns the events of device id in its partition.
func (h *testHub) events(id string) []telemetry.Event {
	log := h.hub.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 1000)
	var out []telemetry.Event
	for _, ev := range evs {
		if ev.DeviceID == id {
			out = append(out, ev)
		}
	}
	return out
}

// partition is the partition id device id's telemetry goes to.
func (h *testHub) partition(id string) string {
	return fmt.Sprint(h.hub.Telemetry().PartitionOf(id))
}
