// Package proxytest is a small HTTP CONNECT proxy for tests: it listens
// on 127.0.0.1, counts the tunnels it opens, and connects only to
// loopback addresses, so no test traffic can leave the machine.
//
// Go's proxy selection (and curl's) never sends localhost or loopback
// addresses through a proxy, so a test that wants its traffic to go
// through HTTPS_PROXY names the hub with a host name that is neither,
// such as "iothub.proxy.test" (.test never resolves in DNS), and maps
// it to the hub's real loopback address with Map:
//
//	p := proxytest.New(t)
//	p.Map("iothub.proxy.test", "127.0.0.1") // keeps the port
//	t.Setenv("HTTPS_PROXY", p.URL())
//	// ... connect to wss://iothub.proxy.test:PORT/...
//	if p.Tunnels() == 0 { t.Error("the connection did not go through the proxy") }
package proxytest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a running CONNECT proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	ln net.Listener

	tunnels atomic.Int64
	refuse  atomic.Int32 // status to answer every CONNECT with, 0 for none

	mu      sync.Mutex
	hosts   map[string]string // lower-case host → loopback host
	targets []string
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// New starts a proxy on 127.0.0.1:0 and stops it when the test ends.
func New(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	p := &Proxy{ln: ln, hosts: map[string]string{}, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's URL, for HTTPS_PROXY or Options.Proxy.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Map makes CONNECT requests for host (any port) go to loopbackHost on
// the same port. loopbackHost must be a loopback IP address.
func (p *Proxy) Map(host, loopbackHost string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hosts[strings.ToLower(host)] = loopbackHost
}

// Refuse makes the proxy answer every CONNECT with status (for example
// 403); 0 makes it tunnel again.
func (p *Proxy) Refuse(status int) { p.refuse.Store(int32(status)) }

// Tunnels is how many tunnels the proxy opened.
func (p *Proxy) Tunnels() int { return int(p.tunnels.Load()) }

// Targets are the CONNECT targets asked for, in order.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// Close stops the proxy and closes its tunnels.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func answer(c net.Conn, status int) {
	_, _ = io.WriteString(c, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\nContent-Length: 0\r\n\r\n")
}

func (p *Proxy) handle(c net.Conn) {
	if !p.track(c) {
		c.Close()
		return
	}
	defer p.untrack(c)
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		answer(c, http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.mu.Unlock()
	if s := p.refuse.Load(); s != 0 {
		answer(c, int(s))
		return
	}
	addr, err := p.resolve(req.Host)
	if err != nil {
		answer(c, http.StatusForbidden)
		return
	}
	up, err := net.Dial("tcp", addr)
	if err != nil {
		answer(c, http.StatusBadGateway)
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	p.tunnels.Add(1)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// resolve maps host:port to a loopback address, refusing anything else.
func (p *Proxy) resolve(target string) (string, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if m, ok := p.hosts[strings.ToLower(host)]; ok {
		host = m
	}
	p.mu.Unlock()
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", errors.New("proxytest: only loopback targets")
	}
	return net.JoinHostPort(host, port), nil
}
