package device

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/message"
)

// Telemetry over AMQP (and AMQP over WebSocket) reaches the hub's log
// with its body, system and application properties.
func TestAMQPSendEventToHub(t *testing.T) {
	h := startHub(t, nil)
	for _, ws := range []bool{false, true} {
		id := map[bool]string{false: "a1", true: "a1ws"}[ws]
		c := openOn(t, h, id, Options{Transport: TransportAMQP, WebSocket: ws}, nil)
		m := &message.Message{Body: []byte(`{"t":21}`), MessageID: "m1", ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"alert": "true"}}
		if err := c.SendEvent(testCtx(t), m); err != nil {
			t.Fatalf("SendEvent (websocket %v) = %v", ws, err)
		}
		log := h.Telemetry()
		evs, _ := log.Read(log.PartitionOf(id), 0, 100)
		var got *message.Message
		for _, ev := range evs {
			if ev.DeviceID == id {
				got = ev.Message
			}
		}
		if got == nil || string(got.Body) != `{"t":21}` || got.MessageID != "m1" || got.ContentType != "application/json" ||
			got.ContentEncoding != "utf-8" || got.Properties["alert"] != "true" {
			t.Errorf("websocket %v: logged %+v; want the body, ids, content type and alert=true sent", ws, got)
		}
	}
}

// Direct methods and the twin over AMQP: the hub's method call gets the
// handler's answer, reported properties are patched and read back, a
// desired change reaches the handler.
func TestAMQPMethodsAndTwin(t *testing.T) {
	h := startHub(t, nil)
	desired := make(chan int64, 4)
	c := openOn(t, h, "m1", Options{Transport: TransportAMQP}, func(c Conn) {
		c.HandleMethod("reboot", func(_ context.Context, r *MethodRequest) MethodResponse {
			return MethodResponse{Status: 201, Payload: append([]byte(`{"got":`), append(r.Payload, '}')...)}
		})
		c.SetDesiredHandler(func(patch json.RawMessage, v int64) { desired <- v })
	})
	status, payload, err := h.InvokeMethod(testCtx(t), "m1", "", "reboot", json.RawMessage(`{"delay":5}`), 0, waitFor)
	if err != nil || status != 201 || string(payload) != `{"got":{"delay":5}}` {
		t.Errorf("InvokeMethod = %d %s %v; want 201 {\"got\":{\"delay\":5}}", status, payload, err)
	}
	status, payload, err = h.InvokeMethod(testCtx(t), "m1", "", "other", nil, 0, waitFor)
	if err != nil || status != 404 {
		t.Errorf("InvokeMethod(other) = %d %s %v; want 404", status, payload, err)
	}
	v, err := c.UpdateReported(testCtx(t), map[string]any{"fw": "1.0"})
	if err != nil || v < 1 {
		t.Fatalf("UpdateReported = %d, %v; want a version", v, err)
	}
	tw, err := c.GetTwin(testCtx(t))
	if err != nil {
		t.Fatalf("GetTwin = %v", err)
	}
	var rep map[string]any
	if json.Unmarshal(tw.Reported, &rep); rep["fw"] != "1.0" || tw.ReportedVersion() != v {
		t.Errorf("twin reported %s (version %d); want fw 1.0 at version %d", tw.Reported, tw.ReportedVersion(), v)
	}
	h.DesiredChanged("m1", "", json.RawMessage(`{"interval":5,"$version":7}`), 7)
	select {
	case got := <-desired:
		if got != 7 {
			t.Errorf("desired version %d; want 7", got)
		}
	case <-testCtx(t).Done():
		t.Fatal("the desired change never reached the handler")
	}
}

// A wrong key is refused at put-token with an *AMQPError wrapping
// ErrUnauthorized, and Connect does not retry it.
func TestAMQPUnauthorized(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "u1")
	cs.SharedAccessKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	c, err := Open(&Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Transport: TransportAMQP, RetryConnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	err = c.Connect(testCtx(t))
	var ae *AMQPError
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &ae) || ae.Condition != "amqp:unauthorized-access" {
		t.Errorf("Connect with a wrong key = %v; want an *AMQPError amqp:unauthorized-access wrapping ErrUnauthorized", err)
	}
}

// Close ends every goroutine the AMQP and HTTPS clients started
// (their receive loops, pollers and connections).
func TestCloseEndsEveryGoroutine(t *testing.T) {
	h := startHub(t, nil)
	for _, tr := range []Transport{TransportAMQP, TransportHTTPS} {
		ignore := goleak.IgnoreCurrent()
		cs := hubDevice(t, h, "g-"+tr.String())
		c, err := Open(&Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		c.SetC2DHandler(func(*message.Message) {})
		if tr != TransportHTTPS {
			c.SetDesiredHandler(func(json.RawMessage, int64) {})
		}
		if err := c.Connect(testCtx(t)); err != nil {
			t.Fatalf("Connect(%s) = %v", tr, err)
		}
		if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("x")}); err != nil {
			t.Fatalf("SendEvent(%s) = %v", tr, err)
		}
		c.Close(context.Background())
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("%s: goroutines left after Close: %v", tr, err)
		}
	}
}

