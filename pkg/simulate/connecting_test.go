package simulate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
)

// gatedConn is a fakeConn whose Connect waits for a token on gate,
// counting the connects in progress.
type gatedConn struct {
	*fakeConn
	g *gate
}

type gate struct {
	entered chan struct{} // one value per Connect that started
	release chan struct{} // one value lets one Connect finish

	mu        sync.Mutex
	inFlight  int
	maxFlight int
}

func (c *gatedConn) Connect(ctx context.Context) error {
	g := c.g
	g.mu.Lock()
	g.inFlight++
	g.maxFlight = max(g.maxFlight, g.inFlight)
	g.mu.Unlock()
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return c.fakeConn.Connect(ctx)
}

func TestFleetBoundsDevicesConnectingAtOnce(t *testing.T) {
	const n, limit = 40, 3
	ids := FleetIDs("sim-", n)
	keys := KeyMap{}
	for _, id := range ids {
		keys[id] = "c2VjcmV0"
	}
	g := &gate{entered: make(chan struct{}, n), release: make(chan struct{})}
	f, err := New(&Options{Device: device.Options{HostName: "hub.example.net"}, DeviceIDs: ids, Keys: keys,
		Count: 1, MaxConnecting: limit})
	if err != nil {
		t.Fatal(err)
	}
	f.dial = func(o *device.Options) (Conn, error) { return &gatedConn{fakeConn: newFake(o), g: g}, nil }
	done := make(chan Stats, 1)
	go func() {
		st, _ := f.Run(context.Background())
		done <- st
	}()
	// The first limit devices start connecting; each release lets one
	// finish, after which one more starts, until all are through.
	for range limit {
		recv(t, g.entered, "a device connecting")
	}
	for i := range n {
		g.release <- struct{}{}
		if i+limit < n {
			recv(t, g.entered, "the next device connecting")
		}
	}
	st := recv(t, done, "the end of the run")
	if st.Acked != n {
		t.Errorf("acked %d; want %d", st.Acked, n)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxFlight != limit {
		t.Errorf("at most %d devices connected at once; want %d (MaxConnecting)", g.maxFlight, limit)
	}
}

func TestNewRefusesNegativeMaxConnecting(t *testing.T) {
	if _, err := New(&Options{Device: device.Options{DeviceID: "d"}, MaxConnecting: -1}); err == nil {
		t.Error("New(MaxConnecting -1) = nil error")
	}
}

func TestFleetReleasesMemoryOnceAllHaveConnected(t *testing.T) {
	const n = 20
	ids := FleetIDs("sim-", n)
	keys := KeyMap{}
	for _, id := range ids {
		keys[id] = "c2VjcmV0"
	}
	var connects atomic.Int64
	sink := func(e Event) {
		if e.Type == EventConnected {
			connects.Add(1)
		}
	}
	f, _ := fakeFleet(t, &Options{Device: device.Options{HostName: "h"}, DeviceIDs: ids, Keys: keys, Count: 1, MaxConnecting: 4,
		Interval: time.Hour, Sink: sink})
	connectedThen := make(chan int64, 2)
	f.releaseMemory = func() { connectedThen <- connects.Load() }
	if _, err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, connectedThen, "the release"); got != n {
		t.Errorf("memory released after %d devices connected; want all %d", got, n)
	}
	select {
	case <-connectedThen:
		t.Error("memory released twice")
	default:
	}
}
