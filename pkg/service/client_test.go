package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
)

func TestNewRefuses(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	tests := []struct {
		name string
		cs   string
		opts *Options
		want error
		text string
	}{
		{"device string", "HostName=h.test;DeviceId=d;SharedAccessKey=" + testKey, nil, connstr.ErrWrongKind, "service connection string is needed"},
		{"module string", "HostName=h.test;DeviceId=d;ModuleId=m;SharedAccessKey=" + testKey, nil, connstr.ErrWrongKind, "service"},
		{"missing CA file", "HostName=h.test;SharedAccessKeyName=p;SharedAccessKey=" + testKey, &Options{CAFile: "/nonexistent/ca.pem"}, os.ErrNotExist, "CA file"},
		{"CA file without PEM", "HostName=h.test;SharedAccessKeyName=p;SharedAccessKey=" + testKey, &Options{CAFile: notPEM}, nil, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(connstr.MustParse(tt.cs), tt.opts)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("New(%q) = %v; want an error wrapping %v saying %q", tt.cs, err, tt.want, tt.text)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error %q contains the key", err)
			}
		})
	}
}

// authOf parses the SAS token the client sent.
func authOf(t *testing.T, r seen) *sas.Token {
	t.Helper()
	h := r.Header.Get("Authorization")
	tok, err := sas.Parse(h)
	if err != nil {
		t.Fatalf("sas.Parse(%q) = %v", h, err)
	}
	return tok
}

func TestSASHeader(t *testing.T) {
	key, _ := sas.DecodeKey(testKey)
	tests := []struct {
		name    string
		ttl     time.Duration
		wantTTL time.Duration
	}{
		{"default lifetime", 0, time.Hour},
		{"ten minutes", 10 * time.Minute, 10 * time.Minute},
		{"a day", 24 * time.Hour, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHubServer(t, nil)
			c := s.client(t, &Options{TokenTTL: tt.ttl})
			before := time.Now()
			if _, err := c.GetDevice(ctxT(t), "dev1"); err != nil {
				t.Fatal(err)
			}
			r := s.last(t)
			tok := authOf(t, r)
			host := "localhost:" + s.port()
			if tok.Scope() != host || tok.Resource != sas.EncodeResource(host) {
				t.Errorf("sr = %q (scope %q); want %q encoded", tok.Resource, tok.Scope(), host)
			}
			if tok.KeyName != "iothubowner" {
				t.Errorf("skn = %q; want iothubowner", tok.KeyName)
			}
			if err := sas.Verify(tok, key, time.Now()); err != nil {
				t.Errorf("sas.Verify(token, policy key) = %v", err)
			}
			if got := tok.Expiry().Sub(before.Truncate(time.Second)); got < tt.wantTTL-time.Second || got > tt.wantTTL+2*time.Second {
				t.Errorf("token lives %v; want %v", got, tt.wantTTL)
			}
			if !strings.HasPrefix(r.Header.Get("Authorization"), "SharedAccessSignature sr=") {
				t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
			}
		})
	}
}

