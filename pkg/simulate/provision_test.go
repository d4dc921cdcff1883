package simulate

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// runProvisioned runs a fleet of ids that onboards through h's DPS with
// p and returns its stats, error and the devices of its provisioned
// events.
func runProvisioned(t *testing.T, h *hub.Hub, ids []string, p *Provisioning, issuer *tls.Certificate) (Stats, map[string]string, error) {
	t.Helper()
	p.Host, p.IDScope = h.Addrs()[0], h.DPS().IDScope()
	var mu sync.Mutex
	assigned := map[string]string{}
	f, err := New(&Options{Device: device.Options{CAFile: h.CAFile()}, DeviceIDs: ids, Provision: p, Issuer: issuer,
		Count: 2, Interval: time.Millisecond, Sink: func(e Event) {
			if e.Type == EventProvisioned {
				mu.Lock()
				assigned[e.DeviceID] = e.AssignedHub
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
	defer cancel()
	st, err := f.Run(ctx)
	return st, assigned, err
}

func TestFleetProvisionedThroughASymmetricKeyGroup(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	g, err := h.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := FleetIDs("dps-", 3)
	st, assigned, err := runProvisioned(t, h, ids, &Provisioning{GroupKey: g.Attestation.SymmetricKey.PrimaryKey}, nil)
	if err != nil || st.Provisioned != 3 || st.Acked != 6 || st.Errors != 0 {
		t.Fatalf("Run = %+v, %v; want 3 provisioned, 6 messages acknowledged, no errors", st, err)
	}
	for _, id := range ids {
		if assigned[id] != h.HostName() {
			t.Errorf("%s: provisioned event names hub %q; want %q", id, assigned[id], h.HostName())
		}
		if evs := logOf(h, id); len(evs) != 2 {
			t.Errorf("%s: %d events in the hub's log; want 2", id, len(evs))
		}
		if s, err := h.DPS().RegistrationState(id); err != nil || s.Status != dps.RegAssigned {
			t.Errorf("%s: registration state %+v, %v; want assigned", id, s, err)
		}
	}

	// A key of no group: every registration is refused, and Run says so.
	st, _, err = runProvisioned(t, h, FleetIDs("other-", 2), &Provisioning{GroupKey: "b3RoZXItZ3JvdXAta2V5LTAxMjM0NTY3ODlhYmNkZWY="}, nil)
	var pe *provisioning.Error
	if !errors.As(err, &pe) || !pe.Refused() || st.Provisioned != 0 || st.Errors != 2 {
		t.Errorf("Run with a wrong group key = %+v, %v; want the refusal, 2 errors", st, err)
	}
}

func TestFleetProvisionedThroughAnX509Group(t *testing.T) {
	t.Parallel()
	now := time.Now()
	caPEM, caKeyPEM, err := devicecert.NewCA("fleet CA", now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := tls.X509KeyPair(caPEM, caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t)
	if _, err := h.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "cams", Attestation: &dps.Attestation{Type: dps.AttestationX509,
		X509: &dps.X509Attestation{SigningCertificates: &dps.X509Certificates{Primary: &dps.X509CertificateWithInfo{Certificate: string(caPEM)}}}}}, ""); err != nil {
		t.Fatal(err)
	}
	ids := FleetIDs("cam-", 2)
	st, _, err := runProvisioned(t, h, ids, &Provisioning{}, &issuer)
	if err != nil || st.Provisioned != 2 || st.Acked != 4 || st.Errors != 0 {
		t.Fatalf("Run = %+v, %v; want 2 provisioned, 4 messages acknowledged", st, err)
	}
	for _, id := range ids {
		if evs := logOf(h, id); len(evs) != 2 || evs[0].AuthMethod != "x509" {
			t.Errorf("%s: %d events (%v); want 2 over x509", id, len(evs), evs)
		}
	}
}

func TestProvisioningOptionsAreChecked(t *testing.T) {
	for _, p := range []*Provisioning{
		{GroupKey: "a2V5"},                      // no ID scope
		{IDScope: "0ne00000001"},                // neither key nor issuer
		{IDScope: "0ne00000001", GroupKey: "*"}, // not base64
	} {
		if _, err := New(&Options{DeviceIDs: []string{"a"}, Provision: p}); err == nil {
			t.Errorf("New with Provision %+v = nil error", p)
		}
	}
}

// Registrations do not wait for a connecting worker: with one device
// connecting at a time, several devices still register with DPS at
// once (each registration mostly waits for DPS's retry-after). Each
// Register call here returns only once all of the fleet's registrations
// are in progress together, which cannot happen if they take turns.
func TestFleetRegistersAheadOfConnecting(t *testing.T) {
	t.Parallel()
	h := newHub(t)
	g, err := h.DPS().PutGroup(&dps.EnrollmentGroup{EnrollmentGroupID: "fleet", Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ids := FleetIDs("ahead-", 4)
	var mu sync.Mutex
	registering := 0
	all := make(chan struct{})
	p := &Provisioning{Host: h.Addrs()[0], IDScope: h.DPS().IDScope(), GroupKey: g.Attestation.SymmetricKey.PrimaryKey,
		Register: func(ctx context.Context, o *provisioning.Options) (*provisioning.Result, error) {
			mu.Lock()
			if registering++; registering == len(ids) {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return provisioning.Register(ctx, o)
		}}
	f, err := New(&Options{Device: device.Options{CAFile: h.CAFile()}, DeviceIDs: ids, Provision: p, MaxConnecting: 1,
		Count: 1, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	st, err := f.Run(ctx)
	if err != nil || st.Provisioned != int64(len(ids)) || st.Acked != int64(len(ids)) {
		t.Fatalf("Run = %+v, %v; want %d devices registered together, then connected one at a time, each sending one message", st, err, len(ids))
	}
}
