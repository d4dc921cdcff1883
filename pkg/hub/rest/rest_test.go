package rest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/sas"
)

type fakeMethods struct {
	mu    sync.Mutex
	calls []methodCall
	fn    func(deviceID, moduleID, name string, payload json.RawMessage) (int, json.RawMessage, error)
}

type methodCall struct {
	deviceID, moduleID, name string
	payload                  string
	connect, response        time.Duration
}

func (f *fakeMethods) Invoke(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage, connectTimeout, responseTimeout time.Duration) (int, json.RawMessage, error) {
	f.mu.Lock()
	f.calls = append(f.calls, methodCall{deviceID, moduleID, name, string(payload), connectTimeout, responseTimeout})
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return 200, payload, nil
	}
	return fn(deviceID, moduleID, name, payload)
}

func (f *fakeMethods) last() methodCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[len(f.calls)-1]
}

type fakePresence struct{}

var connectedSince = time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)

func (fakePresence) State(deviceID, moduleID string) (bool, time.Time, time.Time) {
	if deviceID == "online" {
		return true, connectedSince, connectedSince.Add(time.Minute)
	}
	return false, time.Time{}, time.Time{}
}
func (fakePresence) Connected() int { return 1 }

type fakeTwins struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeTwins) DesiredChanged(deviceID, moduleID string, patch json.RawMessage, version int64) {
	f.mu.Lock()
	f.calls = append(f.calls, deviceID+"/"+moduleID+" "+string(patch))
	f.mu.Unlock()
}

type env struct {
	t       testing.TB
	st      *registry.Store
	h       *Handler
	methods *fakeMethods
	twins   *fakeTwins
	tokens  map[string]string // policy name → token
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st, err := registry.OpenMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, methods: &fakeMethods{}, twins: &fakeTwins{}, tokens: map[string]string{}}
	e.h, err = New(&Options{
		Store:    st,
		Auth:     auth.New(st, &auth.Options{HostNames: []string{"localhost:8443"}}),
		Methods:  e.methods,
		Presence: fakePresence{},
		Twins:    e.twins,
	})
	if err != nil {
		t.Fatal(err)
	}
	pols, _ := st.Policies()
	for _, p := range pols {
		key, _ := sas.DecodeKey(p.PrimaryKey)
		tok, err := sas.Sign("localhost", key, &sas.SignOptions{KeyName: p.KeyName})
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[p.KeyName] = tok.Encode()
	}
	return e
}

type resp struct {
	code   int
	header http.Header
	body   string
}

func (e *env) do(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	r.Header.Set("Authorization", e.tokens["iothubowner"])
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return resp{w.Code, w.Header(), w.Body.String()}
}

func (e *env) as(policy string) string { return e.tokens[policy] }

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("body %q: %v", s, err)
	}
	return m
}

// nodeParse reads the error code name the way the Node SDK does
// (azure-iot-http-base Http.parseErrorBody): Message split on ';',
// the code after the first ':' of part 0, the message in part 1.
func nodeParse(body string) (code, message string) {
	var m struct{ Message string }
	if json.Unmarshal([]byte(body), &m) != nil {
		return "", ""
	}
	parts := strings.Split(m.Message, ";")
	if len(parts) < 2 {
		return "", ""
	}
	cp := strings.Split(parts[0], ":")
	if len(cp) < 2 {
		return "", ""
	}
	return cp[1], parts[1]
}

// csharpParse reads the six-digit code the way the C# SDK does
// (ExceptionHandlingHelper): Message as a JSON object of strings.
func csharpParse(t *testing.T, body string) string {
	t.Helper()
	var m struct{ Message string }
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("C#: body is not JSON: %v", err)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(m.Message), &fields); err != nil {
		t.Fatalf("C#: Message %q is not a JSON object: %v", m.Message, err)
	}
	for k, v := range fields {
		switch v.(type) {
		case string, float64: // Newtonsoft converts numbers to strings
		default:
			t.Fatalf("C#: Message field %q is not a string or number", k)
		}
	}
	code, _ := fields["errorCode"].(float64)
	for _, k := range []string{"trackingId", "message", "timestampUtc"} {
		if _, ok := fields[k].(string); !ok {
			t.Fatalf("C#: Message lacks %s", k)
		}
	}
	return formatInt(int64(code))
}

func formatInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// wantError checks status, header and that both SDK parsers read the code.
func wantError(t *testing.T, r resp, status, code int, name string) {
	t.Helper()
	if r.code != status {
		t.Fatalf("status = %d; want %d (body %s)", r.code, status, r.body)
	}
	if got := r.header.Get("iothub-errorcode"); got != name {
		t.Errorf("iothub-errorcode = %q; want %q", got, name)
	}
	if ct := r.header.Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type = %q", ct)
	}
	if n, msg := nodeParse(r.body); n != name || msg == "" {
		t.Errorf("Node parse = %q, %q; want %q and a message (body %s)", n, msg, name, r.body)
	}
	if c := csharpParse(t, r.body); c != formatInt(int64(code)) {
		t.Errorf("C# parse errorCode = %s; want %d", c, code)
	}
}
