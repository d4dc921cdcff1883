package device

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/sas"
)

// A hub that accepts TCP and never completes the TLS handshake, or a
// port where nothing listens, is a *NetError naming the host, the phase
// and the connect timeout that ran out.
func TestConnectNetErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	silent := ln.Addr().String()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := free.Addr().String()
	free.Close()

	for _, tt := range []struct {
		name, addr string
		phase      proxy.Phase
		timeout    time.Duration
		refused    bool
	}{
		{"no TLS handshake", silent, proxy.PhaseTLS, 200 * time.Millisecond, false},
		{"connection refused", refused, proxy.PhaseConnect, 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(&Options{ConnectionString: "HostName=" + tt.addr + ";DeviceId=d;SharedAccessKey=c2VjcmV0", ConnectTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			err = c.Connect(testCtx(t))
			var ne *NetError
			if !errors.As(err, &ne) {
				t.Fatalf("Connect = %v; want a *NetError", err)
			}
			if ne.Host != tt.addr || ne.Phase != tt.phase || ne.Timeout != tt.timeout || ne.Refused() != tt.refused {
				t.Errorf("Connect = %v (%+v); want host %s, phase %s, timeout %v, refused %v", err, ne, tt.addr, tt.phase, tt.timeout, tt.refused)
			}
			if !strings.Contains(err.Error(), tt.addr) || !strings.Contains(err.Error(), string(tt.phase)) {
				t.Errorf("message %q does not name the host and the phase", err)
			}
		})
	}
}

// A connection string whose SAS token has expired is refused by the
// hub, and the refusal says the token expired and how long ago.
func TestExpiredTokenRefusalSaysExpired(t *testing.T) {
	h := startHub(t, nil)
	cs := hubDevice(t, h, "exp1")
	key, err := cs.Key()
	if err != nil {
		t.Fatal(err)
	}
	resource := "127.0.0.1:" + hubPort(h) + "/devices/exp1"
	tok, err := sas.Sign(resource, key, &sas.SignOptions{Expiry: time.Now().Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(&Options{ConnectionString: "HostName=127.0.0.1:" + hubPort(h) + ";DeviceId=exp1;SharedAccessSignature=" + tok.Encode(), CAFile: h.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	err = c.Connect(testCtx(t))
	var ce *ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Connect = %v; want a refusal", err)
	}
	if !strings.Contains(ce.Detail, "SAS token") || !strings.Contains(ce.Detail, "expired") || !strings.Contains(ce.Detail, "ago") {
		t.Errorf("Detail %q; want the token named as expired, with how long ago", ce.Detail)
	}
}
