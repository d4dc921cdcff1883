package loopback

import (
	"net"
	"strings"
	"testing"
)

func TestFreeAddrIsAnAddressOfItsOwnAndCanBeBoundAgain(t *testing.T) {
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	b, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	hostA, _, _ := net.SplitHostPort(a)
	hostB, _, _ := net.SplitHostPort(b)
	if hostA == hostB || !strings.HasPrefix(hostA, "127.") || hostA == "127.0.0.1" {
		t.Errorf("FreeAddr twice = %s, %s; want two loopback addresses other than 127.0.0.1", a, b)
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("binding %s again: %v", a, err)
	}
	ln.Close()
}
