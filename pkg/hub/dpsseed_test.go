package hub

import (
	"context"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/hub/seed"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// A seed's enrollment group is in the hub's DPS from the start, a
// member registers with the key derived from the file's group key, and
// a restart leaves the group as it was.
func TestSeedEnrollmentGroupAtStart(t *testing.T) {
	const groupKey = "ZmxlZXQtZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="
	s, err := seed.Parse([]byte(`
enrollmentGroups:
  - enrollmentGroupId: fleet
    attestation:
      type: symmetricKey
      symmetricKey: {primaryKey: ` + groupKey + `, secondaryKey: ` + groupKey + `}
    initialTwin: {tags: {fleet: seeded}}
`))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h := startSeeded(t, dir, s)
	g, err := h.DPS().Group("fleet")
	if err != nil {
		t.Fatalf("the seeded group is not in DPS: %v", err)
	}
	key, _ := dps.DeriveKey(groupKey, "dev-7")
	o := registerOpts(t, h, "dev-7")
	o.SymmetricKey = key
	if res, err := provisioning.Register(context.Background(), o); err != nil || res.State.DeviceID != "dev-7" {
		t.Fatalf("a member of the seeded group cannot register: %+v, %v", res, err)
	}
	tw, err := h.reg.Twin("dev-7", "")
	if err != nil || string(tw.Tags) != `{"fleet":"seeded"}` {
		t.Errorf("the provisioned device's tags = %s, %v; want the seeded initial twin's", tw.Tags, err)
	}
	h.Close()

	h = startSeeded(t, dir, s)
	defer h.Close()
	g2, err := h.DPS().Group("fleet")
	if err != nil || g2.Etag != g.Etag {
		t.Errorf("after a restart the group's etag is %s (%v); want %s, unchanged", g2.Etag, err, g.Etag)
	}
	if st, err := h.DPS().RegistrationState("dev-7"); err != nil || st.Status != dps.RegAssigned {
		t.Errorf("the registration state did not survive the restart: %+v, %v", st, err)
	}
}
