package device

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestSourceAddrIsTheConnectionsLocalAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := New(&Options{HostName: ln.Addr().String(), DeviceID: "d", SharedAccessKey: "c2VjcmV0",
		SourceAddr: netip.MustParseAddr("127.0.0.7"), ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Connect(ctx) }()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.7" {
		t.Errorf("connection from %s; want 127.0.0.7 (SourceAddr)", got)
	}
	conn.Close() // the TLS handshake fails; Connect returns
	if err := <-done; err == nil {
		t.Error("Connect to a closed listener = nil error")
	}
}