func TestSASFromConnectionStringIsUsedAsIs(t *testing.T) {
	s := newHubServer(t, nil)
	key, _ := sas.DecodeKey(testKey)
	host := "localhost:" + s.port()
	tok, err := sas.Sign(host, key, &sas.SignOptions{KeyName: "service", TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cs := connstr.MustParse("HostName=" + host + ";SharedAccessKeyName=service;SharedAccessSignature=" + tok.Encode())
	c, err := New(cs, &Options{RootCAs: getPKI(t).pool})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.GetDevice(ctxT(t), "d"); err != nil {
			t.Fatal(err)
		}
		if got := s.last(t).Header.Get("Authorization"); got != tok.Encode() {
			t.Errorf("Authorization = %q; want the connection string's token", got)
		}
	}
}

func TestTokenCachedAndRenewed(t *testing.T) {
	s := newHubServer(t, nil)
	clk := &clock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	start := clk.Now()
	c := s.client(t, &Options{Now: clk.Now, TokenTTL: time.Hour})
	key, _ := sas.DecodeKey(testKey)
	steps := []struct {
		name    string
		at      time.Duration // since start
		renewed bool
		signed  time.Duration // when the token in use was signed
	}{
		{"first request signs", 0, true, 0},
		{"reused at half life", 30 * time.Minute, false, 0},
		{"reused 6 minutes before expiry", 54 * time.Minute, false, 0},
		{"renewed 5 minutes before expiry", 55*time.Minute + time.Second, true, 55*time.Minute + time.Second},
		{"new token reused", 70 * time.Minute, false, 55*time.Minute + time.Second},
		{"renewed again after a long pause", 10 * time.Hour, true, 10 * time.Hour},
	}
	prev := ""
	for _, st := range steps {
		clk.Add(start.Add(st.at).Sub(clk.Now()))
		if _, err := c.GetDevice(ctxT(t), "dev1"); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		h := s.last(t).Header.Get("Authorization")
		if renewed := h != prev; renewed != st.renewed {
			t.Errorf("%s: renewed = %v; want %v", st.name, renewed, st.renewed)
		}
		prev = h
		tok := authOf(t, s.last(t))
		if want := start.Add(st.signed).Add(time.Hour); !tok.Expiry().Equal(want) {
			t.Errorf("%s: se = %v; want %v", st.name, tok.Expiry(), want)
		}
		if err := sas.Verify(tok, key, clk.Now()); err != nil {
			t.Errorf("%s: Verify at the client's time = %v", st.name, err)
		}
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestHeaders(t *testing.T) {
	tests := []struct {
		name      string
		ua        string
		wantUA    string
		call      func(*Client) error
		wantQuery map[string]string
		wantCT    bool
	}{
		{"get with the default user agent", "", "iotctl", func(c *Client) error { _, err := c.GetDevice(ctxT(t), "d"); return err }, nil, false},
		{"list keeps its own query", "iotctl/1.2.3", "iotctl/1.2.3", func(c *Client) error { _, err := c.ListDevices(ctxT(t), 7); return err }, map[string]string{"top": "7"}, false},
		{"method call has a JSON body", "x/1", "x/1", func(c *Client) error {
			_, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "d"}, MethodCall{Name: "m"})
			return err
		}, nil, true},
		{"delete", "", "iotctl", func(c *Client) error { return c.DeleteDevice(ctxT(t), "d", "") }, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHubServer(t, nil)
			c := s.client(t, &Options{UserAgent: tt.ua})
			for range 2 {
				if err := tt.call(c); err != nil {
					t.Fatal(err)
				}
			}
			reqs := s.requests()
			for _, r := range reqs {
				if got := r.Query["api-version"]; len(got) != 1 || got[0] != APIVersion || APIVersion != "2021-04-12" {
					t.Errorf("api-version = %v; want [2021-04-12]", got)
				}
				for k, v := range tt.wantQuery {
					if got := r.Query[k]; len(got) != 1 || got[0] != v {
						t.Errorf("%s = %v; want %s", k, got, v)
					}
				}
				if got := r.Header.Get("User-Agent"); got != tt.wantUA {
					t.Errorf("User-Agent = %q; want %q", got, tt.wantUA)
				}
				if got := r.Header.Get("Request-Id"); !uuidV4.MatchString(got) {
					t.Errorf("Request-Id = %q; want a UUID v4", got)
				}
				if got := r.Header.Get("Accept"); got != "application/json" {
					t.Errorf("Accept = %q", got)
				}
				if got, want := r.Header.Get("Content-Type"), map[bool]string{true: "application/json; charset=utf-8"}[tt.wantCT]; got != want {
					t.Errorf("Content-Type = %q; want %q", got, want)
				}
			}
			if reqs[0].Header.Get("Request-Id") == reqs[1].Header.Get("Request-Id") {
				t.Errorf("two requests share Request-Id %q", reqs[0].Header.Get("Request-Id"))
			}
		})
	}
}

func TestHostNameWithPort(t *testing.T) {
	s := newHubServer(t, nil)
	for _, host := range []string{"localhost:" + s.port(), "127.0.0.1:" + s.port(), "LocalHost:" + s.port()} {
		c, err := New(connectionString(host), &Options{RootCAs: getPKI(t).pool})
		if err != nil {
			t.Fatal(err)
		}
		if c.HostName() != host {
			t.Errorf("HostName() = %q; want %q", c.HostName(), host)
		}
		if _, err := c.GetDevice(ctxT(t), "d"); err != nil {
			t.Errorf("HostName=%s: %v", host, err)
			continue
		}
		r := s.last(t)
		if tok := authOf(t, r); tok.Scope() != host {
			t.Errorf("HostName=%s: token scope %q", host, tok.Scope())
		}
	}
}

