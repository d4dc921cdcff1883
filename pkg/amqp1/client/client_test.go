package client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	"go.uber.org/goleak"

	"github.com/iotctl/iotctl/internal/cbs"
	"github.com/iotctl/iotctl/pkg/amqp1/client"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/sas"
)

const waitFor = 10 * time.Second

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func startHub(t *testing.T) *hub.Hub {
	t.Helper()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("starting the hub: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// dial connects to h over TLS and opens AMQP.
func dial(t *testing.T, h *hub.Hub) *client.Conn {
	t.Helper()
	c, _ := dialNet(t, h)
	return c
}

// dialNet is dial that returns the network connection too.
func dialNet(t *testing.T, h *hub.Hub) (*client.Conn, net.Conn) {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	nc, err := d.DialContext(testCtx(t), "tcp", h.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(testCtx(t), nc, &client.Options{HostName: h.HostName(),
		Properties: map[string]any{"com.microsoft:client-version": "iotctl/test"}})
	if err != nil {
		t.Fatalf("Dial = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, nc
}

// device registers id and returns a token for it that lasts ttl.
func device(t *testing.T, h *hub.Hub, id string, ttl time.Duration) (audience, token string) {
	t.Helper()
	if err := h.CreateDevice(id); err != nil {
		t.Fatal(err)
	}
	s, err := h.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	cs := connstr.MustParse(s)
	key, err := sas.DecodeKey(cs.SharedAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	res := sas.DeviceResource(cs.HostName, id)
	tok, err := sas.Sign(res, key, &sas.SignOptions{Expiry: time.Now().Add(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	return res, tok.Encode()
}

// telemetry is an encoded telemetry message with body.
func telemetry(t *testing.T, body string) []byte {
	t.Helper()
	b, err := (&amqp.Message{Data: [][]byte{[]byte(body)}, ApplicationProperties: map[string]any{"k": "v"}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logged reports whether the hub's log has a message from id with body.
func logged(h *hub.Hub, id, body string) bool {
	log := h.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 1000)
	for _, ev := range evs {
		if ev.DeviceID == id && string(ev.Message.Body) == body && ev.Message.Properties["k"] == "v" {
			return true
		}
	}
	return false
}

// Many devices on one connection, on two sessions: each puts its own
// token (all at once) and sends on its own sender, and every message
// is in the hub's log under its device.
func TestManyDevicesOnOneConnection(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c := dial(t, h)
	sessions := make([]*client.Session, 2)
	for i := range sessions {
		s, err := c.NewSession(testCtx(t))
		if err != nil {
			t.Fatalf("NewSession = %v", err)
		}
		sessions[i] = s
	}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		id := fmt.Sprintf("many%02d", i)
		aud, tok := device(t, h, id, time.Hour)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := testCtx(t)
			if err := c.PutToken(ctx, cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
				errs <- fmt.Errorf("PutToken(%s) = %w", id, err)
				return
			}
			snd, err := sessions[i%2].NewSender(ctx, "/devices/"+id+"/messages/events", nil)
			if err != nil {
				errs <- fmt.Errorf("NewSender(%s) = %w", id, err)
				return
			}
			for j := range 3 {
				if err := snd.Send(ctx, telemetry(t, fmt.Sprintf("%s-%d", id, j))); err != nil {
					errs <- fmt.Errorf("Send(%s) = %w", id, err)
					return
				}
			}
			if err := snd.Close(ctx); err != nil {
				errs <- fmt.Errorf("Close(%s) = %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		id := fmt.Sprintf("many%02d", i)
		for j := range 3 {
			if body := fmt.Sprintf("%s-%d", id, j); !logged(h, id, body) {
				t.Errorf("%q from %s is not in the hub's log", body, id)
			}
		}
	}
}

// A large message goes in several transfer frames and arrives whole.
func TestLargeMessageIsSplit(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c := dial(t, h)
	aud, tok := device(t, h, "big", time.Hour)
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(testCtx(t), "/devices/big/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := string(make([]byte, 200_000))
	if err := snd.Send(testCtx(t), telemetry(t, body)); err != nil {
		t.Fatalf("Send(200 KB) = %v", err)
	}
	if !logged(h, "big", body) {
		t.Error("the 200 KB message is not in the hub's log")
	}
}

// A refused token is a 401 *cbs.StatusError; the connection and the
// devices already on it go on.
func TestRefusedToken(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c := dial(t, h)
	aud, tok := device(t, h, "good", time.Hour)
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(testCtx(t), "/devices/good/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	aud2, _ := device(t, h, "forged", time.Hour)
	forged, err := sas.Sign(aud2, make([]byte, 32), &sas.SignOptions{Expiry: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var se *cbs.StatusError
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud2, forged.Encode(), time.Time{}); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("PutToken(forged) = %v; want a 401 StatusError", err)
	}
	// Without a token the device's attach is refused.
	if _, err := s.NewSender(testCtx(t), "/devices/forged/messages/events", nil); !isCondition(err, "amqp:unauthorized-access") {
		t.Errorf("NewSender without a token = %v; want amqp:unauthorized-access", err)
	}
	if err := snd.Send(testCtx(t), telemetry(t, "still")); err != nil {
		t.Errorf("Send beside the refused device = %v", err)
	}
}

func isCondition(err error, cond string) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Condition == cond
}

// A token that expires ends its device's link (OnDetach with
// amqp:unauthorized-access) and no other device's.
func TestExpiredTokenEndsOnlyItsLinks(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c := dial(t, h)
	s, err := c.NewSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	open := func(id string, ttl time.Duration, onDetach func(error)) *client.Sender {
		aud, tok := device(t, h, id, ttl)
		if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
			t.Fatalf("PutToken(%s) = %v", id, err)
		}
		snd, err := s.NewSender(testCtx(t), "/devices/"+id+"/messages/events", &client.LinkOptions{OnDetach: onDetach})
		if err != nil {
			t.Fatalf("NewSender(%s) = %v", id, err)
		}
		return snd
	}
	detached := make(chan error, 1)
	short := open("short", 2*time.Second, func(err error) { detached <- err })
	keep := open("keep", time.Hour, func(err error) { t.Errorf("keep detached: %v", err) })
	select {
	case err := <-detached:
		if !isCondition(err, "amqp:unauthorized-access") {
			t.Errorf("short detached with %v; want amqp:unauthorized-access", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("the hub never detached the expired device's link")
	}
	var le *client.LinkError
	if err := short.Send(testCtx(t), telemetry(t, "late")); !errors.As(err, &le) {
		t.Errorf("Send on the detached link = %v; want a LinkError", err)
	}
	if err := keep.Send(testCtx(t), telemetry(t, "on")); err != nil {
		t.Errorf("Send beside the expired device = %v", err)
	}
}

// The loss of the network connection ends every link: Done is
// closed, Send returns a *ConnError.
func TestLostConnection(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c, nc := dialNet(t, h)
	aud, tok := device(t, h, "lost", time.Hour)
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	snd, err := s.NewSender(testCtx(t), "/devices/lost/messages/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	select {
	case <-c.Done():
	case <-testCtx(t).Done():
		t.Fatal("the connection did not end with the hub")
	}
	var ce *client.ConnError
	if err := c.Err(); !errors.As(err, &ce) {
		t.Errorf("Err() = %v; want a ConnError", err)
	}
	if err := snd.Send(testCtx(t), telemetry(t, "x")); !errors.As(err, &ce) {
		t.Errorf("Send after the end = %v; want a ConnError", err)
	}
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); !errors.As(err, &ce) {
		t.Errorf("PutToken after the end = %v; want a ConnError", err)
	}
}

// A peer that answers the handshake and then goes silent (no frame,
// no heartbeat, no close) ends the connection after the idle time-out
// announced in our open.
func TestSilentPeerEndsTheConnection(t *testing.T) {
	t.Parallel()
	cn, sn := net.Pipe()
	t.Cleanup(func() { sn.Close() })
	peerDone := make(chan error, 1)
	announced := make(chan uint32, 1)
	go func() { peerDone <- silentPeer(sn, announced, nil) }()
	c, err := client.Dial(testCtx(t), cn, &client.Options{IdleTimeout: 200 * time.Millisecond})
	if err == nil {
		defer c.Close()
	}
	// The peer answers no begin: Dial waits for its $cbs session until
	// the idle time-out ends the connection.
	var ce *client.ConnError
	if !errors.As(err, &ce) {
		t.Fatalf("Dial with a silent peer = %v; want a ConnError", err)
	}
	if got := <-announced; got != 200 {
		t.Errorf("open announced idle-time-out %d ms; want 200", got)
	}
	if err := <-peerDone; err != nil {
		t.Errorf("the silent peer: %v", err)
	}
}

// silentPeer answers SASL and the open on nc, reports the idle time-out
// of the client's open, then reads and ignores everything, or with a
// stop channel reads nothing more until stop is closed.
func silentPeer(nc net.Conn, announced chan<- uint32, stop <-chan struct{}) error {
	br := bufio.NewReader(nc)
	hdr := make([]byte, 8)
	exchange := func(h []byte) error {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return err
		}
		_, err := nc.Write(h)
		return err
	}
	send := func(typ uint8, b frames.Body) error {
		out, err := frames.Append(nil, typ, 0, b, nil)
		if err == nil {
			_, err = nc.Write(out)
		}
		return err
	}
	read := func(typ uint8) (frames.Body, error) {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return nil, err
		}
		h, err := frames.ParseHeader(hdr, 1<<20)
		if err != nil {
			return nil, err
		}
		body := make([]byte, int(h.Size)-8)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, err
		}
		return frames.Parse(typ, body[int(h.DataOffset)*4-8:])
	}
	if err := exchange([]byte("AMQP\x03\x01\x00\x00")); err != nil {
		return err
	}
	if err := send(frames.TypeSASL, &frames.SASLMechanisms{Mechanisms: []encoding.Symbol{"ANONYMOUS"}}); err != nil {
		return err
	}
	if _, err := read(frames.TypeSASL); err != nil {
		return err
	}
	if err := send(frames.TypeSASL, &frames.SASLOutcome{}); err != nil {
		return err
	}
	if err := exchange([]byte("AMQP\x00\x01\x00\x00")); err != nil {
		return err
	}
	b, err := read(frames.TypeAMQP)
	if err != nil {
		return err
	}
	open, ok := b.(*frames.Open)
	if !ok {
		return fmt.Errorf("got %T, want open", b)
	}
	announced <- open.IdleTimeout
	if err := send(frames.TypeAMQP, &frames.Open{ContainerID: "silent", MaxFrameSize: 65536, ChannelMax: 65535}); err != nil {
		return err
	}
	if stop == nil {
		_, _ = io.Copy(io.Discard, br) // until the client closes
		return nil
	}
	<-stop
	return nil
}

// A peer that takes no more bytes (a full TCP window, a wedged peer)
// ends the connection after the write time-out: the connection's
// writers and reader do not wait for ever.
func TestPeerThatTakesNothingEndsTheConnection(t *testing.T) {
	t.Parallel()
	cn, sn := net.Pipe()
	announced := make(chan uint32, 1)
	peerDone := make(chan error, 1)
	stop := make(chan struct{})
	go func() { peerDone <- silentPeer(sn, announced, stop) }()
	c, err := client.Dial(testCtx(t), cn, &client.Options{IdleTimeout: -1, WriteTimeout: 200 * time.Millisecond})
	if err == nil {
		c.Close()
	}
	var ce *client.ConnError
	if !errors.As(err, &ce) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Dial with a peer that reads nothing = %v; want a ConnError for the write deadline", err)
	}
	if got := <-announced; got != 0 {
		t.Errorf("open announced idle-time-out %d ms; want none", got)
	}
	close(stop)
	sn.Close()
	if err := <-peerDone; err != nil {
		t.Errorf("the peer: %v", err)
	}
}

// A manual receiver with credit 1 gets one message at a time, each
// only after the one before was settled: a released message comes
// back, an accepted one is done and the next follows.
func TestManualReceiverSettles(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c := dial(t, h)
	aud, tok := device(t, h, "manual", time.Hour)
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
		t.Fatalf("PutToken = %v", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := h.Registry().Enqueue("manual", "", &registry.C2DMessage{MessageID: id, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.NewSession(testCtx(t))
	if err != nil {
		t.Fatalf("NewSession = %v", err)
	}
	type got struct {
		id      string
		delID   uint32
		settled bool
	}
	msgs := make(chan got, 10)
	r, err := s.NewManualReceiver(testCtx(t), "/devices/manual/messages/devicebound", &client.LinkOptions{Credit: 1},
		func(payload []byte, id uint32, settled bool) {
			var m amqp.Message
			if err := m.UnmarshalBinary(append([]byte(nil), payload...)); err != nil {
				t.Errorf("UnmarshalBinary = %v", err)
				return
			}
			msgs <- got{id: fmt.Sprint(m.Properties.MessageID), delID: id, settled: settled}
		})
	if err != nil {
		t.Fatalf("NewManualReceiver = %v", err)
	}
	h.C2DEnqueued("manual", "")
	next := func() got {
		t.Helper()
		select {
		case g := <-msgs:
			if g.settled {
				t.Errorf("message %s came settled; want unsettled", g.id)
			}
			return g
		case <-testCtx(t).Done():
			t.Fatal("no message arrived")
			return got{}
		}
	}
	seen := map[string]int{}
	for i := range 3 {
		g := next()
		seen[g.id]++
		if len(msgs) != 0 {
			t.Fatalf("a message came before %s was settled, with credit 1", g.id)
		}
		outcome := client.Accepted
		if i == 0 {
			if g.id != "a" {
				t.Fatalf("first message %s; want a", g.id)
			}
			outcome = client.Released
		}
		if err := r.Settle(g.delID, outcome); err != nil {
			t.Fatalf("Settle(%s) = %v", g.id, err)
		}
	}
	if seen["a"] != 2 || seen["b"] != 1 {
		t.Errorf("deliveries %v; want a twice (released, then again) and b once", seen)
	}
	if err := r.Close(testCtx(t)); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// A message larger than a frame (this side takes 65,536 bytes, the
// local hub's C2D limit too, which counts less than the frame's
// header) comes in several transfers and is handed over whole; the
// next one, in one transfer, comes alone.
func TestLargeMessageIsReassembled(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	c := dial(t, h)
	aud, tok := device(t, h, "bigc2d", time.Hour)
	if err := c.PutToken(testCtx(t), cbs.TypeSAS, aud, tok, time.Time{}); err != nil {
		t.Fatalf("PutToken = %v", err)
	}
	big := make([]byte, 65_490)
	for i := range big {
		big[i] = byte('a' + i%26)
	}
	for _, m := range []*registry.C2DMessage{{MessageID: "big", Body: big}, {MessageID: "small", Body: []byte("small")}} {
		if _, err := h.Registry().Enqueue("bigc2d", "", m); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.NewSession(testCtx(t))
	if err != nil {
		t.Fatalf("NewSession = %v", err)
	}
	bodies := make(chan []byte, 10)
	r, err := s.NewReceiver(testCtx(t), "/devices/bigc2d/messages/devicebound", nil, func(payload []byte) {
		var m amqp.Message
		if err := m.UnmarshalBinary(append([]byte(nil), payload...)); err != nil {
			t.Errorf("UnmarshalBinary(%d bytes) = %v", len(payload), err)
			return
		}
		bodies <- m.GetData()
	})
	if err != nil {
		t.Fatalf("NewReceiver = %v", err)
	}
	h.C2DEnqueued("bigc2d", "")
	for _, want := range [][]byte{big, []byte("small")} {
		select {
		case got := <-bodies:
			if string(got) != string(want) {
				t.Errorf("body of %d bytes (%.10q...); want %d bytes (%.10q...)", len(got), got, len(want), want)
			}
		case <-testCtx(t).Done():
			t.Fatalf("no message of %d bytes arrived", len(want))
		}
	}
	if err := r.Close(testCtx(t)); err != nil {
		t.Errorf("Close = %v", err)
	}
}
