package hub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

func dpsServiceClient(t *testing.T, h *Hub) *provisioning.Service {
	t.Helper()
	cs, err := h.DPSConnectionString()
	if err != nil {
		t.Fatal(err)
	}
	s, err := provisioning.NewService(cs, &provisioning.ServiceOptions{RootCAs: tlsFor(t, h).RootCAs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestProvisioningServiceClientManagesEnrollmentsGroupsAndRegistrations(t *testing.T) {
	h := startHub(t)
	s := dpsServiceClient(t, h)
	ctx := context.Background()

	e, err := s.PutEnrollment(ctx, &dps.IndividualEnrollment{RegistrationID: "dev-1", DeviceID: "device-one",
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey},
		InitialTwin: &dps.InitialTwin{Tags: json.RawMessage(`{"site":"lab"}`)}})
	if err != nil || e.Etag == "" || e.Attestation.SymmetricKey == nil || e.Attestation.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("PutEnrollment = %+v, %v; want it stored with generated keys", e, err)
	}
	// An update with a stale etag is refused with 412.
	stale := *e
	stale.Etag = "stale"
	_, err = s.PutEnrollment(ctx, &stale)
	var pe *provisioning.Error
	if !errors.As(err, &pe) || pe.HTTPStatus != http.StatusPreconditionFailed {
		t.Errorf("PutEnrollment with a stale etag = %v; want 412", err)
	}
	for i := range 150 {
		if _, err := s.PutGroup(ctx, &dps.EnrollmentGroup{EnrollmentGroupID: "g-" + strconv.Itoa(i),
			Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := s.Groups(ctx)
	if err != nil || len(groups) != 150 {
		t.Fatalf("Groups = %d groups, %v; want all 150 across pages", len(groups), err)
	}
	list, err := s.Enrollments(ctx)
	if err != nil || len(list) != 1 || list[0].DeviceID != "device-one" {
		t.Fatalf("Enrollments = %+v, %v", list, err)
	}

	o := registerOpts(t, h, "dev-1")
	o.SymmetricKey = e.Attestation.SymmetricKey.PrimaryKey
	if _, err := provisioning.Register(ctx, o); err != nil {
		t.Fatal(err)
	}
	st, err := s.RegistrationState(ctx, "dev-1")
	if err != nil || st.Status != dps.RegAssigned || st.DeviceID != "device-one" {
		t.Fatalf("RegistrationState = %+v, %v; want assigned as device-one", st, err)
	}
	if err := s.DeleteRegistrationState(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegistrationState(ctx, "dev-1"); !errors.As(err, &pe) || pe.HTTPStatus != http.StatusNotFound {
		t.Errorf("RegistrationState after delete = %v; want 404", err)
	}
	if err := s.DeleteEnrollment(ctx, "dev-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrollment(ctx, "dev-1"); !errors.As(err, &pe) || pe.HTTPStatus != http.StatusNotFound {
		t.Errorf("Enrollment after delete = %v; want 404", err)
	}
	if err := s.DeleteGroup(ctx, "g-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Group(ctx, "g-0"); !errors.As(err, &pe) || pe.HTTPStatus != http.StatusNotFound {
		t.Errorf("Group after delete = %v; want 404", err)
	}
}

func TestProvisioningServiceClientRefusesAConnectionStringWithoutAPolicy(t *testing.T) {
	_, err := provisioning.NewService("HostName=x.azure-devices-provisioning.net;DeviceId=d;SharedAccessKey=AAAA", nil)
	if !errors.Is(err, provisioning.ErrUsage) {
		t.Errorf("NewService(a device's string) = %v; want ErrUsage", err)
	}
}
