package hub

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/sas"
)

// dialDPS connects a provisioning client over MQTT as
// azure-iot-provisioning-device-mqtt does: client id = registration id,
// user name {idScope}/registrations/{id}/api-version=...; password the
// SAS token, or a client certificate and no password.
func dialDPS(t *testing.T, h *Hub, scope, clientID, regID, password string, cert *tls.Certificate) (*device, error) {
	t.Helper()
	d := &device{received: make(chan paho.Message, 100), lost: make(chan error, 1)}
	cfg := tlsFor(t, h)
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	opts := paho.NewClientOptions().
		AddBroker("tls://" + h.Addrs()[0]).
		SetClientID(clientID).
		SetUsername(scope + "/registrations/" + regID + "/api-version=2019-03-31&ClientVersion=iotctl-test").
		SetTLSConfig(cfg).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.received <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err })
	if password != "" {
		opts.SetPassword(password)
	}
	d.c = paho.NewClient(opts)
	tok := d.c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d, nil
}

// putX509Group enrolls a group of a new CA and returns the CA.
func putX509Group(t *testing.T, h *Hub, id string) *tls.Certificate {
	t.Helper()
	ca := newTestCA(t).pair
	if _, err := h.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: id, Attestation: &dps.Attestation{Type: dps.AttestationX509,
		X509: &dps.X509Attestation{SigningCertificates: &dps.X509Certificates{Primary: &dps.X509CertificateWithInfo{Certificate: string(pemOf(ca.Leaf.Raw))}}}}}, ""); err != nil {
		t.Fatal(err)
	}
	return ca
}

// putKeyGroup enrolls a symmetric-key group and returns the key
// derived from it for regID.
func putKeyGroup(t *testing.T, h *Hub, id, regID string) string {
	t.Helper()
	g, err := h.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: id, Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, regID)
	return key
}

