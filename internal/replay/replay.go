// Package replay hands on a connection together with the bytes already
// read from it ahead of time: by the hub's protocol sniffing, by the
// HTTP proxy dialer reading the proxy's answer.
package replay

import (
	"bufio"
	"net"
)

// Conn is a net.Conn whose reads return the bytes read ahead first and
// then read from the connection. It holds those bytes only, not the
// reader that read them, so a long-lived connection keeps no read
// buffer of its own.
type Conn struct {
	net.Conn
	pending []byte
}

// New returns c, with the bytes r has buffered from it replayed first.
// r must not be used afterwards. With nothing buffered it returns c.
func New(c net.Conn, r *bufio.Reader) net.Conn {
	n := r.Buffered()
	if n == 0 {
		return c
	}
	b, _ := r.Peek(n) // buffered bytes never fail
	return &Conn{Conn: c, pending: append([]byte(nil), b...)}
}

// Read returns the replayed bytes, then reads from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return n, nil
}

// NetConn returns the connection under the replayed bytes, so callers
// can reach, for instance, its TLS state.
func (c *Conn) NetConn() net.Conn { return c.Conn }
