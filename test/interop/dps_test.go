package interop

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/dps"
)

// requireDPSPackages makes the pinned Node packages ready, the DPS ones
// among them.
func requireDPSPackages(t *testing.T) {
	t.Helper()
	requireNode(t)
}

// dpsService runs one azure-iot-provisioning-service operation and
// decodes its result into a map.
func (e *env) dpsService(op string, arg any) (map[string]any, *jsError) {
	e.t.Helper()
	cs, err := e.hub.DPSConnectionString()
	if err != nil {
		e.t.Fatal(err)
	}
	_, raw, jerr := e.nodeJSON("dps_service.js", cs, op, arg)
	var res map[string]any
	json.Unmarshal(raw, &res)
	return res, jerr
}

// dpsEnv is an env whose Node provisioning client uses one transport.
type dpsEnv struct {
	*env
	transport string // http, mqtt or amqp
}

// runDPSDevice runs js/dps_device.js over e.transport and returns the
// JSON objects it printed and whether it exited 0.
func (e *dpsEnv) runDPSDevice(args ...string) ([]map[string]any, bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := e.nodeCmd(ctx, "dps_device.js", args...)
	cmd.Env = append(cmd.Env, "DPS_TRANSPORT="+e.transport)
	out, err := cmd.Output()
	return jsonEvents(e.t, "node dps_device.js", out, err), err == nil
}

// jsonEvents decodes the JSON objects a script printed one per line,
// failing the test when it printed none.
func jsonEvents(t *testing.T, what string, out []byte, err error) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			evs = append(evs, m)
		}
	}
	if len(evs) == 0 {
		t.Fatalf("%s printed nothing: %v\nstdout: %s\nstderr: %s", what, err, out, stderrOf(err))
	}
	return evs
}

// registerNode provisions a Node device through DPS with a symmetric
// key, then sends n messages to the hub it was assigned.
func (e *dpsEnv) registerNode(regID, key string, n int, payload string) ([]map[string]any, bool) {
	e.t.Helper()
	args := []string{e.hub.HostName(), e.hub.DPS().IDScope(), regID, key, strconv.Itoa(n)}
	if payload != "" {
		args = append(args, payload)
	}
	return e.runDPSDevice(args...)
}

func (e *env) wantTelemetry(deviceID string, n int) {
	e.t.Helper()
	log := e.hub.Telemetry()
	evs, _ := log.Read(log.PartitionOf(deviceID), 0, 100)
	got := 0
	for _, ev := range evs {
		if ev.DeviceID == deviceID {
			got++
		}
	}
	if got != n {
		e.t.Errorf("hub side: %d messages from %s in the telemetry log; want %d", got, deviceID, n)
	}
}