// A desired handler that reports (as the simulator's echo does) gets
// its answer: handlers do not run on the twin link's receive loop.
func TestAMQPDesiredHandlerMayReport(t *testing.T) {
	h := startHub(t, nil)
	reported := make(chan error, 1)
	self := make(chan Conn, 1)
	self <- openOn(t, h, "e1", Options{Transport: TransportAMQP}, func(cn Conn) {
		cn.SetDesiredHandler(func(patch json.RawMessage, v int64) {
			c := <-self
			_, err := c.UpdateReported(testCtx(t), patch)
			reported <- err
		})
	})
	h.DesiredChanged("e1", "", json.RawMessage(`{"mode":"eco","$version":2}`), 2)
	select {
	case err := <-reported:
		if err != nil {
			t.Errorf("UpdateReported from the desired handler = %v", err)
		}
	case <-testCtx(t).Done():
		t.Fatal("UpdateReported from the desired handler never returned")
	}
}

// amqpHeader connects a device with opts to a TLS server that reads the
// AMQP protocol header the client sends first and hangs up, and returns
// that header.
func amqpHeader(t *testing.T, opts Options) []byte {
	t.Helper()
	cert, pool, _ := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		hdr := make([]byte, 8)
		if _, err := io.ReadFull(c, hdr); err != nil {
			hdr = nil
		}
		got <- hdr
	}()
	opts.HostName, opts.RootCAs, opts.Transport = ln.Addr().String(), pool, TransportAMQP
	c, err := Open(&opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	_ = c.Connect(testCtx(t)) // the server hangs up
	return recv(t, got, "the client's protocol header")
}

// A SAS device opens AMQP with SASL (protocol id 3, then ANONYMOUS and
// a put-token on $cbs); an X.509 device opens it without SASL (protocol
// id 0), as the SDKs do: azure-iot-sdk-java AmqpsIotHubConnection.java
// ("x509 authentication does not use SASL, so disable it"),
// azure-iot-sdk-node (rhea adds no SASL layer without a user name).
func TestAMQPX509OpensWithoutSASL(t *testing.T) {
	certPEM, keyPEM, err := devicecert.New("x1", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := certFiles(t, certPEM, keyPEM)
	if hdr := amqpHeader(t, Options{DeviceID: "x1", CertFile: cf, KeyFile: kf}); string(hdr) != "AMQP\x00\x01\x00\x00" {
		t.Errorf("X.509 device's protocol header %q; want AMQP 0 1.0.0 (no SASL)", hdr)
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	if hdr := amqpHeader(t, Options{DeviceID: "s1", SharedAccessKey: key}); string(hdr) != "AMQP\x03\x01\x00\x00" {
		t.Errorf("SAS device's protocol header %q; want AMQP 3 1.0.0 (SASL)", hdr)
	}
}

// A device over AMQP keeps its connection and links across its first
// token's expiry by putting a new token on $cbs before it (as
// azure-iot-sdk-node's updateSharedAccessSignature does: no reconnect);
// the hub ends the links of a token that expires unrenewed. With
// TokenTTL 2s the test waits for put-tokens (events) until one comes
// after the first token's expiry, a few seconds in all.
func TestAMQPTokenRenewalKeepsTheLinks(t *testing.T) {
	// In parallel: it waits for the first token to expire. The token
	// lives 4 to 5 s (se is whole seconds) and is renewed at
	// renewFraction of that, which leaves the renewal most of a second
	// on a loaded machine.
	t.Parallel()
	h := startHub(t, nil)
	cs := hubDevice(t, h, "renew1")
	events := newEventLog()
	c, err := Open(&Options{ConnectionString: cs.Format(), CAFile: h.CAFile(), Transport: TransportAMQP, TokenTTL: 5 * time.Second,
		OnState: events.on})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	puts := make(chan time.Time, 100)
	c.(*amqpClient).cfg.onPutToken = func(exp time.Time) { puts <- exp }
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	checkRenewedPastExpiry(t, c, puts, events)
	if !c.Connected() || h.Connected() != 1 {
		t.Errorf("Connected() = %v, hub sees %d; want still connected", c.Connected(), h.Connected())
	}
}

// checkRenewedPastExpiry waits for the put-tokens of c (their expiries
// on puts) until one comes after the first token expired, each with a
// fresh token; then c sends, and events holds no state but the first
// connect's: the renewals kept the links.
func checkRenewedPastExpiry(t *testing.T, c Conn, puts chan time.Time, events *eventLog) {
	t.Helper()
	first := recv(t, puts, "the first put-token")
	for n := 2; ; n++ {
		exp := recv(t, puts, "a renewal put-token")
		if !exp.After(first) {
			t.Fatalf("put-token %d expires at %s, the first at %s; want a fresh token", n, exp, first)
		}
		if time.Now().After(first) {
			break // this renewal came after the first token expired
		}
	}
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("renewed")}); err != nil {
		t.Fatalf("SendEvent after the first token expired = %v", err)
	}
	for drained := false; !drained; {
		select {
		case e := <-events.ch:
			if e.State != StateConnecting && e.State != StateConnected {
				t.Errorf("state event %+v; want none but the first connect's (the renewal keeps the links)", e)
			}
		default:
			drained = true
		}
	}
}
