package hub

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMoreAddrs: each further address serves the hub as Addr does, and
// Addrs lists it after Addr's.
func TestMoreAddrs(t *testing.T) {
	h := New(&Options{Addr: "127.0.0.1:0", MoreAddrs: []string{"127.0.0.2:0"}, InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	addrs := h.Addrs()
	if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "127.0.0.1:") || !strings.HasPrefix(addrs[1], "127.0.0.2:") {
		t.Fatalf("Addrs = %q; want 127.0.0.1:PORT then 127.0.0.2:PORT", addrs)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFor(t, h)}, Timeout: 30 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	res, err := c.Get("https://" + addrs[1] + HealthPath)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /health on %s = %d; want 200", addrs[1], res.StatusCode)
	}
	// MQTT on the further address too: the mux answers a CONNECT.
	dev := createDevice(t, h, "d1")
	if _, err := dialAckAt(t, h, addrs[1], dev, "", true); err != nil {
		t.Errorf("MQTT device through %s: %v", addrs[1], err)
	}
}

func TestMoreAddrsRefusesABadAddress(t *testing.T) {
	h := New(&Options{Addr: "127.0.0.1:0", MoreAddrs: []string{"127.0.0.2"}, InMemory: true})
	err := h.Start(context.Background())
	if err == nil {
		h.Close()
		t.Fatal("Start(MoreAddrs 127.0.0.2 without a port) = nil error")
	}
	if !strings.Contains(err.Error(), `"127.0.0.2"`) {
		t.Errorf("error %q does not name the address", err)
	}
}

// TestServerChainIsTheLeafAlone: the hub sends its own certificate
// without the CA every client already trusts.
func TestServerChainIsTheLeafAlone(t *testing.T) {
	h := startHub(t)
	c, err := tls.Dial("tcp", h.Addrs()[0], tlsFor(t, h))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if len(st.PeerCertificates) != 1 || st.PeerCertificates[0].IsCA {
		t.Errorf("the hub sent %d certificates; want its own alone", len(st.PeerCertificates))
	}
	if len(st.VerifiedChains) != 1 || len(st.VerifiedChains[0]) != 2 {
		t.Errorf("verified chains %d; want one, to the CA", len(st.VerifiedChains))
	}
}
