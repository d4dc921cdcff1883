// Package metricsrv serves Prometheus metrics over HTTP for the
// commands that have a --metrics-addr flag.
//
//	reg := prometheus.NewRegistry()
//	fleet.RegisterMetrics(reg, labels)
//	srv, err := metricsrv.Listen(":9090", reg)
//	if err != nil { ... }
//	defer srv.Close()
//	fmt.Println("metrics on", srv.URL())
package metricsrv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Server serves one registry's metrics on Path.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// Listen binds addr (HOST:PORT; port 0 picks a free one, see Addr),
// adds the Go runtime and process collectors to reg (memory, CPU, open
// files) and serves reg's metrics on Path until Close. It returns the
// listen error, naming addr, when addr cannot be bound.
func Listen(addr string, reg *prometheus.Registry) (*Server, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("metrics address %q: want HOST:PORT, e.g. :9090 or 127.0.0.1:9090", addr)
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s := &Server{ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.done)
		// Serve returns http.ErrServerClosed after Close, or the
		// listener's error, which only Close causes.
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on, with the port it got.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is http://Addr/metrics, with a host that reaches it when the
// server listens on every interface (localhost then).
func (s *Server) URL() string {
	host, port, _ := net.SplitHostPort(s.Addr())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + Path
}

// Close stops serving, lets a scrape in progress finish (up to 2 s)
// and returns when the server's goroutine has ended.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
