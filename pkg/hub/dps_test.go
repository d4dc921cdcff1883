package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/provisioning"
	"github.com/iotctl/iotctl/pkg/sas"
)

// dpsService sends one DPS service API request signed with the hub's
// DPS connection string and returns the status and body.
func dpsService(t *testing.T, h *Hub, method, path string, body any) (int, []byte) {
	t.Helper()
	s, err := h.DPSConnectionString()
	if err != nil {
		t.Fatal(err)
	}
	cs := connstr.MustParse(s)
	key, _ := cs.Key()
	tok, err := sas.Sign(cs.HostName, key, &sas.SignOptions{KeyName: cs.SharedAccessKeyName})
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+h.Addrs()[0]+path+"?api-version=2021-10-01", rd)
	req.Header.Set("Authorization", tok.Encode())
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFor(t, h)}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func registerOpts(t *testing.T, h *Hub, regID string) *provisioning.Options {
	return &provisioning.Options{Host: h.Addrs()[0], IDScope: h.DPS().IDScope(), RegistrationID: regID,
		RootCAs: tlsFor(t, h).RootCAs, After: func(time.Duration) <-chan time.Time {
			c := make(chan time.Time, 1)
			c <- time.Now()
			return c
		}}
}

func TestDPSGroupEnrollmentOverHTTPSThenMQTT(t *testing.T) {
	h := startHub(t)
	status, body := dpsService(t, h, http.MethodPut, "/enrollmentGroups/fleet", map[string]any{
		"enrollmentGroupId": "fleet",
		"attestation":       map[string]any{"type": "symmetricKey"},
		"initialTwin":       map[string]any{"tags": map[string]any{"fleet": "a"}},
	})
	if status != http.StatusOK {
		t.Fatalf("PUT enrollment group = %d %s", status, body)
	}
	var g dps.EnrollmentGroup
	json.Unmarshal(body, &g)
	key, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "dev-1")

	o := registerOpts(t, h, "dev-1")
	o.SymmetricKey = key
	o.Payload = json.RawMessage(`{"hello":"dps"}`)
	res, err := provisioning.Register(context.Background(), o)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if res.State.AssignedHub != h.HostName() || res.State.DeviceID != "dev-1" || string(res.State.Payload) != `{"hello":"dps"}` {
		t.Errorf("state = %+v", res.State)
	}
	// The device connects to the hub it was assigned with its derived key.
	cs := &connstr.ConnectionString{Kind: connstr.KindDevice, HostName: res.State.AssignedHub, DeviceID: res.State.DeviceID, SharedAccessKey: key}
	if _, err := dial(t, h, cs, ""); err != nil {
		t.Fatalf("the provisioned device cannot connect: %v", err)
	}

	status, body = dpsService(t, h, http.MethodGet, "/registrations/dev-1", nil)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"assigned"`)) {
		t.Errorf("GET registration state = %d %s", status, body)
	}
	status, body = dpsService(t, h, http.MethodPost, "/enrollmentGroups/query", map[string]string{"query": "*"})
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"fleet"`)) {
		t.Errorf("query groups = %d %s", status, body)
	}

	// A wrong key is refused with 401, which the client reports as a refusal.
	o = registerOpts(t, h, "dev-2")
	o.SymmetricKey = key
	_, err = provisioning.Register(context.Background(), o)
	var pe *provisioning.Error
	if !errors.As(err, &pe) || pe.HTTPStatus != http.StatusUnauthorized || pe.Code != 401002 || !pe.Refused() {
		t.Errorf("Register with another device's key = %v; want 401 / 401002", err)
	}

	status, body = dpsService(t, h, http.MethodDelete, "/enrollmentGroups/fleet", nil)
	if status != http.StatusNoContent {
		t.Errorf("DELETE group = %d %s", status, body)
	}
	status, _ = dpsService(t, h, http.MethodGet, "/enrollmentGroups/fleet", nil)
	if status != http.StatusNotFound {
		t.Errorf("GET deleted group = %d; want 404", status)
	}
	// IoT Hub's own API is still there beside DPS's.
	if _, err := h.reg.Device("dev-1"); err != nil {
		t.Errorf("the provisioned device is gone from the registry: %v", err)
	}
}

func TestDPSX509IndividualEnrollmentUsesTheTLSClientCertificate(t *testing.T) {
	h := startHub(t)
	cert := validCert(t, "cam-9", nil)
	pemCert := string(pemOf(cert.Leaf.Raw))
	status, body := dpsService(t, h, http.MethodPut, "/enrollments/cam-9", map[string]any{
		"registrationId": "cam-9",
		"attestation": map[string]any{"type": "x509", "x509": map[string]any{
			"clientCertificates": map[string]any{"primary": map[string]any{"certificate": pemCert}}}},
	})
	if status != http.StatusOK {
		t.Fatalf("PUT enrollment = %d %s", status, body)
	}
	o := registerOpts(t, h, "cam-9")
	o.Certificate = &cert
	res, err := provisioning.Register(context.Background(), o)
	if err != nil {
		t.Fatalf("Register with a certificate: %v", err)
	}
	if res.State.DeviceID != "cam-9" || res.State.X509 == nil {
		t.Errorf("state = %+v", res.State)
	}
	if err := dialX509(t, h, "cam-9", &cert, false); err != nil {
		t.Errorf("the provisioned X.509 device cannot connect: %v", err)
	}
	other := validCert(t, "cam-9", nil)
	o.Certificate = &other
	_, err = provisioning.Register(context.Background(), o)
	var pe *provisioning.Error
	if !errors.As(err, &pe) || pe.HTTPStatus != http.StatusUnauthorized {
		t.Errorf("Register with another certificate = %v; want 401", err)
	}
}

func TestDPSPathsLeaveIoTHubPathsAlone(t *testing.T) {
	for path, want := range map[string]bool{
		"/0ne0000AAAA/registrations/dev/register": true,
		"/enrollments/x":                   true,
		"/enrollmentGroups/query":          true,
		"/registrations/dev":               true,
		"/devices/registrations/modules/m": false,
		"/devices/dev":                     false,
		"/twins/registrations/methods":     false,
		"/$iothub/websocket":               false,
		"/statistics/devices":              false,
	} {
		if got := dps.IsPath(path); got != want {
			t.Errorf("IsPath(%q) = %v; want %v", path, got, want)
		}
	}
}

// pemOf encodes a DER certificate as PEM.
func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