// The official Node DPS service client creates, reads, queries and
// deletes an individual enrollment and an enrollment group.
func TestNodeDPSServiceEnrollments(t *testing.T) {
	requireDPSPackages(t)
	e := newEnv(t)
	res, errObj := e.dpsService("createEnrollment", map[string]any{
		"registrationId": "node-sym", "deviceId": "node-sym-device",
		"attestation":        map[string]any{"type": "symmetricKey"},
		"initialTwin":        map[string]any{"tags": map[string]any{"site": "lab"}},
		"provisioningStatus": "enabled",
	})
	if errObj != nil || res["etag"] == nil {
		t.Fatalf("createOrUpdateIndividualEnrollment = %v, %v", res, errObj)
	}
	res, errObj = e.dpsService("getEnrollment", map[string]string{"id": "node-sym"})
	att, _ := res["attestation"].(map[string]any)
	keys, _ := att["symmetricKey"].(map[string]any)
	if errObj != nil || res["deviceId"] != "node-sym-device" || keys["primaryKey"] == "" || keys["primaryKey"] == nil {
		t.Fatalf("getIndividualEnrollment = %v, %v; want the device id and generated keys", res, errObj)
	}
	groupKey := "G3vn0IZH9oK3d4wsxFpWBtd2KUrtjI+39dZVRf26To8w9OX0LaFV9yZ93ELXY7voqHEUsNhnb9bt717UP87KxA=="
	res, errObj = e.dpsService("createGroup", map[string]any{
		"enrollmentGroupId": "node-group",
		"attestation":       map[string]any{"type": "symmetricKey", "symmetricKey": map[string]string{"primaryKey": groupKey, "secondaryKey": groupKey}},
	})
	if errObj != nil || res["enrollmentGroupId"] != "node-group" {
		t.Fatalf("createOrUpdateEnrollmentGroup = %v, %v", res, errObj)
	}
	if res, errObj = e.dpsService("getGroup", map[string]string{"id": "node-group"}); errObj != nil || res["etag"] == nil {
		t.Fatalf("getEnrollmentGroup = %v, %v", res, errObj)
	}
	cs, _ := e.hub.DPSConnectionString()
	_, raw, jerr := e.nodeJSON("dps_service.js", cs, "queryEnrollments", map[string]any{})
	var items []map[string]any
	if json.Unmarshal(raw, &items); jerr != nil || len(items) != 1 || items[0]["registrationId"] != "node-sym" {
		t.Errorf("createIndividualEnrollmentQuery('*').next() = %s, %v; want node-sym alone", raw, jerr)
	}
	for _, op := range [][2]string{{"deleteEnrollment", "node-sym"}, {"deleteGroup", "node-group"}} {
		if _, errObj := e.dpsService(op[0], map[string]string{"id": op[1]}); errObj != nil {
			t.Errorf("%s: %v", op[0], errObj)
		}
	}
	_, errObj = e.dpsService("getEnrollment", map[string]string{"id": "node-sym"})
	if errObj == nil || errObj.Code != "404" {
		t.Errorf("getIndividualEnrollment after delete = %v; want a 404 error", errObj)
	}
	_, errObj = e.dpsService("getGroup", map[string]string{"id": "node-group"})
	if errObj == nil || errObj.Code != "404" {
		t.Errorf("getEnrollmentGroup after delete = %v; want a 404 error", errObj)
	}
}

// The official Node provisioning client (symmetric key), over each of
// its transports (MQTT and AMQP also over WebSocket on 443), registers through an individual enrollment and
// through an enrollment group, then connects to the hub it was assigned
// with azure-iot-device over MQTT and sends telemetry.
func TestNodeDPSDeviceRegistersAndSends(t *testing.T) {
	requireDPSPackages(t)
	for _, tr := range []string{"http", "mqtt", "amqp", "mqttws", "amqpws"} {
		t.Run(tr, func(t *testing.T) {
			nodeDPSDeviceRegistersAndSends(t, &dpsEnv{env: newEnv(t), transport: tr})
		})
	}
}

func nodeDPSDeviceRegistersAndSends(t *testing.T, e *dpsEnv) {
	ind, err := e.hub.DPS().PutEnrollment(&dps.IndividualEnrollment{RegistrationID: "node-ind",
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	evs, ok := e.registerNode("node-ind", ind.Attestation.SymmetricKey.PrimaryKey, 3, `{"model":"node"}`)
	reg := evs[0]
	result, _ := reg["result"].(map[string]any)
	if !ok || reg["event"] != "registered" || result["assignedHub"] != e.hub.HostName() || result["deviceId"] != "node-ind" {
		t.Fatalf("individual enrollment, Node side: %v", evs)
	}
	if p, _ := result["payload"].(map[string]any); p["model"] != "node" {
		t.Errorf("the registration result's payload = %v; want the device's", result["payload"])
	}
	if evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("the provisioned Node device did not send: %v", evs)
	}
	e.wantTelemetry("node-ind", 3)

	g, err := e.hub.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "node-fleet",
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "node-grp-1")
	evs, ok = e.registerNode("node-grp-1", key, 2, "")
	if !ok || evs[0]["event"] != "registered" || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("group enrollment, Node side: %v", evs)
	}
	e.wantTelemetry("node-grp-1", 2)
	if st, err := e.hub.DPS().RegistrationState("node-grp-1"); err != nil || st.Status != dps.RegAssigned {
		t.Errorf("hub side: registration state %+v, %v", st, err)
	}

	// A key of no enrollment: the Node client gets DPS's 401 over HTTPS,
	// CONNACK 5 "not authorized" over MQTT and a SASL refusal over AMQP,
	// where the credentials are checked as the client connects.
	wrong, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "someone-else")
	evs, ok = e.registerNode("node-grp-2", wrong, 0, "")
	refused := evs[0]["name"] == "UnauthorizedError"
	msg, _ := evs[0]["message"].(string)
	switch e.transport {
	case "mqtt", "mqttws":
		refused = strings.Contains(msg, "Not authorized")
	case "amqp", "amqpws":
		// azure-iot-amqp-base reports a refused SASL outcome so.
		refused = evs[0]["name"] == "NotConnectedError"
	}
	if ok || evs[0]["event"] != "error" || !refused {
		t.Errorf("registering with a wrong key, Node side: %v; want a refusal", evs)
	}
	if st, err := e.hub.DPS().RegistrationState("node-grp-2"); err == nil {
		t.Errorf("hub side: a refused device has a registration state %+v", st)
	}
}

