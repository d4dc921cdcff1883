package service

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/message"
)

// silentListener accepts TCP connections and never writes a byte. It
// returns its address and the number of connections it accepted.
func silentListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), &n
}

// freeAddr is a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func asNetError(t *testing.T, err error) *NetError {
	t.Helper()
	var ne *NetError
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T) is not a *NetError", err, err)
	}
	return ne
}

// Every way of failing to reach the hub over HTTPS is a *NetError that
// names the host, the phase and, for a timeout, the limit that ran out;
// a connection or handshake that timed out is not tried again.
func TestRESTNetErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		addr := freeAddr(t)
		c, err := New(connectionString(addr), &Options{Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetDevice(ctxT(t), "d")
		ne := asNetError(t, err)
		if ne.Host != addr || ne.Phase != proxy.PhaseConnect || !ne.Refused() || ne.TimedOut() {
			t.Errorf("GetDevice = %v; want a refused TCP connect to %s", err, addr)
		}
	})
	t.Run("no TLS handshake", func(t *testing.T) {
		addr, accepted := silentListener(t)
		c, err := New(connectionString(addr), &Options{ConnectTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetDevice(ctxT(t), "d")
		ne := asNetError(t, err)
		if ne.Host != addr || ne.Phase != proxy.PhaseTLS || !ne.TimedOut() || ne.Timeout != 200*time.Millisecond {
			t.Errorf("GetDevice = %v (%+v); want the TLS handshake to %s timed out after 200ms", err, ne, addr)
		}
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "TLS handshake") || !strings.Contains(err.Error(), "200ms") {
			t.Errorf("message %q does not name the host, the phase and the limit", err)
		}
		if n := accepted.Load(); n != 1 {
			t.Errorf("%d connections; want 1 (a timed-out handshake is not retried)", n)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		s := newHubServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { answer(w, 200, "", "{}") })
		c, err := New(connectionString("localhost:"+s.port()), &Options{Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.GetDevice(ctxT(t), "d")
		ne := asNetError(t, err)
		if ne.Phase != proxy.PhaseTLS || !ne.Untrusted() || ne.Host != "localhost:"+s.port() {
			t.Errorf("GetDevice = %v; want an untrusted certificate in the TLS handshake", err)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		release := make(chan struct{})
		s := newHubServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { <-release })
		defer close(release)
		c := s.client(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := c.GetDevice(ctx, "d")
		ne := asNetError(t, err)
		if ne.Phase != proxy.PhaseAnswer || !ne.TimedOut() || ne.Timeout <= 0 || ne.Timeout > 300*time.Millisecond {
			t.Errorf("GetDevice = %v (%+v); want no answer within 300ms", err, ne)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GetDevice = %v; want it to wrap context.DeadlineExceeded", err)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		addr, _ := silentListener(t)
		c, err := New(connectionString(addr), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err = c.GetDevice(ctx, "d")
		var ne *NetError
		if !errors.Is(err, context.Canceled) || errors.As(err, &ne) {
			t.Errorf("GetDevice after cancel = %v; want context.Canceled, not a network error", err)
		}
	})
}

// The AMQP side reports a hub that does not complete the TLS handshake
// the same way.
func TestAMQPNetError(t *testing.T) {
	addr, _ := silentListener(t)
	c, err := New(connectionString(addr), &Options{ConnectTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.SendC2D(ctxT(t), "d", "", &message.Message{Body: []byte("x")})
	ne := asNetError(t, err)
	if ne.Host != addr || ne.Phase != proxy.PhaseTLS || ne.Timeout != 200*time.Millisecond {
		t.Errorf("SendC2D = %v (%+v); want the TLS handshake to %s timed out after 200ms", err, ne, addr)
	}
}
