package dps

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

const hubHost = "myhub.local:8443"

var t0 = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

func newTestService(t *testing.T) (*Service, *registry.Store) {
	t.Helper()
	reg, err := registry.OpenMemory(&registry.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	s, err := New(&Options{Registry: reg, HubHostName: hubHost, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

// deviceToken signs a registration token as the device SDKs do.
func deviceToken(t *testing.T, scope, regID, key string, expiry time.Time) string {
	t.Helper()
	k, err := sas.DecodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := sas.Sign(RegistrationResource(scope, regID), k, &sas.SignOptions{KeyName: DeviceKeyName, Expiry: expiry})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode()
}

// registerOK registers and polls once, as the SDKs do, and wants assigned.
func registerOK(t *testing.T, s *Service, regID string, cred Credentials, payload string) *RegistrationState {
	t.Helper()
	op, err := s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: regID, Payload: json.RawMessage(payload), Credentials: cred})
	if err != nil {
		t.Fatalf("Register(%s) = %v", regID, err)
	}
	if op.Status != RegAssigning || op.OperationID == "" {
		t.Fatalf("Register(%s) = %+v; want status assigning with an operation id", regID, op)
	}
	res, err := s.Operation(s.IDScope(), regID, op.OperationID, &cred)
	if err != nil {
		t.Fatalf("Operation(%s) = %v", regID, err)
	}
	if res.Status != RegAssigned || res.RegistrationState == nil {
		t.Fatalf("Operation(%s) = %+v; want assigned", regID, res)
	}
	return res.RegistrationState
}

func wantCode(t *testing.T, what string, err error, want *Error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != want.Code {
		t.Fatalf("%s: error %v; want code %d", what, err, want.Code)
	}
}

func TestIDScopeIsMadeOnceAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	open := func() (*Service, *registry.Store) {
		reg, err := registry.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(&Options{Registry: reg, HubHostName: hubHost})
		if err != nil {
			t.Fatal(err)
		}
		return s, reg
	}
	s, reg := open()
	scope := s.IDScope()
	if !regexp.MustCompile(`^0ne[0-9A-F]{8}$`).MatchString(scope) {
		t.Errorf("IDScope() = %q; want 0ne and 8 upper-case hex digits", scope)
	}
	p1, err := s.Policy(OwnerPolicy)
	if err != nil || !p1.Rights.Has(AllRights) {
		t.Fatalf("Policy(%s) = %v, %v; want every right", OwnerPolicy, p1, err)
	}
	reg.Close()
	s, reg = open()
	defer reg.Close()
	if s.IDScope() != scope {
		t.Errorf("after a restart IDScope() = %q; want %q", s.IDScope(), scope)
	}
	if p2, _ := s.Policy(OwnerPolicy); p2 == nil || p2.PrimaryKey != p1.PrimaryKey {
		t.Error("after a restart the provisioningserviceowner key changed")
	}
}

func TestDeriveKeyMatchesAzureDocsSample(t *testing.T) {
	// The sample group key and derived key of Azure's docs
	// (articles/iot-dps/iot-dps-https-sym-key-support.md).
	got, err := DeriveKey("G3vn0IZH9oK3d4wsxFpWBtd2KUrtjI+39dZVRf26To8w9OX0LaFV9yZ93ELXY7voqHEUsNhnb9bt717UP87KxA==", "my-symkey-device")
	if err != nil || got != "Q+erii/qT0ty8UwJPpnDYucSU2Np3B1053zvwW2S+ns=" {
		t.Errorf("DeriveKey(docs sample) = %q, %v; want Q+erii/qT0ty8UwJPpnDYucSU2Np3B1053zvwW2S+ns=", got, err)
	}
	if _, err := DeriveKey("not base64!", "dev"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("DeriveKey(bad key) = %v; want ErrBadRequest", err)
	}
}

func TestIndividualSymmetricKeyAssignsTheDevice(t *testing.T) {
	s, reg := newTestService(t)
	e, err := s.PutEnrollment(&IndividualEnrollment{
		RegistrationID: "Sensor-1", DeviceID: "sensor-device-1",
		Attestation:  &Attestation{Type: AttestationSymmetricKey},
		InitialTwin:  &InitialTwin{Tags: json.RawMessage(`{"site":"lab"}`), Properties: &InitialTwinProperties{Desired: json.RawMessage(`{"interval":5}`)}},
		Capabilities: &iothub.Capabilities{IotEdge: true},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	key := e.Attestation.SymmetricKey.PrimaryKey
	if e.Etag == "" || e.ProvisioningStatus != StatusEnabled || e.Attestation.SymmetricKey.SecondaryKey == "" || e.ReprovisionPolicy == nil {
		t.Fatalf("PutEnrollment = %+v; want generated keys, an etag, enabled and a reprovision policy", e)
	}
	// Registration ids are case-insensitive.
	cred := Credentials{Token: deviceToken(t, s.IDScope(), "sensor-1", key, t0.Add(time.Hour))}
	st := registerOK(t, s, "sensor-1", cred, `{"model":"x1"}`)
	if st.AssignedHub != hubHost || st.DeviceID != "sensor-device-1" || st.Substatus != SubInitialAssignment ||
		st.Etag == "" || st.CreatedDateTimeUTC == "" || st.LastUpdatedDateTimeUTC == "" || string(st.Payload) != `{"model":"x1"}` {
		t.Errorf("registration state = %+v", st)
	}
	d, err := reg.Device("sensor-device-1")
	if err != nil {
		t.Fatal(err)
	}
	if k := d.Authentication.Keys(); k == nil || k.PrimaryKey != key || !d.Capabilities.IotEdge {
		t.Errorf("hub device = %+v; want the enrollment's keys and Edge", d)
	}
	tw, _ := reg.Twin("sensor-device-1", "")
	var tags map[string]any
	var desired map[string]any
	json.Unmarshal(tw.Tags, &tags)
	json.Unmarshal(tw.Properties.Desired, &desired)
	if tags["site"] != "lab" || desired["interval"] != float64(5) {
		t.Errorf("twin tags %s desired %s; want the initial twin", tw.Tags, tw.Properties.Desired)
	}
	got, err := s.Enrollment("SENSOR-1")
	if err != nil || got.RegistrationState == nil || got.RegistrationState.DeviceID != "sensor-device-1" {
		t.Errorf("Enrollment after registering = %+v, %v; want its registration state", got, err)
	}
}

func TestGroupSymmetricKeyDerivesTheDeviceKey(t *testing.T) {
	s, reg := newTestService(t)
	g, err := s.PutGroup(&EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &Attestation{Type: AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := DeriveKey(g.Attestation.SymmetricKey.SecondaryKey, "dev-7")
	st := registerOK(t, s, "dev-7", Credentials{Token: deviceToken(t, s.IDScope(), "dev-7", dk, t0.Add(time.Hour))}, "")
	if st.DeviceID != "dev-7" || st.SymmetricKey == nil || st.SymmetricKey.EnrollmentGroupID != "fleet" {
		t.Errorf("state = %+v; want device dev-7 from group fleet", st)
	}
	d, _ := reg.Device("dev-7")
	primary, _ := DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "dev-7")
	if k := d.Authentication.Keys(); k == nil || k.PrimaryKey != primary || k.SecondaryKey != dk {
		t.Errorf("the hub device's keys are not the derived ones")
	}
	regs, err := s.QueryGroupRegistrations("fleet", "", 0)
	if err != nil || len(regs.Items) != 1 || regs.Items[0].RegistrationID != "dev-7" {
		t.Errorf("QueryGroupRegistrations = %+v, %v", regs, err)
	}

	other, _ := DeriveKey(registry.NewKey(), "dev-8")
	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "dev-8",
		Credentials: Credentials{Token: deviceToken(t, s.IDScope(), "dev-8", other, t0.Add(time.Hour))}})
	wantCode(t, "a key of no group", err, ErrUnauthorized)

	// A token for another registration id is refused.
	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "dev-9",
		Credentials: Credentials{Token: deviceToken(t, s.IDScope(), "dev-7", dk, t0.Add(time.Hour))}})
	wantCode(t, "a token for another id", err, ErrUnauthorized)

	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "dev-7",
		Credentials: Credentials{Token: deviceToken(t, s.IDScope(), "dev-7", dk, t0.Add(-time.Minute))}})
	wantCode(t, "an expired token", err, ErrUnauthorized)

	_, err = s.Register(&RegisterRequest{IDScope: "0ne00000000", RegistrationID: "dev-7",
		Credentials: Credentials{Token: deviceToken(t, "0ne00000000", "dev-7", dk, t0.Add(time.Hour))}})
	wantCode(t, "another ID scope", err, ErrUnauthorized)
}

