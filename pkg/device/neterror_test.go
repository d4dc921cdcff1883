package device

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxy"
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
