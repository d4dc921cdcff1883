package seed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// Enrollment is an individual enrollment of the seed, with the fields
// of the DPS service API (registrationId, deviceId, attestation,
// initialTwin, provisioningStatus, reprovisionPolicy, capabilities,
// allocationPolicy), as `az iot dps enrollment show` prints them.
type Enrollment struct {
	dps.IndividualEnrollment
	Line int
}

// EnrollmentGroup is an enrollment group of the seed (enrollmentGroupId
// and the same fields but deviceId).
type EnrollmentGroup struct {
	dps.EnrollmentGroup
	Line int
}

// decodeAPI decodes the item at n into v with the JSON field names of
// the service API, refusing unknown fields.
func decodeAPI(n *yaml.Node, what string, v any) error {
	var raw any
	if err := n.Decode(&raw); err != nil {
		return errAt(n, "%s: %v", what, err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return errAt(n, "%s: %v", what, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errAt(n, "%s has a field DPS does not know, or one of the wrong kind: %v", what, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func (s *Seed) addEnrollment(n *yaml.Node) error {
	e := Enrollment{Line: n.Line}
	if err := decodeAPI(n, "an enrollment", &e.IndividualEnrollment); err != nil {
		return err
	}
	if e.RegistrationID == "" {
		return errAt(n, "an enrollment needs a registrationId")
	}
	if err := dps.ValidateID("registration id", e.RegistrationID); err != nil {
		return errAt(n, "%s", strings.TrimPrefix(err.Error(), "dps: "))
	}
	for _, o := range s.Enrollments {
		if strings.EqualFold(o.RegistrationID, e.RegistrationID) {
			return errAt(n, "enrollment %q is declared twice (first at line %d; registration ids are case-insensitive)", e.RegistrationID, o.Line)
		}
	}
	s.Enrollments = append(s.Enrollments, e)
	return nil
}

func (s *Seed) addEnrollmentGroup(n *yaml.Node) error {
	g := EnrollmentGroup{Line: n.Line}
	if err := decodeAPI(n, "an enrollment group", &g.EnrollmentGroup); err != nil {
		return err
	}
	if g.EnrollmentGroupID == "" {
		return errAt(n, "an enrollment group needs an enrollmentGroupId")
	}
	if err := dps.ValidateID("enrollment group id", g.EnrollmentGroupID); err != nil {
		return errAt(n, "%s", strings.TrimPrefix(err.Error(), "dps: "))
	}
	for _, o := range s.EnrollmentGroups {
		if strings.EqualFold(o.EnrollmentGroupID, g.EnrollmentGroupID) {
			return errAt(n, "enrollment group %q is declared twice (first at line %d; ids are case-insensitive)", g.EnrollmentGroupID, o.Line)
		}
	}
	s.EnrollmentGroups = append(s.EnrollmentGroups, g)
	return nil
}

// ApplyDPS makes the Device Provisioning Service hold the seed's
// enrollments and groups: created, or replaced where they differ from
// the file; symmetric keys the file leaves empty are generated when the
// enrollment is made and kept afterwards. Applying a second time
// changes nothing (no etag moves). A value DPS refuses is an *Error
// naming the item's line. It adds to res.
func (s *Seed) ApplyDPS(svc *dps.Service, res *Result) error {
	for _, e := range s.Enrollments {
		name := "enrollment " + e.RegistrationID
		want := clone(&e.IndividualEnrollment)
		cur, err := svc.Enrollment(e.RegistrationID)
		if err != nil && !errors.Is(err, dps.ErrEnrollmentNotFound) {
			return s.fail(e.Line, name, err)
		}
		if cur != nil {
			keepKeys(want.Attestation, cur.Attestation)
			if same(want, cur) {
				res.Unchanged = append(res.Unchanged, name)
				continue
			}
		}
		if _, err := svc.PutEnrollment(want, "*"); err != nil {
			return s.fail(e.Line, name, err)
		}
		record(res, cur != nil, name)
	}
	for _, g := range s.EnrollmentGroups {
		name := "enrollment group " + g.EnrollmentGroupID
		want := clone(&g.EnrollmentGroup)
		cur, err := svc.Group(g.EnrollmentGroupID)
		if err != nil && !errors.Is(err, dps.ErrGroupNotFound) {
			return s.fail(g.Line, name, err)
		}
		if cur != nil {
			keepKeys(want.Attestation, cur.Attestation)
			if same(want, cur) {
				res.Unchanged = append(res.Unchanged, name)
				continue
			}
		}
		if _, err := svc.PutGroup(want, "*"); err != nil {
			return s.fail(g.Line, name, err)
		}
		record(res, cur != nil, name)
	}
	return nil
}

func record(res *Result, updated bool, name string) {
	if updated {
		res.Updated = append(res.Updated, name)
	} else {
		res.Created = append(res.Created, name)
	}
}

// checkDPS applies the enrollments to a DPS on an empty registry in
// memory, so that every value DPS would refuse is found first.
func (s *Seed) checkDPS() error {
	if len(s.Enrollments)+len(s.EnrollmentGroups) == 0 {
		return nil
	}
	st, err := registry.OpenMemory(nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer st.Close()
	svc, err := dps.New(&dps.Options{Registry: st, HubHostName: "seed.check"})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return s.ApplyDPS(svc, &Result{})
}

// clone deep-copies an enrollment or group (PutEnrollment and PutGroup
// fill in defaults in what they are given).
func clone[T any](v *T) *T {
	b, _ := json.Marshal(v)
	var out T
	_ = json.Unmarshal(b, &out)
	return &out
}

// keepKeys gives want the current symmetric keys where the file leaves
// them empty.
func keepKeys(want, cur *dps.Attestation) {
	if want == nil || cur == nil || want.SymmetricKey == nil && want.Type != dps.AttestationSymmetricKey || cur.SymmetricKey == nil {
		return
	}
	if want.SymmetricKey == nil {
		want.SymmetricKey = &dps.SymmetricKeyAttestation{}
	}
	if want.SymmetricKey.PrimaryKey == "" {
		want.SymmetricKey.PrimaryKey = cur.SymmetricKey.PrimaryKey
	}
	if want.SymmetricKey.SecondaryKey == "" {
		want.SymmetricKey.SecondaryKey = cur.SymmetricKey.SecondaryKey
	}
}

// same reports whether the file's enrollment (or group) want is what
// DPS holds in cur, leaving out what DPS keeps itself (etag, times,
// registration state, certificate info) and filling in its defaults.
func same(want, cur any) bool {
	return canonical(want) == canonical(cur)
}

func canonical(v any) string {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"etag", "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "registrationState"} {
		delete(m, k)
	}
	if m["provisioningStatus"] == nil || m["provisioningStatus"] == "" {
		m["provisioningStatus"] = dps.StatusEnabled
	}
	if m["reprovisionPolicy"] == nil {
		m["reprovisionPolicy"] = map[string]any{"updateHubAssignment": true, "migrateDeviceData": true}
	}
	if a, ok := m["attestation"].(map[string]any); ok {
		if x, ok := a["x509"].(map[string]any); ok {
			for _, set := range x {
				if certs, ok := set.(map[string]any); ok {
					for _, c := range certs {
						if cm, ok := c.(map[string]any); ok {
							delete(cm, "info")
						}
					}
				}
			}
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}
