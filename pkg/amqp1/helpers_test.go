package amqp1

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/internal/testcert"
)

// testTimeout bounds every wait in the tests; nothing should take close
// to it.
const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// linkRecorder is a Handler that accepts every link (or what attach
// says) and hands accepted links to the test.
type linkRecorder struct {
	conns  chan *Conn
	links  chan *Link
	attach func(ctx context.Context, l *Link) error
}

func newRecorder() *linkRecorder {
	return &linkRecorder{conns: make(chan *Conn, 16), links: make(chan *Link, 64)}
}

func (r *linkRecorder) newHandler(c *Conn) Handler {
	r.conns <- c
	return HandlerFunc(func(ctx context.Context, l *Link) error {
		if r.attach != nil {
			if err := r.attach(ctx, l); err != nil {
				return err
			}
		}
		r.links <- l
		return nil
	})
}

func (r *linkRecorder) nextLink(t testing.TB) *Link {
	t.Helper()
	select {
	case l := <-r.links:
		return l
	case <-time.After(testTimeout):
		t.Fatal("no link attached")
		return nil
	}
}

func (r *linkRecorder) nextConn(t testing.TB) *Conn {
	t.Helper()
	select {
	case c := <-r.conns:
		return c
	case <-time.After(testTimeout):
		t.Fatal("no connection")
		return nil
	}
}

// served is a connection being served in the background.
type served struct {
	done chan error
}

func (s *served) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
		return nil
	}
}

func serveBackground(ctx context.Context, nc net.Conn, opts *ConnOptions) *served {
	s := &served{done: make(chan error, 1)}
	go func() { s.done <- Serve(ctx, nc, opts) }()
	return s
}

// pipeClient serves opts on one end of a net.Pipe and connects a go-amqp
// client to the other.
func pipeClient(t testing.TB, opts *ConnOptions, copts *amqp.ConnOptions) (*amqp.Conn, *served, error) {
	t.Helper()
	ctx := testCtx(t)
	cli, srv := net.Pipe()
	s := serveBackground(ctx, srv, opts)
	c, err := amqp.NewConn(ctx, cli, copts)
	if err != nil {
		_ = cli.Close()
		return nil, s, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, s, nil
}

// mustClient is pipeClient that fails the test on error.
func mustClient(t testing.TB, opts *ConnOptions, copts *amqp.ConnOptions) (*amqp.Conn, *served) {
	t.Helper()
	c, s, err := pipeClient(t, opts, copts)
	if err != nil {
		t.Fatalf("amqp.NewConn: %v", err)
	}
	return c, s
}

func mustSession(t testing.TB, c *amqp.Conn) *amqp.Session {
	t.Helper()
	s, err := c.NewSession(testCtx(t), nil)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	return s
}

// selfSignedTLS returns a server config with a throwaway certificate for
// 127.0.0.1 and a client config trusting it.
func selfSignedTLS(t testing.TB) (server, client *tls.Config) {
	cert, pool, _ := testcert.Server(t, "amqp1 test")
	server = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	client = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return server, client
}

// tlsServer listens on 127.0.0.1:0 and serves every accepted connection.
// It returns the address.
func tlsServer(t testing.TB, opts *ConnOptions) (addr string, clientTLS *tls.Config, results chan error) {
	t.Helper()
	srvTLS, cliTLS := selfSignedTLS(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results = make(chan error, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { results <- Serve(ctx, nc, opts) }()
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		<-done
	})
	return ln.Addr().String(), cliTLS, results
}

func ptr[T any](v T) *T { return &v }

func netPipe() (net.Conn, net.Conn) { return net.Pipe() }

// closeClient closes a go-amqp client. go-amqp closes its socket right
// after writing its close frame; on a net.Pipe its reader then fails with
// io.ErrClosedPipe (on TCP it gets net.ErrClosed, which go-amqp ignores),
// so that error is expected.
func closeClient(t testing.TB, c *amqp.Conn) {
	t.Helper()
	if err := c.Close(); err != nil && !strings.Contains(err.Error(), io.ErrClosedPipe.Error()) {
		t.Fatalf("client Close: %v", err)
	}
}

func amqpMessage(data []byte) *amqp.Message { return amqp.NewMessage(data) }
