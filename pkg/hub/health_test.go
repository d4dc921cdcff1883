package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestHealth: GET /health on the TLS port answers 200 and a small JSON
// status without authorization once the hub has started.
func TestHealth(t *testing.T) {
	h := startHub(t)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFor(t, h)}, Timeout: 30 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	res, err := c.Get("https://" + h.Addrs()[0] + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /health = %d %s; want 200", res.StatusCode, b)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got Health
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("body %s: %v", b, err)
	}
	if got.Status != "ok" || got.HostName != h.HostName() || len(got.Addresses) != 1 || got.Addresses[0] != h.Addrs()[0] {
		t.Errorf("health = %+v; want ok, %s, %v", got, h.HostName(), h.Addrs())
	}

	req, _ := http.NewRequest(http.MethodPost, "https://"+h.Addrs()[0]+HealthPath, nil)
	res, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /health = %d, Allow %q; want 405, GET, HEAD", res.StatusCode, res.Header.Get("Allow"))
	}
}

// TestHealthNotReady: before Start has finished, and once Close has
// begun, /health answers 503 with the state.
func TestHealthNotReady(t *testing.T) {
	h := New(&Options{Addr: "127.0.0.1:0", InMemory: true})
	for _, tc := range []struct {
		name, want string
		setup      func()
	}{
		{"starting", "starting", func() {}},
		{"stopping", "stopping", func() { h.ready.Store(true); h.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			w := httptest.NewRecorder()
			h.serveHealth(w, httptest.NewRequest(http.MethodGet, HealthPath, nil))
			var got Health
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if w.Code != http.StatusServiceUnavailable || got.Status != tc.want {
				t.Errorf("GET /health = %d %+v; want 503 %s", w.Code, got, tc.want)
			}
		})
	}
}

// A hub not started has no device online and ignores notifications.
func TestHubNotStartedHasNoDevices(t *testing.T) {
	h := New(nil)
	if _, _, err := h.InvokeMethod(context.Background(), "dev1", "", "m", nil, 0, time.Second); !errors.Is(err, ErrDeviceNotOnline) {
		t.Errorf("InvokeMethod before Start: %v; want ErrDeviceNotOnline", err)
	}
	h.DesiredChanged("dev1", "", json.RawMessage(`{}`), 2)
	h.C2DEnqueued("dev1", "")
	if n := h.Connected(); n != 0 {
		t.Errorf("Connected() = %d before Start", n)
	}
}
