package interop

import (
	"fmt"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/dps"
)

// The official Java provisioning client (provisioning-device-client,
// symmetric key) over each of its transports (HTTPS, MQTT and AMQP, each of
// the last two also over WebSocket) registers through an
// individual enrollment with a custom payload and through an enrollment
// group with the key it derives itself (ComputeDerivedSymmetricKey),
// then connects to the hub it was assigned with iot-device-client over
// MQTT and sends telemetry; a key of no enrollment is refused.
func TestJavaDPSDeviceRegistersAndSends(t *testing.T) {
	j := startJava(t)
	for _, transport := range []string{"HTTPS", "MQTT", "MQTT_WS", "AMQPS", "AMQPS_WS"} {
		t.Run(transport, func(t *testing.T) { testJavaDPS(t, j, transport) })
	}
}

func testJavaDPS(t *testing.T, j *javaProc, transport string) {
	e := &dpsEnv{env: startHub(t, hub.Options{})}
	tr := strings.ToLower(strings.ReplaceAll(transport, "_", "-"))
	register := func(dev, regID string, key map[string]any) map[string]any {
		args := map[string]any{"host": e.hub.HostName(), "scope": e.hub.DPS().IDScope(), "registrationId": regID,
			"transport": transport, "ca": e.hub.CAFile()}
		for k, v := range key {
			args[k] = v
		}
		cmd := map[string]any{"op": "register", "dev": dev}
		for k, v := range args {
			cmd[k] = v
		}
		j.p.send(cmd)
		return j.waitAny(t, dev, "registered", "error")
	}
	openAndSend := func(dev string, n int) {
		j.do(t, dev, "open", map[string]any{"protocol": "MQTT", "ca": e.hub.CAFile()}, "opened")
		defer j.do(t, dev, "close", nil, "closed")
		for i := range n {
			j.do(t, dev, "send", map[string]any{"body": fmt.Sprintf(`{"n": %d}`, i)}, "sent")
		}
	}

	// An individual enrollment, with a custom payload.
	indID := "java-ind-" + tr
	ind, err := e.hub.DPS().PutEnrollment(&dps.IndividualEnrollment{RegistrationID: indID, DeviceID: indID + "-device",
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	reg := register(indID, indID, map[string]any{"key": ind.Attestation.SymmetricKey.PrimaryKey, "payload": `{"model":"java"}`})
	if reg["event"] != "registered" || reg["status"] != "PROVISIONING_DEVICE_STATUS_ASSIGNED" || reg["registrationStatus"] != "assigned" ||
		reg["assignedHub"] != e.hub.HostName() || reg["deviceId"] != indID+"-device" || reg["substatus"] != "INITIAL_ASSIGNMENT" {
		t.Fatalf("individual enrollment, Java side: %v%s", reg, j.p.stderrDetail())
	}
	// The SDK sends its custom data as a JSON string, which DPS passes to
	// a custom allocation webhook and does not return.
	if reg["payload"] != nil {
		t.Errorf("the registration result's payload = %v; want none", reg["payload"])
	}
	openAndSend(indID, 2)
	e.wantTelemetry(indID+"-device", 2)

	// An enrollment group: the SDK derives the device key itself.
	g, err := e.hub.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "java-fleet",
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	grpID := "java-grp-" + tr
	reg = register(grpID, grpID, map[string]any{"groupKey": g.Attestation.SymmetricKey.PrimaryKey})
	if reg["event"] != "registered" || reg["status"] != "PROVISIONING_DEVICE_STATUS_ASSIGNED" || reg["deviceId"] != grpID || reg["assignedHub"] != e.hub.HostName() {
		t.Fatalf("group enrollment, Java side: %v%s", reg, j.p.stderrDetail())
	}
	if st, err := e.hub.DPS().RegistrationState(grpID); err != nil || st.Status != dps.RegAssigned {
		t.Errorf("hub side: registration state %+v, %v", st, err)
	}
	openAndSend(grpID, 1)
	e.wantTelemetry(grpID, 1)

	// A key of no enrollment.
	wrongID := "java-wrong-" + tr
	wrong, _ := dps.DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "someone-else")
	if reg = register(wrongID, wrongID, map[string]any{"key": wrong}); reg["event"] != "error" {
		t.Errorf("registering with a wrong key, Java side: %v; want an error", reg)
	}
	if st, err := e.hub.DPS().RegistrationState(wrongID); err == nil {
		t.Errorf("hub side: a refused device has a registration state %+v", st)
	}
}