// countAccepts counts the connections a listener accepts.
type countAccepts struct {
	net.Listener
	n atomic.Int32
}

func (l *countAccepts) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestCATrust(t *testing.T) {
	var conns *countAccepts
	s := startHubServer(t, nil, func(l net.Listener) net.Listener { conns = &countAccepts{Listener: l}; return conns })
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"system roots only", Options{}, false},
		{"--ca-file", Options{CAFile: caFile(t)}, true},
		{"RootCAs", Options{RootCAs: getPKI(t).pool}, true},
		{"RootCAs without our CA", Options{RootCAs: x509.NewCertPool()}, false},
		{"empty RootCAs plus --ca-file", Options{RootCAs: x509.NewCertPool(), CAFile: caFile(t)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(connectionString("localhost:"+s.port()), &tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			before, dials := s.hits.Load(), conns.n.Load()
			_, err = c.GetDevice(ctxT(t), "d")
			if tt.ok != (err == nil) {
				t.Fatalf("GetDevice = %v; want ok %v", err, tt.ok)
			}
			if err != nil {
				var uae x509.UnknownAuthorityError
				var cve *tls.CertificateVerificationError
				if !errors.As(err, &uae) && !errors.As(err, &cve) {
					t.Errorf("error %v (%T); want a certificate verification error", err, err)
				}
				// A certificate the client does not trust will not be
				// trusted a moment later: no retries, no back-off.
				if n := conns.n.Load() - dials; n != 1 {
					t.Errorf("the client connected %d times; want once", n)
				}
				if s.hits.Load() != before {
					t.Errorf("the server saw a request despite the TLS failure")
				}
			}
		})
	}
}

// retryAfter0 answers status with Retry-After: 0 for the first n
// requests, then 200.
func retryAfter0(status, n int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, r *http.Request, i int) {
		if n < 0 || i <= n {
			w.Header().Set("Retry-After", "0")
			answer(w, status, "", `{"Message":"ErrorCode:ThrottleBacklogLimitExceeded;busy"}`)
			return
		}
		answer(w, 200, "", okBody(r))
	}
}