// The official Python provisioning client (azure-iot-device
// ProvisioningDeviceClient over MQTT, symmetric key) registers through
// an enrollment group with its derived key and custom payload, then
// connects to the hub it was assigned and sends telemetry; a key of no
// enrollment is refused.
func TestPythonDPSDeviceRegistersAndSends(t *testing.T) {
	e, py := newPythonEnv(t, hub.Options{})
	g, err := e.hub.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "py-fleet",
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	run := func(regID, key string, n int, payload string) ([]map[string]any, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := []string{e.hub.HostName(), e.hub.DPS().IDScope(), regID, key, e.hub.CAFile(), strconv.Itoa(n)}
		if payload != "" {
			args = append(args, payload)
		}
		out, err := pythonCmd(ctx, py, "dps_device.py", args...).Output()
		return jsonEvents(t, "python dps_device.py", out, err), err == nil
	}
	key, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "py-grp-1")
	evs, ok := run("py-grp-1", key, 2, `{"model":"python"}`)
	reg := evs[0]
	if !ok || reg["status"] != "assigned" || reg["assignedHub"] != e.hub.HostName() || reg["deviceId"] != "py-grp-1" {
		t.Fatalf("Python side: %v", evs)
	}
	// azure-iot-device hands the payload over as the JSON text.
	var p map[string]any
	if s, _ := reg["payload"].(string); json.Unmarshal([]byte(s), &p) != nil || p["model"] != "python" {
		t.Errorf("the registration result's payload = %v; want the device's", reg["payload"])
	}
	if evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("the provisioned Python device did not send: %v", evs)
	}
	(&dpsEnv{env: e}).wantTelemetry("py-grp-1", 2)

	wrong, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "someone-else")
	evs, ok = run("py-grp-2", wrong, 0, "")
	if ok || evs[0]["event"] != "error" {
		t.Errorf("registering with a wrong key, Python side: %v; want an error", evs)
	}
	if st, err := e.hub.DPS().RegistrationState("py-grp-2"); err == nil {
		t.Errorf("hub side: a refused device has a registration state %+v", st)
	}
}

