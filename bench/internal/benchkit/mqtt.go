package benchkit

import (
	"context"
	"crypto/tls"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/pkg/sas"
)

// ConnectDevice connects device id to the hub's MQTT listener at addr
// (host:port) over TLS as the Azure IoT device SDKs do: host is the
// hub's host name, key the device's symmetric key, signing a SAS token
// valid for an hour. The session is persistent (clean session off),
// without automatic reconnection, a 5 min keep-alive, unordered
// delivery to handlers and up to 1024 publishes resumed in flight. tc
// is cloned, not modified. It returns once the hub has accepted the
// connection, or ctx.Err() when ctx ends first.
func ConnectDevice(ctx context.Context, addr, host, id string, key []byte, tc *tls.Config) (paho.Client, error) {
	tok, err := sas.Sign(sas.DeviceResource(host, id), key, &sas.SignOptions{TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	opts := paho.NewClientOptions().AddBroker("tls://" + addr).SetClientID(id).
		SetUsername(host + "/" + id + "/?api-version=2021-04-12").SetPassword(tok.Encode()).
		SetTLSConfig(tc.Clone()).SetCleanSession(false).SetAutoReconnect(false).SetProtocolVersion(4).
		SetKeepAlive(5 * time.Minute).SetOrderMatters(false).SetMaxResumePubInFlight(1024)
	c := paho.NewClient(opts)
	t := c.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c, t.Error()
}

// Window keeps at most n publishes unacknowledged on one connection:
// Send waits for the oldest to be acknowledged before it publishes the
// next. Its counts are for one goroutine; it is not safe for
// concurrent use.
type Window struct {
	ctx      context.Context
	inflight chan paho.Token
	acked    int64
}

// NewWindow is a Window of n (at least 1) publishes in flight whose
// waits end with ctx.Err() when ctx ends.
func NewWindow(ctx context.Context, n int) *Window {
	return &Window{ctx: ctx, inflight: make(chan paho.Token, max(n, 1))}
}

// Send waits, when the window is full, for the oldest publish's
// acknowledgement, then calls publish (such as
// `func() paho.Token { return c.Publish(topic, 1, false, body) }`) and
// keeps its token. It returns the error of the publish it waited for, or
// ctx.Err().
func (w *Window) Send(publish func() paho.Token) error {
	if len(w.inflight) == cap(w.inflight) {
		if err := w.waitOldest(); err != nil {
			return err
		}
	}
	w.inflight <- publish()
	return nil
}

// Drain waits for every publish in flight to be acknowledged, and
// returns the first error or ctx.Err().
func (w *Window) Drain() error {
	for len(w.inflight) > 0 {
		if err := w.waitOldest(); err != nil {
			return err
		}
	}
	return nil
}

// Acked is the number of publishes acknowledged so far.
func (w *Window) Acked() int64 { return w.acked }

func (w *Window) waitOldest() error {
	t := <-w.inflight
	select {
	case <-t.Done():
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	if err := t.Error(); err != nil {
		return err
	}
	w.acked++
	return nil
}