func TestRetries(t *testing.T) {
	get := func(c *Client) error { _, err := c.GetDevice(ctxT(t), "d"); return err }
	tests := []struct {
		name    string
		status  int
		fail    int // failing answers before a 200; -1: all
		retries int
		call    func(*Client) error
		hits    int32
		ok      bool
	}{
		{"GET 503 twice then 200", 503, 2, 0, get, 3, true},
		{"GET 429 always: 1 + 3 tries", 429, -1, 0, get, 4, false},
		{"GET 429 with 1 retry", 429, -1, 1, get, 2, false},
		{"GET 429 with retries off", 429, -1, -1, get, 1, false},
		{"GET 500 is not retried", 500, -1, 0, get, 1, false},
		{"GET 404 is not retried", 404, -1, 0, get, 1, false},
		{"list 503 then 200", 503, 1, 0, func(c *Client) error { _, err := c.ListDevices(ctxT(t), 0); return err }, 2, true},
		{"conditional PUT 429 then 200", 429, 1, 0, func(c *Client) error { _, err := c.UpdateDevice(ctxT(t), &Device{DeviceID: "d"}, ""); return err }, 2, true},
		{"DELETE 503 then 204", 503, 1, 0, func(c *Client) error { return c.DeleteDevice(ctxT(t), "d", "") }, 2, true},
		{"query 429 then 200", 429, 1, 0, func(c *Client) error { _, err := c.Query(ctxT(t), "SELECT * FROM devices", 0); return err }, 2, true},
		{"method call 503 is not retried", 503, 1, 0, func(c *Client) error {
			_, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "d"}, MethodCall{Name: "m"})
			return err
		}, 1, false},
		{"method call 429 is not retried", 429, 1, 0, func(c *Client) error {
			_, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "d"}, MethodCall{Name: "m"})
			return err
		}, 1, false},
		{"create 503 is not retried", 503, 1, 0, func(c *Client) error { _, err := c.CreateDevice(ctxT(t), &Device{DeviceID: "d"}); return err }, 1, false},
		{"twin PATCH 429 is not retried", 429, 1, 0, func(c *Client) error {
			_, err := c.UpdateTwin(ctxT(t), Target{DeviceID: "d"}, NewTwinPatch(nil, []byte(`{"a":1}`)), "")
			return err
		}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newHubServer(t, retryAfter0(tt.status, tt.fail))
			c := s.client(t, &Options{Retries: tt.retries})
			err := tt.call(c)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v; want ok %v", err, tt.ok)
			}
			if got := s.hits.Load(); got != tt.hits {
				t.Errorf("the server saw %d requests; want %d", got, tt.hits)
			}
			var se *StatusError
			if err != nil && (!errors.As(err, &se) || se.HTTPStatus != tt.status) {
				t.Errorf("err = %v; want a *StatusError with %d", err, tt.status)
			}
			if err != nil && tt.status == 429 && !errors.Is(err, ErrThrottled) {
				t.Errorf("errors.Is(%v, ErrThrottled) = false", err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Run("doubling from 200ms without Retry-After", func(t *testing.T) {
		s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) { answer(w, 503, "ServiceUnavailable", "") })
		c := s.client(t, &Options{Retries: 2})
		start := time.Now()
		_, err := c.GetDevice(ctxT(t), "d")
		if d := time.Since(start); err == nil || d < 600*time.Millisecond {
			t.Errorf("GetDevice = %v after %v; want a 503 after at least 200ms + 400ms", err, d)
		}
		if s.hits.Load() != 3 {
			t.Errorf("hits = %d; want 3", s.hits.Load())
		}
	})
	t.Run("Retry-After in seconds", func(t *testing.T) {
		s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				answer(w, 429, "ThrottlingException", "")
				return
			}
			answer(w, 200, "", "{}")
		})
		c := s.client(t, nil)
		start := time.Now()
		if _, err := c.GetDevice(ctxT(t), "d"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("the retry came after %v; want Retry-After's 1s", d)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		first := make(chan struct{})
		s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, n int) {
			w.Header().Set("Retry-After", "30")
			answer(w, 503, "", "")
			if n == 1 {
				close(first)
			}
		})
		c := s.client(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-first; cancel() }()
		done := make(chan error, 1)
		go func() { _, err := c.GetDevice(ctx, "d"); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("GetDevice = %v; want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("GetDevice kept waiting after its context was cancelled")
		}
	})
}

// dropFirst closes the first n connections as soon as they are
// accepted, before any TLS handshake.
type dropFirst struct {
	net.Listener
	n atomic.Int32
}

func (l *dropFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.n.Add(-1) >= 0 {
			c.Close()
			continue
		}
		return c, nil
	}
}

func TestMethodCallRetriedOnlyBeforeSent(t *testing.T) {
	call := MethodCall{Name: "reboot", Payload: []byte(`{"delay":1}`), ResponseTimeout: 5 * time.Second}
	t.Run("connection dropped before the request: tried again", func(t *testing.T) {
		s := startHubServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			answer(w, 200, "", `{"status":200,"payload":{"ok":true}}`)
		}, func(l net.Listener) net.Listener {
			d := &dropFirst{Listener: l}
			d.n.Store(1)
			return d
		})
		c := s.client(t, nil)
		res, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "d"}, call)
		if err != nil {
			t.Fatalf("InvokeMethod = %v; want the retry to succeed", err)
		}
		if res.Status != 200 || string(res.Payload) != `{"ok":true}` || s.hits.Load() != 1 {
			t.Errorf("result %d %s after %d requests; want 200 {\"ok\":true} after 1", res.Status, res.Payload, s.hits.Load())
		}
	})
	t.Run("connection dropped after the request: not repeated", func(t *testing.T) {
		s := newHubServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		c := s.client(t, nil)
		_, err := c.InvokeMethod(ctxT(t), Target{DeviceID: "d"}, call)
		if err == nil {
			t.Fatal("InvokeMethod succeeded on a dropped connection")
		}
		if n := s.hits.Load(); n != 1 {
			t.Errorf("the device's method ran %d times; want once", n)
		}
		var se *StatusError
		if errors.As(err, &se) {
			t.Errorf("err = %v; want a transport error, not a *StatusError", err)
		}
	})
}