// dpsToken signs a registration's SAS token as the device SDKs do.
func dpsToken(t *testing.T, scope, regID, key string) string {
	t.Helper()
	k, err := sas.DecodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.Sign(dps.RegistrationResource(scope, regID), k, &sas.SignOptions{KeyName: "registration"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode()
}

// dpsRoundTrip publishes one request and returns the response's topic
// and decoded body.
func dpsRoundTrip(t *testing.T, d *device, topic, body string) (string, map[string]any) {
	t.Helper()
	d.publish(t, topic, 1, body)
	m := d.next(t)
	var v map[string]any
	if err := json.Unmarshal(m.Payload(), &v); err != nil {
		t.Fatalf("response on %s is not JSON: %q", m.Topic(), m.Payload())
	}
	return m.Topic(), v
}

func TestDPSOverMQTTRegistersAGroupMemberThatThenConnects(t *testing.T) {
	h := startHub(t)
	scope := h.DPS().IDScope()
	key := putKeyGroup(t, h, "fleet", "dev-1")
	d, err := dialDPS(t, h, scope, "dev-1", "dev-1", dpsToken(t, scope, "dev-1", key), nil)
	if err != nil {
		t.Fatalf("a provisioning client over MQTT was refused: %v", err)
	}
	d.subscribe(t, "$dps/registrations/res/#", 1)

	topic, op := dpsRoundTrip(t, d, "$dps/registrations/PUT/iotdps-register/?$rid=r1", `{"registrationId":"dev-1","payload":{"model":"m1"}}`)
	if !strings.HasPrefix(topic, "$dps/registrations/res/202/?$rid=r1&retry-after=") || op["status"] != "assigning" || op["operationId"] == "" {
		t.Fatalf("register answered %s %v; want 202 assigning with $rid=r1 and a retry-after", topic, op)
	}
	topic, op = dpsRoundTrip(t, d, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=r2&operationId="+op["operationId"].(string), " ")
	st, _ := op["registrationState"].(map[string]any)
	if topic != "$dps/registrations/res/200/?$rid=r2" || op["status"] != "assigned" || st["assignedHub"] != h.HostName() ||
		st["deviceId"] != "dev-1" || st["substatus"] != "initialAssignment" {
		t.Fatalf("operation status answered %s %v; want 200 assigned to this hub", topic, op)
	}
	if p, _ := st["payload"].(map[string]any); p["model"] != "m1" {
		t.Errorf("registrationState.payload = %v; want the device's", st["payload"])
	}

	// The provisioned device connects to the hub with its derived key
	// while its provisioning connection, with the same client id, stays.
	cs := &connstr.ConnectionString{Kind: connstr.KindDevice, HostName: h.HostName(), DeviceID: "dev-1", SharedAccessKey: key}
	if _, err := dial(t, h, cs, ""); err != nil {
		t.Fatalf("the provisioned device cannot connect: %v", err)
	}
	if !d.c.IsConnectionOpen() {
		t.Error("the hub connection of dev-1 took over its provisioning connection")
	}
	topic, op = dpsRoundTrip(t, d, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=3&operationId=nope", "")
	if topic != "$dps/registrations/res/404/?$rid=3" || op["errorCode"] != float64(404204) {
		t.Errorf("status of an unknown operation answered %s %v; want 404 / 404204", topic, op)
	}
	// A body naming another registration id is refused, as over HTTPS.
	topic, op = dpsRoundTrip(t, d, "$dps/registrations/PUT/iotdps-register/?$rid=4", `{"registrationId":"dev-2"}`)
	if topic != "$dps/registrations/res/400/?$rid=4" || !strings.Contains(op["message"].(string), "dev-2") {
		t.Errorf("register with another id in the body answered %s %v; want 400 naming it", topic, op)
	}
}

func TestDPSOverMQTTWithAnX509GroupCertificate(t *testing.T) {
	h := startHub(t)
	ca := putX509Group(t, h, "cams")
	cert := validCert(t, "cam-1", ca)
	scope := h.DPS().IDScope()
	d, err := dialDPS(t, h, scope, "cam-1", "cam-1", "", &cert)
	if err != nil {
		t.Fatalf("an X.509 provisioning client was refused: %v", err)
	}
	d.subscribe(t, "$dps/registrations/res/#", 1)
	_, op := dpsRoundTrip(t, d, "$dps/registrations/PUT/iotdps-register/?$rid=1", "")
	_, op = dpsRoundTrip(t, d, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId="+op["operationId"].(string), "")
	if op["status"] != "assigned" {
		t.Fatalf("operation = %v; want assigned", op)
	}
	if err := dialX509(t, h, "cam-1", &cert, false); err != nil {
		t.Errorf("the provisioned X.509 device cannot connect: %v", err)
	}
	// A certificate of the group for another CN cannot register as cam-1.
	other := validCert(t, "cam-2", ca)
	if _, err := dialDPS(t, h, scope, "cam-1", "cam-1", "", &other); err == nil {
		t.Error("a certificate whose CN is not the registration id was let in")
	}
}

func TestDPSOverMQTTRefusesAndSaysWhy(t *testing.T) {
	h, lb := startLoggedHub(t, nil)
	scope := h.DPS().IDScope()
	key := putKeyGroup(t, h, "fleet", "dev-1")
	for _, c := range []struct {
		name, scope, clientID, regID, password, log string
	}{
		{"another device's key", scope, "dev-2", "dev-2", dpsToken(t, scope, "dev-2", key), "signed by no enrollment group"},
		{"another ID scope", "0ne00000000", "dev-1", "dev-1", dpsToken(t, "0ne00000000", "dev-1", key), "is not this service's"},
		{"client id is not the registration id", scope, "other", "dev-1", dpsToken(t, scope, "dev-1", key), "client id is not the registration id"},
		{"forbidden character", scope, "dev#1", "dev#1", dpsToken(t, scope, "dev#1", key), "registration id"},
		{"no credentials", scope, "dev-1", "dev-1", "", "neither a SAS token"},
	} {
		_, mark := lb.since(0)
		if _, err := dialDPS(t, h, c.scope, c.clientID, c.regID, c.password, nil); err == nil {
			t.Errorf("%s: the provisioning client was let in", c.name)
			continue
		}
		if log, _ := lb.since(mark); !strings.Contains(log, "dps mqtt connect refused") || !strings.Contains(log, c.log) {
			t.Errorf("%s: the hub's log does not say why (want %q):\n%s", c.name, c.log, log)
		}
	}

	// A provisioning client is kept to DPS's topics.
	d, err := dialDPS(t, h, scope, "dev-1", "dev-1", dpsToken(t, scope, "dev-1", key), nil)
	if err != nil {
		t.Fatal(err)
	}
	d.c.Publish("devices/dev-1/messages/events/", 1, false, "x")
	select {
	case <-d.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("a provisioning client that published telemetry was not disconnected")
	}
	log := h.Telemetry()
	if evs, _ := log.Read(log.PartitionOf("dev-1"), 0, 10); len(evs) != 0 {
		t.Errorf("the telemetry log holds %d events from a provisioning client", len(evs))
	}
}
