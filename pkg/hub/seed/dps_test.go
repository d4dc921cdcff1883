package seed

import (
	"errors"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

const dpsSeed = `
enrollments:
  - registrationId: dev-1
    deviceId: device-one
    attestation:
      type: symmetricKey
      symmetricKey: {primaryKey: ZGV2LTEtcHJpbWFyeS1rZXktMDEyMzQ1Njc4OWFi, secondaryKey: ZGV2LTEtc2Vjb25kYXJ5LWtleS0wMTIzNDU2Nzg5}
    initialTwin:
      tags: {site: lab}
      properties: {desired: {interval: 5}}
    capabilities: {iotEdge: true}
enrollmentGroups:
  - enrollmentGroupId: fleet
    attestation: {type: symmetricKey}
    provisioningStatus: disabled
    reprovisionPolicy: {updateHubAssignment: true, migrateDeviceData: false}
`

func openDPS(t *testing.T) *dps.Service {
	t.Helper()
	st, err := registry.OpenMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := dps.New(&dps.Options{Registry: st, HubHostName: "hub.test"})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func TestApplyDPSIsIdempotentAndKeepsGeneratedKeys(t *testing.T) {
	s, err := Parse([]byte(dpsSeed))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	svc := openDPS(t)
	res := &Result{}
	if err := s.ApplyDPS(svc, res); err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 2 {
		t.Fatalf("first ApplyDPS created %v; want the enrollment and the group", res.Created)
	}
	e, err := svc.Enrollment("dev-1")
	if err != nil || e.DeviceID != "device-one" || e.Capabilities == nil || !e.Capabilities.IotEdge ||
		e.Attestation.SymmetricKey.PrimaryKey != "ZGV2LTEtcHJpbWFyeS1rZXktMDEyMzQ1Njc4OWFi" || !strings.Contains(string(e.InitialTwin.Tags), "lab") {
		t.Fatalf("enrollment dev-1 = %+v, %v; want the file's", e, err)
	}
	g, _ := svc.Group("fleet")
	if g.ProvisioningStatus != dps.StatusDisabled || g.Attestation.SymmetricKey.PrimaryKey == "" || g.ReprovisionPolicy.MigrateDeviceData {
		t.Fatalf("group fleet = %+v; want disabled, reset on reprovisioning, with generated keys", g)
	}

	// Again: nothing changes, the generated keys and the etags stay.
	res = &Result{}
	if err := s.ApplyDPS(svc, res); err != nil {
		t.Fatal(err)
	}
	g2, _ := svc.Group("fleet")
	if len(res.Unchanged) != 2 || len(res.Created)+len(res.Updated) != 0 || g2.Etag != g.Etag ||
		g2.Attestation.SymmetricKey.PrimaryKey != g.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("second ApplyDPS = %+v (etag %s → %s); want nothing changed", res, g.Etag, g2.Etag)
	}

	// A changed file updates what differs.
	s.EnrollmentGroups[0].ProvisioningStatus = dps.StatusEnabled
	res = &Result{}
	if err := s.ApplyDPS(svc, res); err != nil {
		t.Fatal(err)
	}
	g3, _ := svc.Group("fleet")
	if len(res.Updated) != 1 || g3.ProvisioningStatus != dps.StatusEnabled || g3.Attestation.SymmetricKey.PrimaryKey != g.Attestation.SymmetricKey.PrimaryKey {
		t.Errorf("ApplyDPS after a change = %+v, group %+v; want fleet updated, keys kept", res, g3)
	}
}

func TestDPSSeedErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
		line             int
	}{
		{"unknown field", "enrollments:\n  - registrationId: a\n    colour: red\n", "colour", 2},
		{"no id", "enrollmentGroups:\n  - attestation: {type: symmetricKey}\n", "enrollmentGroupId", 2},
		{"bad id", "enrollments:\n  - registrationId: a/b\n    attestation: {type: symmetricKey}\n", "registration id", 2},
		{"twice", "enrollments:\n  - registrationId: a\n  - registrationId: A\n", "declared twice", 3},
		{"unknown allocation policy", "enrollments:\n  - registrationId: a\n    attestation: {type: symmetricKey}\n    allocationPolicy: roundRobin\n", "roundRobin", 2},
		{"key not base64", "enrollmentGroups:\n  - enrollmentGroupId: g\n    attestation: {type: symmetricKey, symmetricKey: {primaryKey: 'not*base64'}}\n", "base64", 2},
		{"tpm", "enrollments:\n  - registrationId: a\n    attestation: {type: tpm, tpm: {endorsementKey: x}}\n", "TPM", 2},
	} {
		s, err := Parse([]byte(c.yaml))
		if err == nil {
			err = s.Check()
		}
		var se *Error
		if !errors.As(err, &se) || se.Line != c.line || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%s: %v; want an *Error at line %d naming %q", c.name, err, c.line, c.want)
		}
	}
}
