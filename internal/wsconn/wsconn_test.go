package wsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// server is a TLS WebSocket server running serve on each upgraded
// connection; the subprotocol it answers is the one the client asks for
// (or answer, when set).
func server(t *testing.T, answer string, serve func(ws *websocket.Conn)) (*httptest.Server, func(context.Context) (net.Conn, error)) {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			http.NotFound(w, r)
			return
		}
		p := answer
		if p == "" && len(websocket.Subprotocols(r)) > 0 {
			p = websocket.Subprotocols(r)[0]
		}
		var h http.Header
		if p != "" {
			h = http.Header{"Sec-Websocket-Protocol": {p}}
		}
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, h)
		if err != nil {
			return
		}
		defer ws.Close()
		serve(ws)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	dialTLS := func(ctx context.Context) (net.Conn, error) {
		d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
		return d.DialContext(ctx, "tcp", s.Listener.Addr().String())
	}
	return s, dialTLS
}

func wsURL(s *httptest.Server, path string) string {
	return "wss://" + s.Listener.Addr().String() + path
}

// A stream written in pieces is read back whole, across message
// boundaries, and a server-side Conn echoes it.
func TestEcho(t *testing.T) {
	s, dialTLS := server(t, "", func(ws *websocket.Conn) {
		c := New(ws)
		_, _ = io.Copy(c, c)
	})
	c, err := Dial(testCtx(t), wsURL(s, "/ws"), &DialOptions{Subprotocol: "AMQPWSB10", DialTLS: dialTLS, Header: http.Header{"User-Agent": {"test"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "AMQPWSB10" {
		t.Errorf("Subprotocol() = %q", c.Subprotocol())
	}
	want := strings.Repeat("0123456789", 5000)
	go func() {
		for i := 0; i < len(want); i += 777 {
			_, _ = c.Write([]byte(want[i:min(i+777, len(want))]))
		}
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	if c.LocalAddr() == nil || c.RemoteAddr().String() != s.Listener.Addr().String() {
		t.Errorf("addresses %v %v", c.LocalAddr(), c.RemoteAddr())
	}
	if _, ok := c.NetConn().(*tls.Conn); !ok {
		t.Errorf("NetConn() is %T; want the *tls.Conn", c.NetConn())
	}
}

// Messages are read as one stream with small buffers, empty and text
// messages included; a close from the peer is io.EOF.
func TestReadAcrossMessages(t *testing.T) {
	s, dialTLS := server(t, "", func(ws *websocket.Conn) {
		for _, m := range []struct {
			typ  int
			data string
		}{{websocket.BinaryMessage, "abc"}, {websocket.BinaryMessage, ""}, {websocket.TextMessage, "de"}, {websocket.BinaryMessage, "fghij"}} {
			_ = ws.WriteMessage(m.typ, []byte(m.data))
		}
		_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		_, _, _ = ws.ReadMessage() // until the client closes
	})
	c, err := Dial(testCtx(t), wsURL(s, "/ws"), &DialOptions{DialTLS: dialTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	buf := make([]byte, 2)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			got = append(got, string(buf[:n]))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	if s := strings.Join(got, ""); s != "abcdefghij" {
		t.Errorf("read %q (%q); want abcdefghij then io.EOF", s, got)
	}
}

func TestDialRefusals(t *testing.T) {
	s, dialTLS := server(t, "mqtt", func(*websocket.Conn) {})
	_, err := Dial(testCtx(t), wsURL(s, "/nowhere"), &DialOptions{DialTLS: dialTLS})
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 404 || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("upgrade on a path the server does not serve: %v; want a *HandshakeError with 404", err)
	}
	_, err = Dial(testCtx(t), wsURL(s, "/ws"), &DialOptions{Subprotocol: "AMQPWSB10", DialTLS: dialTLS})
	if !errors.As(err, &he) || he.Subprotocol != "mqtt" || !strings.Contains(err.Error(), "mqtt") {
		t.Errorf("a server that picks another subprotocol: %v; want a *HandshakeError naming it", err)
	}
	// The same subprotocol in another case is fine.
	s, dialTLS = server(t, "amqpwsb10", func(ws *websocket.Conn) { _, _, _ = ws.ReadMessage() })
	c, err := Dial(testCtx(t), wsURL(s, "/ws"), &DialOptions{Subprotocol: "AMQPWSB10", DialTLS: dialTLS})
	if err != nil {
		t.Fatalf("a server that answers amqpwsb10 to AMQPWSB10: %v", err)
	}
	c.Close()
	// DialTLS's error is returned as it is.
	bad := errors.New("no route")
	if _, err := Dial(testCtx(t), wsURL(s, "/ws"), &DialOptions{DialTLS: func(context.Context) (net.Conn, error) { return nil, bad }}); !errors.Is(err, bad) {
		t.Errorf("Dial with a failing DialTLS = %v", err)
	}
}

// Deadlines in the past fail reads and writes with a timeout; Close
// twice is fine.
func TestDeadlinesAndClose(t *testing.T) {
	s, dialTLS := server(t, "", func(ws *websocket.Conn) { _, _, _ = ws.ReadMessage() })
	c, err := Dial(testCtx(t), wsURL(s, "/ws"), &DialOptions{DialTLS: dialTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := c.Write([]byte("x")); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Write after the deadline = %v; want a timeout", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read after the deadline = %v; want a timeout", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}
