package proxy

import (
	"context"
	"net"
	"net/netip"
)

// SourceDialer returns a DialContext for Dialer that makes its TCP
// connections from the local address src, with a port the system picks.
// On Linux the port is picked when the connection is made rather than
// when the socket is bound (IP_BIND_ADDRESS_NO_PORT), so one source
// address can reach each of several destinations with every
// ephemeral port instead of sharing them among all.
func SourceDialer(src netip.Addr) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Control: bindNoPort}
	return d.DialContext
}
