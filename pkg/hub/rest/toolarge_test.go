package rest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// bigTwinPatch is a syntactically valid twin PATCH body of n bytes.
func bigTwinPatch(n int) []byte {
	head, tail := `{"tags":{"blob":"`, `"}}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// TestTooLargeBodyGets413OverTCP sends a 10 MB twin PATCH over a real
// connection, as clients do: with a Content-Length, with
// "Expect: 100-continue" (curl, .NET) and chunked. Each must read a 413
// MessageTooLarge answer instead of a dropped connection, and the
// connection must stay usable when the client sent the whole body.
// bigEnv is a handler with the device "big" behind a real TCP server,
// and a 10 MB twin PATCH body.
func bigEnv(t *testing.T) (*env, *httptest.Server, []byte) {
	t.Helper()
	e := newEnv(t)
	if _, err := e.st.CreateDevice(&iothub.Device{DeviceID: "big"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	return e, srv, bigTwinPatch(10 << 20)
}

func TestTooLargeBodyGets413OverTCP(t *testing.T) {
	e, srv, body := bigEnv(t)
	for _, tc := range []struct {
		name    string
		expect  bool
		chunked bool
	}{
		{name: "content-length"},
		{name: "expect-100-continue", expect: true},
		{name: "chunked", chunked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
			t.Cleanup(tr.CloseIdleConnections)
			c := &http.Client{Transport: tr, Timeout: time.Minute}
			var rd io.Reader = bytes.NewReader(body)
			if tc.chunked {
				rd = io.MultiReader(rd) // hides the length: chunked encoding
			}
			req, err := http.NewRequest(http.MethodPatch, srv.URL+"/twins/big?api-version=2021-04-12", rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", e.as("iothubowner"))
			req.Header.Set("Content-Type", "application/json")
			if tc.expect {
				req.Header.Set("Expect", "100-continue")
			}
			res, err := c.Do(req)
			if err != nil {
				t.Fatalf("PATCH of %d bytes: %v; want a 413 answer", len(body), err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			wantError(t, resp{res.StatusCode, res.Header, string(b)}, http.StatusRequestEntityTooLarge, 413001, "MessageTooLarge")
			if _, msg := nodeParse(string(b)); !strings.Contains(msg, "131072") {
				t.Errorf("message %q does not name the limit", msg)
			}
			// The twin is untouched and the hub still answers.
			req, _ = http.NewRequest(http.MethodGet, srv.URL+"/twins/big?api-version=2021-04-12", nil)
			req.Header.Set("Authorization", e.as("iothubowner"))
			res, err = c.Do(req)
			if err != nil {
				t.Fatalf("GET after the 413: %v", err)
			}
			b, _ = io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || strings.Contains(string(b), "blob") {
				t.Fatalf("GET twin after the 413 = %d %s", res.StatusCode, b)
			}
		})
	}
}

// TestTooLargeBodyWriteThenRead is a client that writes its whole
// request before it reads the answer, as Python's http.client (under
// requests and the Python SDKs) does: it must read the 413, not a
// connection reset, and with "Expect: 100-continue" it must get the 413
// without a "100 Continue" first.
func TestTooLargeBodyWriteThenRead(t *testing.T) {
	e, srv, body := bigEnv(t)
	head := "PATCH /twins/big?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: " + e.as("iothubowner") +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"

	// exchange writes req whole on a new connection, then reads the
	// answer.
	exchange := func(t *testing.T, req []byte) (*http.Response, string) {
		t.Helper()
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		if _, err := c.Write(req); err != nil {
			t.Fatalf("writing the request: %v; want the hub to read it and answer 413", err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v; want 413", err)
		}
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	t.Run("whole-body", func(t *testing.T) {
		res, b := exchange(t, append([]byte(head+"\r\n"), body...))
		wantError(t, resp{res.StatusCode, res.Header, b}, http.StatusRequestEntityTooLarge, 413001, "MessageTooLarge")
	})

	t.Run("expect-100-continue", func(t *testing.T) {
		res, b := exchange(t, []byte(head+"Expect: 100-continue\r\n\r\n"))
		if res.StatusCode == http.StatusContinue {
			t.Fatal("the hub asked for a body it cannot accept (100 Continue); want 413 at once")
		}
		wantError(t, resp{res.StatusCode, res.Header, b}, http.StatusRequestEntityTooLarge, 413001, "MessageTooLarge")
	})
}
