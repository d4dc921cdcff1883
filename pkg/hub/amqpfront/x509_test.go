package amqpfront

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// x509Hub is a device hub whose X509 check takes a client certificate
// for the identity its CN names ("d1", or "d1/m1" for a module), as
// the hub's CA-signed check does; the certificate checks themselves are
// the hub's (pkg/hub x509auth.go).
func x509Hub(t *testing.T) *deviceHub {
	t.Helper()
	h := newDeviceHub(t, &Options{X509: func(nc net.Conn, deviceID, moduleID string) error {
		tc, ok := nc.(*tls.Conn)
		if !ok || len(tc.ConnectionState().PeerCertificates) == 0 {
			return ErrNoClientCertificate
		}
		want := (core.Identity{DeviceID: deviceID, ModuleID: moduleID}).Key()
		if cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != want {
			return errors.New("x509: unauthorized: client certificate CN " + cn + " is not " + want)
		}
		return nil
	}})
	h.createDevice("d1", "d2")
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: "d1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	return h
}

// selfSigned makes a self-signed certificate with subject CN cn.
func selfSigned(t testing.TB, cn string) tls.Certificate {
	t.Helper()
	now := time.Now()
	certPEM, keyPEM, err := devicecert.New(cn, now.Add(-time.Hour), now.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialTLS connects over TLS on net.Pipe, presenting a client
// certificate for cn ("" for none), with no SASL layer, as the Node and
// .NET device SDKs open an X.509 connection.
func (h *deviceHub) dialTLS(cn string) *amqp.Session {
	h.t.Helper()
	server := selfSigned(h.t, "myhub.local")
	ccfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own server
	if cn != "" {
		ccfg.Certificates = []tls.Certificate{selfSigned(h.t, cn)}
	}
	ctx := testCtx(h.t)
	// Loopback TCP rather than net.Pipe: a TLS close_notify needs a
	// buffer to land in while nobody reads.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv, err := ln.Accept()
		if err != nil {
			return
		}
		_ = h.f.Serve(ctx, tls.Server(srv, &tls.Config{Certificates: []tls.Certificate{server}, ClientAuth: tls.RequestClientCert}))
	}()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := amqp.NewConn(ctx, tls.Client(cli, ccfg), nil)
	if err != nil {
		h.t.Fatalf("amqp.NewConn over TLS: %v", err)
	}
	h.t.Cleanup(func() {
		_ = c.Close()
		<-done
	})
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// A device with an X.509 certificate attaches its links with no token
// on $cbs; its telemetry is marked as X.509-authenticated and it
// receives C2D messages. Links of another identity on the same
// connection are refused with amqp:unauthorized-access naming the
// reason.
func TestX509DeviceLinks(t *testing.T) {
	h := x509Hub(t)
	ctx := testCtx(t)
	s := h.dialTLS("d1")
	snd, err := s.NewSender(ctx, "/devices/d1/messages/events", nil)
	if err != nil {
		t.Fatalf("attaching d1's telemetry sender with d1's certificate: %v", err)
	}
	if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("hi")}}, nil); err != nil {
		t.Fatal(err)
	}
	evs, _ := h.tel.Read(h.tel.PartitionOf("d1"), 0, 10)
	if len(evs) != 1 || evs[0].DeviceID != "d1" || evs[0].AuthMethod != "x509" {
		t.Fatalf("events %+v; want one from d1 authenticated with x509", evs)
	}
	if _, err := h.reg.Enqueue("d1", "", &registry.C2DMessage{MessageID: "c1", Body: []byte("down")}); err != nil {
		t.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "/devices/d1/messages/devicebound", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatalf("attaching d1's C2D receiver: %v", err)
	}
	if m := receiveOne(ctx, t, rcv); m.Properties == nil || m.Properties.MessageID != "c1" {
		t.Fatalf("C2D message %+v; want c1", m.Properties)
	}
	for _, addr := range []string{"/devices/d2/messages/events", "/devices/d1/modules/m1/messages/events"} {
		_, err := s.NewSender(ctx, addr, nil)
		if condition(err) != string(amqp.ErrCondUnauthorizedAccess) || !strings.Contains(err.Error(), "client certificate") {
			t.Errorf("attaching %s with d1's certificate: %v; want amqp:unauthorized-access naming the certificate", addr, err)
		}
	}
	if h.core.Session(core.Identity{DeviceID: "d2"}) != nil {
		t.Error("d2 is connected after a refused link")
	}
}

// A module's certificate authenticates the module's links, not its
// device's.
func TestX509ModuleLinks(t *testing.T) {
	h := x509Hub(t)
	ctx := testCtx(t)
	s := h.dialTLS("d1/m1")
	snd, err := s.NewSender(ctx, "/devices/d1/modules/m1/messages/events", nil)
	if err != nil {
		t.Fatalf("attaching m1's telemetry sender with its certificate: %v", err)
	}
	if err := snd.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("hi")}}, nil); err != nil {
		t.Fatal(err)
	}
	evs, _ := h.tel.Read(h.tel.PartitionOf("d1"), 0, 10)
	if len(evs) != 1 || evs[0].ModuleID != "m1" || evs[0].AuthMethod != "x509" {
		t.Fatalf("events %+v; want one from module m1 authenticated with x509", evs)
	}
	if _, err := s.NewSender(ctx, "/devices/d1/messages/events", nil); condition(err) != string(amqp.ErrCondUnauthorizedAccess) {
		t.Errorf("attaching d1's address with m1's certificate: %v; want amqp:unauthorized-access", err)
	}
}

// Without a client certificate and without a token, a device link is
// refused with amqp:unauthorized-access naming both ways in.
func TestX509NoCertificate(t *testing.T) {
	h := x509Hub(t)
	s := h.dialTLS("")
	_, err := s.NewSender(testCtx(t), "/devices/d1/messages/events", nil)
	if condition(err) != string(amqp.ErrCondUnauthorizedAccess) || !strings.Contains(err.Error(), "$cbs") || !strings.Contains(err.Error(), "X.509 certificate") {
		t.Fatalf("attaching without credentials: %v; want amqp:unauthorized-access naming a token on $cbs and an X.509 certificate", err)
	}
	if h.core.Connected() != 0 {
		t.Error("an identity is connected after a refused link")
	}
}
