package hub

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/connstr"
)

// dpsAMQP is a provisioning client over AMQP, as
// azure-iot-provisioning-device-amqp makes one: SASL PLAIN with the
// registration address and its token (or a client certificate), a
// sender and a receiver on that address.
type dpsAMQP struct {
	conn *amqp.Conn
	snd  *amqp.Sender
	rcv  *amqp.Receiver
	// unsettling leaves replies unsettled, as the Java SDK does.
	unsettling bool
}

func dialDPSAMQP(t *testing.T, h *Hub, scope, regID, token string, cert *tls.Certificate) (*dpsAMQP, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := tlsFor(t, h)
	opts := &amqp.ConnOptions{TLSConfig: cfg}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	addr := scope + "/registrations/" + regID
	if token != "" {
		opts.SASLType = amqp.SASLTypePlain(addr, token)
	}
	c, err := amqp.Dial(ctx, "amqps://"+h.Addrs()[0], opts)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		return nil, err
	}
	props := map[string]any{"com.microsoft:api-version": "2019-03-31"}
	rcv, err := s.NewReceiver(ctx, addr, &amqp.ReceiverOptions{Properties: props, Credit: 10})
	if err != nil {
		return nil, err
	}
	snd, err := s.NewSender(ctx, addr, &amqp.SenderOptions{Properties: props})
	if err != nil {
		return nil, err
	}
	return &dpsAMQP{conn: c, snd: snd, rcv: rcv}, nil
}

// request sends one DPS request and returns the reply's application
// properties and decoded body.
func (d *dpsAMQP) request(t *testing.T, op, operationID, body string) (map[string]any, map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	corr := "corr-" + op + operationID
	props := map[string]any{"iotdps-operation-type": op, "iotdps-forceRegistration": false}
	if operationID != "" {
		props["iotdps-operation-id"] = operationID
	}
	if err := d.snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: corr},
		ApplicationProperties: props, Data: [][]byte{[]byte(body)}}, nil); err != nil {
		return nil, nil, err
	}
	m, err := d.rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	if !d.unsettling {
		d.rcv.AcceptMessage(ctx, m)
	}
	if m.Properties == nil || m.Properties.CorrelationID != corr {
		t.Errorf("the reply's correlation-id is %v; want %s", m.Properties, corr)
	}
	var v map[string]any
	if err := json.Unmarshal(m.GetData(), &v); err != nil {
		t.Fatalf("reply body %q is not JSON", m.GetData())
	}
	return m.ApplicationProperties, v, nil
}

// dialFleetMember enrolls the symmetric-key group "fleet" and connects
// its member amqp-1 over AMQP; it returns the member's key.
func dialFleetMember(t *testing.T, h *Hub) (*dpsAMQP, string) {
	t.Helper()
	scope := h.DPS().IDScope()
	key := putKeyGroup(t, h, "fleet", "amqp-1")
	d, err := dialDPSAMQP(t, h, scope, "amqp-1", dpsToken(t, scope, "amqp-1", key), nil)
	if err != nil {
		t.Fatalf("a provisioning client over AMQP was refused: %v", err)
	}
	return d, key
}

// A provisioning client that never settles the replies it receives (as
// provisioning-device-client for Java does) gets the reply to its status
// poll at once, not after the hub gave up waiting for the register
// reply's outcome.
func TestDPSOverAMQPRepliesToAClientThatNeverSettles(t *testing.T) {
	d, _ := dialFleetMember(t, startHub(t))
	d.unsettling = true
	_, op, err := d.request(t, "iotdps-register", "", `{"registrationId":"amqp-1"}`)
	if err != nil || op["status"] != "assigning" {
		t.Fatalf("register = %v, %v; want assigning", op, err)
	}
	if _, op, err = d.request(t, "iotdps-get-operationstatus", op["operationId"].(string), ""); err != nil || op["status"] != "assigned" {
		t.Fatalf("operation status = %v, %v; want assigned", op, err)
	}
}

func TestDPSOverAMQPRegistersAGroupMember(t *testing.T) {
	h := startHub(t)
	d, key := dialFleetMember(t, h)
	props, op, err := d.request(t, "iotdps-register", "", `{"registrationId":"amqp-1","payload":{"via":"amqp"}}`)
	if err != nil || op["status"] != "assigning" || props["retry-after"] == nil || props["Retry-After"] == nil {
		t.Fatalf("register = %v %v, %v; want assigning with retry-after and Retry-After", props, op, err)
	}
	_, op, err = d.request(t, "iotdps-get-operationstatus", op["operationId"].(string), "")
	st, _ := op["registrationState"].(map[string]any)
	if err != nil || op["status"] != "assigned" || st["deviceId"] != "amqp-1" || st["assignedHub"] != h.HostName() {
		t.Fatalf("operation status = %v, %v; want assigned", op, err)
	}
	cs := &connstr.ConnectionString{Kind: connstr.KindDevice, HostName: h.HostName(), DeviceID: "amqp-1", SharedAccessKey: key}
	if _, err := dial(t, h, cs, ""); err != nil {
		t.Errorf("the provisioned device cannot connect: %v", err)
	}

	// An unknown operation is rejected with amqp:not-found.
	_, _, err = d.request(t, "iotdps-get-operationstatus", "nope", "")
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound || !strings.Contains(ae.Description, "nope") {
		t.Errorf("status of an unknown operation = %v; want rejected with amqp:not-found naming it", err)
	}
}

func TestDPSOverAMQPRefusesBadCredentials(t *testing.T) {
	h := startHub(t)
	scope := h.DPS().IDScope()
	key := putKeyGroup(t, h, "fleet", "amqp-1")
	if _, err := dialDPSAMQP(t, h, scope, "amqp-2", dpsToken(t, scope, "amqp-2", key), nil); err == nil {
		t.Error("a token signed with another device's key was let in")
	}
	if _, err := dialDPSAMQP(t, h, "0ne00000000", "amqp-1", dpsToken(t, "0ne00000000", "amqp-1", key), nil); err == nil {
		t.Error("a token for another ID scope was let in")
	}
	// Without SASL PLAIN or a certificate, the links are refused.
	_, err := dialDPSAMQP(t, h, scope, "amqp-1", "", nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondUnauthorizedAccess {
		t.Errorf("links without credentials = %v; want amqp:unauthorized-access", err)
	}
}

func TestDPSOverAMQPWithAnX509Certificate(t *testing.T) {
	h := startHub(t)
	ca := putX509Group(t, h, "cams")
	cert := validCert(t, "cam-1", ca)
	d, err := dialDPSAMQP(t, h, h.DPS().IDScope(), "cam-1", "", &cert)
	if err != nil {
		t.Fatalf("an X.509 provisioning client over AMQP was refused: %v", err)
	}
	_, op, _ := d.request(t, "iotdps-register", "", "")
	_, op, err = d.request(t, "iotdps-get-operationstatus", op["operationId"].(string), "")
	if err != nil || op["status"] != "assigned" {
		t.Fatalf("operation = %v, %v; want assigned", op, err)
	}
}