func TestUnknownRegistrationIsNotFound(t *testing.T) {
	s, _ := newTestService(t)
	_, err := s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "ghost",
		Credentials: Credentials{Token: deviceToken(t, s.IDScope(), "ghost", registry.NewKey(), t0.Add(time.Hour))}})
	wantCode(t, "no enrollment at all", err, ErrRegistrationNotFound)
}

func TestDisabledEnrollmentsAreRefused(t *testing.T) {
	s, _ := newTestService(t)
	g, _ := s.PutGroup(&EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &Attestation{Type: AttestationSymmetricKey}}, "")
	// A disabled individual enrollment blocks one device of an enabled
	// group (Azure docs, articles/iot-dps/how-to-revoke-device-access-portal.md).
	if _, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "stolen", ProvisioningStatus: "disabled",
		Attestation: &Attestation{Type: AttestationSymmetricKey}}, ""); err != nil {
		t.Fatal(err)
	}
	dk, _ := DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "stolen")
	_, err := s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "stolen",
		Credentials: Credentials{Token: deviceToken(t, s.IDScope(), "stolen", dk, t0.Add(time.Hour))}})
	wantCode(t, "group device with a disabled individual enrollment", err, ErrUnauthorized)

	g.ProvisioningStatus = StatusDisabled
	if _, err := s.PutGroup(g, g.Etag); err != nil {
		t.Fatal(err)
	}
	dk, _ = DeriveKey(g.Attestation.SymmetricKey.PrimaryKey, "dev-1")
	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "dev-1",
		Credentials: Credentials{Token: deviceToken(t, s.IDScope(), "dev-1", dk, t0.Add(time.Hour))}})
	wantCode(t, "device of a disabled group", err, ErrUnauthorized)
}

