package service

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
)

// testKey is the policy key of the connection strings in these tests
// ("secret-policy-key-32-bytes-long!" in base64).
const testKey = "c2VjcmV0LXBvbGljeS1rZXktMzItYnl0ZXMtbG9uZyE="

// testPKI is a CA and a server certificate for localhost, myhub.test
// and 127.0.0.1, made once per test binary.
type testPKI struct {
	server tls.Certificate
	pool   *x509.CertPool
	caPEM  []byte
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

var (
	pkiOnce sync.Once
	pki     testPKI
)

func getPKI(t *testing.T) testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		now := time.Now()
		caTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "service test CA"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		srvTmpl := &x509.Certificate{
			SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			DNSNames:    []string{"localhost", "myhub.test"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		pki.server = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
		pki.pool = x509.NewCertPool()
		pki.pool.AddCert(ca)
		pki.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
		pki.ca, pki.caKey = ca, caKey
	})
	return pki
}

// caFile writes the test CA to a PEM file and returns its path.
func caFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, getPKI(t).caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// seen is one request as the test server received it.
type seen struct {
	Method string
	Path   string // escaped path
	Query  map[string][]string
	Header http.Header
	Body   []byte
}

// hubServer is a TLS server standing in for IoT Hub's REST API: it
// records every request and answers with respond.
type hubServer struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []seen
	hits    atomic.Int32
	respond func(w http.ResponseWriter, r *http.Request, n int) // n counts from 1
}

// newHubServer starts a server; respond nil answers 200 {}.
func newHubServer(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *hubServer {
	t.Helper()
	return startHubServer(t, respond, nil)
}

func startHubServer(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int), wrap func(net.Listener) net.Listener) *hubServer {
	t.Helper()
	s := &hubServer{respond: respond}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := int(s.hits.Add(1))
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		if s.respond == nil {
			answer(w, 200, "", okBody(r))
			return
		}
		s.respond(w, r, n)
	}))
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if wrap != nil {
		s.Listener = wrap(s.Listener)
	}
	s.TLS = &tls.Config{Certificates: []tls.Certificate{getPKI(t).server}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *hubServer) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *hubServer) last(t *testing.T) seen {
	t.Helper()
	r := s.requests()
	if len(r) == 0 {
		t.Fatal("the server got no request")
	}
	return r[len(r)-1]
}

// port is the server's port.
func (s *hubServer) port() string {
	_, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	return p
}

// connectionString is an iothubowner string for host (which may carry
// a port).
func connectionString(host string) *connstr.ConnectionString {
	return connstr.MustParse("HostName=" + host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + testKey)
}

// client returns a Client for the server reached as localhost:port,
// trusting the test CA and never pausing long between retries.
func (s *hubServer) client(t *testing.T, opts *Options) *Client {
	t.Helper()
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.RootCAs == nil && o.CAFile == "" && o.HTTPClient == nil {
		o.RootCAs = getPKI(t).pool
	}
	c, err := New(connectionString("localhost:"+s.port()), &o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// okBody is an empty answer of the right shape: [] for lists, {}
// otherwise.
func okBody(r *http.Request) string {
	if r.URL.Path == "/devices" || r.URL.Path == "/devices/query" || strings.HasSuffix(r.URL.Path, "/modules") {
		return "[]"
	}
	return "{}"
}

// answer writes status with an optional iothub-errorcode header and body.
func answer(w http.ResponseWriter, status int, errorCode, body string) {
	if errorCode != "" {
		w.Header().Set("iothub-errorcode", errorCode)
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