// The official Node provisioning client with azure-iot-security-x509,
// over each transport (AMQP also over WebSocket): a device with its own certificate registers
// through an individual enrollment and one whose certificate a CA
// signed through the CA's group; both then connect to the hub with
// their certificate and send.
func TestNodeDPSX509DeviceRegistersAndSends(t *testing.T) {
	requireDPSPackages(t)
	for _, tr := range []string{"http", "mqtt", "amqp", "amqpws"} {
		t.Run(tr, func(t *testing.T) {
			e := &dpsEnv{env: newEnv(t), transport: tr}
			now := time.Now()
			dir := t.TempDir()
			write := func(name string, b []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			// An individual enrollment with the device's own certificate.
			cert, key, err := devicecert.New("node-cam-1", now.Add(-time.Hour), now.Add(time.Hour), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.hub.DPS().PutEnrollment(&dps.IndividualEnrollment{RegistrationID: "node-cam-1", Attestation: &dps.Attestation{Type: dps.AttestationX509,
				X509: &dps.X509Attestation{ClientCertificates: &dps.X509Certificates{Primary: &dps.X509CertificateWithInfo{Certificate: string(cert)}}}}}, ""); err != nil {
				t.Fatal(err)
			}
			e.wantX509Registration("node-cam-1", write("cam-1.pem", cert), write("cam-1-key.pem", key))

			// A group of a CA, and a device whose certificate it signed.
			caPEM, caKey, err := devicecert.NewCA("node fleet CA", now.Add(-time.Hour), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.hub.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "node-cams", Attestation: &dps.Attestation{Type: dps.AttestationX509,
				X509: &dps.X509Attestation{SigningCertificates: &dps.X509Certificates{Primary: &dps.X509CertificateWithInfo{Certificate: string(caPEM)}}}}}, ""); err != nil {
				t.Fatal(err)
			}
			issuer, err := tls.X509KeyPair(caPEM, caKey)
			if err != nil {
				t.Fatal(err)
			}
			cert, key, err = devicecert.New("node-cam-2", now.Add(-time.Hour), now.Add(time.Hour), &issuer)
			if err != nil {
				t.Fatal(err)
			}
			e.wantX509Registration("node-cam-2", write("cam-2.pem", cert), write("cam-2-key.pem", key))
		})
	}
}

// wantX509Registration runs js/dps_x509.js for regID and checks that it
// registered, was assigned this hub and sent 2 messages.
func (e *dpsEnv) wantX509Registration(regID, certFile, keyFile string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := e.nodeCmd(ctx, "dps_x509.js", e.hub.HostName(), e.hub.DPS().IDScope(), regID, certFile, keyFile, "2")
	cmd.Env = append(cmd.Env, "DPS_TRANSPORT="+e.transport)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"event":"registered"`) || !strings.Contains(string(out), `"event":"sent"`) ||
		!strings.Contains(string(out), `"assignedHub":"`+e.hub.HostName()+`"`) {
		e.t.Fatalf("%s over %s, Node side: %v\nstdout: %s\nstderr: %s", regID, e.transport, err, out, stderrOf(err))
	}
	e.wantTelemetry(regID, 2)
}

// `iotctl dps register` with the key of a group member that the Node
// SDKs derive (azure-iot-common's hmacHash, the HMAC the Node security
// clients sign with) from the key of a group the Node DPS service
// client created: the device is assigned and its connection string
// works.
func TestCLIRegistersWithANodeDerivedKey(t *testing.T) {
	requireDPSPackages(t)
	e := newEnv(t)
	res, errObj := e.dpsService("createGroup", map[string]any{"enrollmentGroupId": "cli-fleet", "attestation": map[string]any{"type": "symmetricKey"}})
	att, _ := res["attestation"].(map[string]any)
	keys, _ := att["symmetricKey"].(map[string]any)
	groupKey, _ := keys["primaryKey"].(string)
	if errObj != nil || groupKey == "" {
		t.Fatalf("createOrUpdateEnrollmentGroup = %v, %v; want generated keys", res, errObj)
	}
	cs, _ := e.hub.DPSConnectionString()
	_, raw, jerr := e.nodeJSON("dps_service.js", cs, "deriveKey", map[string]string{"groupKey": groupKey, "registrationId": "cli-dev-1"})
	var key string
	if err := json.Unmarshal(raw, &key); err != nil || jerr != nil || key == "" {
		t.Fatalf("deriveKey = %s, %v", raw, jerr)
	}
	out, errOut, code := e.iotctl("dps", "register", "--id-scope", e.hub.DPS().IDScope(), "--registration-id", "cli-dev-1", "--key", key, "-o", "json")
	var got struct{ Status, AssignedHub, DeviceID, ConnectionString string }
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 || got.Status != "assigned" || got.AssignedHub != e.hub.HostName() || got.DeviceID != "cli-dev-1" {
		t.Fatalf("iotctl dps register = %d %s %s", code, out, errOut)
	}
	if want, err := e.hub.DeviceConnectionString("cli-dev-1", ""); err != nil || got.ConnectionString != want {
		t.Errorf("iotctl dps register printed the connection string %q; the hub's is %q (%v)", got.ConnectionString, want, err)
	}
	st, errObj := e.dpsService("getRegistration", map[string]string{"id": "cli-dev-1"})
	if sym, _ := st["symmetricKey"].(map[string]any); errObj != nil || st["status"] != "assigned" || sym["enrollmentGroupId"] != "cli-fleet" {
		t.Errorf("getDeviceRegistrationState(cli-dev-1) = %v, %v; want assigned through cli-fleet", st, errObj)
	}
}