func TestReprovisionPolicies(t *testing.T) {
	s, reg := newTestService(t)
	twin := &InitialTwin{Properties: &InitialTwinProperties{Desired: json.RawMessage(`{"mode":"initial"}`)}}
	for _, tc := range []struct {
		policy ReprovisionPolicy
		sub    string
		mode   string
	}{
		{ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}, SubDeviceDataMigrated, "changed"},
		{ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: false}, SubDeviceDataReset, "initial"},
		{ReprovisionPolicy{UpdateHubAssignment: false}, SubInitialAssignment, "changed"},
	} {
		id := "dev-" + tc.sub
		p := tc.policy
		e, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: id, Attestation: &Attestation{Type: AttestationSymmetricKey},
			InitialTwin: twin, ReprovisionPolicy: &p}, "")
		if err != nil {
			t.Fatal(err)
		}
		cred := Credentials{Token: deviceToken(t, s.IDScope(), id, e.Attestation.SymmetricKey.PrimaryKey, t0.Add(time.Hour))}
		first := registerOK(t, s, id, cred, "")
		if _, _, err := reg.PatchTwin(id, "", &iothub.TwinUpdate{Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"mode":"changed"}`)}}, "*"); err != nil {
			t.Fatal(err)
		}
		again := registerOK(t, s, id, cred, "")
		if again.Substatus != tc.sub || again.CreatedDateTimeUTC != first.CreatedDateTimeUTC || again.Etag == first.Etag {
			t.Errorf("%+v: second registration = %+v; want substatus %s, the first creation time and a new etag", tc.policy, again, tc.sub)
		}
		tw, _ := reg.Twin(id, "")
		var desired map[string]any
		json.Unmarshal(tw.Properties.Desired, &desired)
		if desired["mode"] != tc.mode {
			t.Errorf("%+v: desired mode after re-registering = %v; want %s", tc.policy, desired["mode"], tc.mode)
		}
	}
}

func TestX509Attestation(t *testing.T) {
	s, reg := newTestService(t)
	now := t0
	selfPEM, _, err := devicecert.New("cam-1", now.Add(-time.Hour), now.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := ParseCertificate(string(selfPEM))
	if _, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "cam-1", Attestation: &Attestation{Type: AttestationX509,
		X509: &X509Attestation{ClientCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: string(selfPEM)}}}}}, ""); err != nil {
		t.Fatal(err)
	}
	st := registerOK(t, s, "cam-1", Credentials{Certificates: []*x509.Certificate{self}}, "")
	if st.X509 == nil || st.X509.CertificateInfo == nil {
		t.Errorf("state = %+v; want its certificate info", st)
	}
	d, _ := reg.Device("cam-1")
	s1, _ := devicecert.Thumbprints(self)
	if d.Authentication.Type != iothub.AuthSelfSigned || *d.Authentication.X509Thumbprint.PrimaryThumbprint != s1 {
		t.Errorf("hub device auth = %+v; want selfSigned with the certificate's thumbprint", d.Authentication)
	}
	otherPEM, _, _ := devicecert.New("cam-1", now.Add(-time.Hour), now.Add(time.Hour), nil)
	other, _ := ParseCertificate(string(otherPEM))
	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "cam-1", Credentials: Credentials{Certificates: []*x509.Certificate{other}}})
	wantCode(t, "another certificate with the same CN", err, ErrUnauthorized)

	caPEM, caKey, _ := devicecert.NewCA("fleet CA", now.Add(-time.Hour), now.Add(24*time.Hour))
	ca, _ := tls.X509KeyPair(caPEM, caKey)
	if _, err := s.PutGroup(&EnrollmentGroup{EnrollmentGroupID: "cams", Attestation: &Attestation{Type: AttestationX509,
		X509: &X509Attestation{SigningCertificates: &X509Certificates{Primary: &X509CertificateWithInfo{Certificate: string(caPEM)}}}}}, ""); err != nil {
		t.Fatal(err)
	}
	leaf, _ := devicecert.Issue("cam-2", now.Add(-time.Hour), now.Add(time.Hour), &ca)
	st = registerOK(t, s, "cam-2", Credentials{Certificates: []*x509.Certificate{leaf.Leaf}}, "")
	if st.X509 == nil || st.X509.EnrollmentGroupID != "cams" {
		t.Errorf("state = %+v; want group cams", st)
	}
	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "cam-3", Credentials: Credentials{Certificates: []*x509.Certificate{leaf.Leaf}}})
	wantCode(t, "a CN that is not the registration id", err, ErrUnauthorized)
	stranger, _ := ParseCertificate(string(otherPEM))
	_, err = s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "cam-1x", Credentials: Credentials{Certificates: []*x509.Certificate{stranger}}})
	wantCode(t, "a CN that is not the registration id (self-signed)", err, ErrUnauthorized)
}

func TestBadInputIsRefusedWithItsReason(t *testing.T) {
	s, _ := newTestService(t)
	sym := func() *Attestation { return &Attestation{Type: AttestationSymmetricKey} }
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"forbidden character", func() error {
			_, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "a/b", Attestation: sym()}, "")
			return err
		}()},
		{"bad last character", func() error {
			_, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "dev.", Attestation: sym()}, "")
			return err
		}()},
		{"group key not base64", func() error {
			_, err := s.PutGroup(&EnrollmentGroup{EnrollmentGroupID: "g", Attestation: &Attestation{Type: AttestationSymmetricKey,
				SymmetricKey: &SymmetricKeyAttestation{PrimaryKey: "not*base64"}}}, "")
			return err
		}()},
		{"unknown allocation policy", func() error {
			_, err := s.PutGroup(&EnrollmentGroup{EnrollmentGroupID: "g", AllocationPolicy: "roundRobin", Attestation: sym()}, "")
			return err
		}()},
		{"TPM enrollment", func() error {
			_, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "t", Attestation: &Attestation{Type: AttestationTPM, TPM: &TPMAttestation{EndorsementKey: "AA=="}}}, "")
			return err
		}()},
		{"TPM registration", func() error {
			_, err := s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "t", Credentials: Credentials{TPM: true}})
			return err
		}()},
		{"registration id with a forbidden character", func() error {
			_, err := s.Register(&RegisterRequest{IDScope: s.IDScope(), RegistrationID: "a b", Credentials: Credentials{Token: "x"}})
			return err
		}()},
	} {
		if !errors.Is(tc.err, ErrBadRequest) {
			t.Errorf("%s: %v; want ErrBadRequest", tc.name, tc.err)
		}
	}
}

func TestEnrollmentEtagsQueryAndDelete(t *testing.T) {
	s, _ := newTestService(t)
	e, _ := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "a", Attestation: &Attestation{Type: AttestationSymmetricKey}}, "")
	if _, err := s.PutEnrollment(e, `"stale"`); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("update with a stale etag = %v; want ErrPreconditionFailed", err)
	}
	e2, err := s.PutEnrollment(e, `"`+e.Etag+`"`)
	if err != nil || e2.Etag == e.Etag || e2.CreatedDateTimeUTC != e.CreatedDateTimeUTC {
		t.Errorf("update with the etag = %+v, %v; want a new etag and the same creation time", e2, err)
	}
	for _, id := range []string{"b", "c"} {
		s.PutEnrollment(&IndividualEnrollment{RegistrationID: id, Attestation: &Attestation{Type: AttestationSymmetricKey}}, "")
	}
	p, err := s.QueryEnrollments("*", "", 2)
	if err != nil || len(p.Items) != 2 || p.Continuation == "" {
		t.Fatalf("first page = %+v, %v; want 2 items and a continuation", p, err)
	}
	p2, err := s.QueryEnrollments("*", p.Continuation, 2)
	if err != nil || len(p2.Items) != 1 || p2.Items[0].RegistrationID != "c" || p2.Continuation != "" {
		t.Errorf("second page = %+v, %v; want c alone", p2, err)
	}
	if _, err := s.QueryEnrollments("SELECT * FROM enrollments WHERE x = 1", "", 0); !errors.Is(err, ErrBadRequest) {
		t.Errorf("an unsupported query = %v; want ErrBadRequest", err)
	}
	if err := s.DeleteEnrollment("A", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrollment("a"); !errors.Is(err, ErrEnrollmentNotFound) {
		t.Errorf("Enrollment after delete = %v; want ErrEnrollmentNotFound", err)
	}
	if err := s.DeleteGroup("nope", ""); !errors.Is(err, ErrGroupNotFound) {
		t.Errorf("DeleteGroup(unknown) = %v; want ErrGroupNotFound", err)
	}
}

// A registration state returns the device's custom payload only when it
// is a JSON object: provisioning-device-client for Java sends a JSON
// string and cannot read one back.
func TestRegistrationStateEchoesOnlyAnObjectPayload(t *testing.T) {
	s, _ := newTestService(t)
	for _, tc := range []struct{ payload, want string }{
		{`{"model":"x1"}`, `{"model":"x1"}`},
		{` {"model":"x1"}`, `{"model":"x1"}`},
		{`"{\"model\":\"java\"}"`, ""},
		{`[1,2]`, ""},
		{`7`, ""},
		{``, ""},
	} {
		e, err := s.PutEnrollment(&IndividualEnrollment{RegistrationID: "dev-1", Attestation: &Attestation{Type: AttestationSymmetricKey}}, "")
		if err != nil {
			t.Fatal(err)
		}
		cred := Credentials{Token: deviceToken(t, s.IDScope(), "dev-1", e.Attestation.SymmetricKey.PrimaryKey, t0.Add(time.Hour))}
		if st := registerOK(t, s, "dev-1", cred, tc.payload); string(st.Payload) != tc.want {
			t.Errorf("registering with payload %s: registrationState.payload = %s; want %q", tc.payload, st.Payload, tc.want)
		}
	}
}
