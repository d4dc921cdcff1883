package provisioning_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// scriptedDPS answers the device API's requests in turn with the given
// answers, and records each request's method and path.
type scriptedDPS struct {
	mu      sync.Mutex
	answers []answer
	seen    []string
}

type answer struct {
	status     int
	retryAfter string
	body       any
}

func (s *scriptedDPS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r.Method+" "+r.URL.Path)
	if len(s.answers) == 0 {
		s.mu.Unlock()
		http.Error(w, `{"errorCode":500000,"message":"no more answers scripted"}`, http.StatusInternalServerError)
		return
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	s.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(a.body)
}

func (s *scriptedDPS) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// waits records every wait Register asks for and ends it at once.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) after(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	c := make(chan time.Time, 1)
	c <- time.Time{}
	return c
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func startDPS(t *testing.T, s *scriptedDPS) (host string, roots *x509.CertPool) {
	t.Helper()
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	roots = x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return strings.TrimPrefix(srv.URL, "https://"), roots
}

func throttled(retryAfter string) answer {
	return answer{status: http.StatusTooManyRequests, retryAfter: retryAfter,
		body: map[string]any{"errorCode": 429001, "message": "throttled"}}
}

const key = "c2VjcmV0LWtleS1vZi10aGUtZGV2aWNlLWZvci10ZXN0cw=="

func TestRegisterRetriesThrottlingAndServerErrors(t *testing.T) {
	t.Parallel()
	assigned := dps.OperationStatus{OperationID: "op-1", Status: dps.RegAssigned,
		RegistrationState: &dps.RegistrationState{RegistrationID: "dev-1", Status: dps.RegAssigned, AssignedHub: "hub.example", DeviceID: "dev-1"}}
	s := &scriptedDPS{answers: []answer{
		throttled("3"),
		{status: http.StatusServiceUnavailable, body: map[string]any{"errorCode": 503000, "message": "busy"}},
		{status: http.StatusAccepted, retryAfter: "1", body: dps.OperationStatus{OperationID: "op-1", Status: dps.RegAssigning}},
		throttled("5"),
		{status: http.StatusOK, body: assigned},
	}}
	host, roots := startDPS(t, s)
	w := &waits{}
	res, err := provisioning.Register(context.Background(), &provisioning.Options{
		Host: host, IDScope: "0ne00000001", RegistrationID: "dev-1", SymmetricKey: key,
		RootCAs: roots, After: w.after,
	})
	if err != nil {
		t.Fatalf("Register through 429 and 503 answers: %v", err)
	}
	if res.State.AssignedHub != "hub.example" || res.State.DeviceID != "dev-1" {
		t.Errorf("Register = hub %q device %q; want hub.example dev-1", res.State.AssignedHub, res.State.DeviceID)
	}
	wantReq := []string{
		"PUT /0ne00000001/registrations/dev-1/register",
		"PUT /0ne00000001/registrations/dev-1/register",
		"PUT /0ne00000001/registrations/dev-1/register",
		"GET /0ne00000001/registrations/dev-1/operations/op-1",
		"GET /0ne00000001/registrations/dev-1/operations/op-1",
	}
	if got := s.requests(); strings.Join(got, "\n") != strings.Join(wantReq, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantReq, "\n"))
	}
	// The 429's retry-after, the default for a 503 without one, the
	// 202's retry-after before the poll, the second 429's.
	wantWaits := []time.Duration{3 * time.Second, provisioning.DefaultRetryAfter, time.Second, 5 * time.Second}
	if got := w.all(); len(got) != len(wantWaits) || got[0] != wantWaits[0] || got[1] != wantWaits[1] || got[2] != wantWaits[2] || got[3] != wantWaits[3] {
		t.Errorf("waits = %v; want %v", got, wantWaits)
	}
}

func TestRegisterStopsRetryingWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	s := &scriptedDPS{answers: []answer{throttled("30")}}
	host, roots := startDPS(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan time.Duration, 1)
	_, err := provisioning.Register(ctx, &provisioning.Options{
		Host: host, IDScope: "0ne00000001", RegistrationID: "dev-1", SymmetricKey: key, RootCAs: roots,
		// The command's timeout ends while Register waits out the 429.
		After: func(d time.Duration) <-chan time.Time {
			waited <- d
			cancel()
			return make(chan time.Time)
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Register throttled past its context = %v; want context.Canceled", err)
	}
	if d := <-waited; d != 30*time.Second {
		t.Errorf("waited %v after a 429 with retry-after 30; want 30s", d)
	}
	if got := s.requests(); len(got) != 1 {
		t.Errorf("requests after the context ended: %v; want only the first", got)
	}
}

func TestRegisterRefusalIsNotRetried(t *testing.T) {
	t.Parallel()
	s := &scriptedDPS{answers: []answer{{status: http.StatusUnauthorized,
		body: map[string]any{"errorCode": 401002, "message": "the enrollment group g is disabled"}}}}
	host, roots := startDPS(t, s)
	w := &waits{}
	_, err := provisioning.Register(context.Background(), &provisioning.Options{
		Host: host, IDScope: "0ne00000001", RegistrationID: "dev-1", SymmetricKey: key, RootCAs: roots, After: w.after,
	})
	var pe *provisioning.Error
	if !errors.As(err, &pe) || pe.HTTPStatus != http.StatusUnauthorized || pe.Code != 401002 || !pe.Refused() {
		t.Fatalf("Register refused with 401 = %v; want a refused *provisioning.Error 401 401002", err)
	}
	if !strings.Contains(pe.Message, "disabled") {
		t.Errorf("message %q does not carry DPS's reason", pe.Message)
	}
	if got := w.all(); len(got) != 0 {
		t.Errorf("waits after a refusal: %v; want none", got)
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("error %q carries the key", err)
	}
}
