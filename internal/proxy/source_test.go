package proxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestSourceDialerConnectsFromTheSourceAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan net.Addr, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			from <- c.RemoteAddr()
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, src := range []string{"127.0.0.5", "127.0.0.6"} {
		d := &Dialer{DialContext: SourceDialer(netip.MustParseAddr(src))}
		c, err := d.Dial(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		c.Close()
		select {
		case a := <-from:
			if got := a.(*net.TCPAddr).IP.String(); got != src {
				t.Errorf("the listener saw a connection from %s; want %s", got, src)
			}
		case <-ctx.Done():
			t.Fatal("no connection accepted")
		}
	}
}

func TestSourceDialerRefusesAnAddressNotOfThisMachine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// 192.0.2.1 (TEST-NET-1, RFC 5737) is no interface's address.
	d := &Dialer{DialContext: SourceDialer(netip.MustParseAddr("192.0.2.1"))}
	if c, err := d.Dial(ctx, "tcp", "127.0.0.1:9"); err == nil {
		c.Close()
		t.Fatal("dial from 192.0.2.1 = nil error")
	}
}
