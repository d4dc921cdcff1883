package simulate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// EventProvisioned is the type of the event of a fleet device that DPS
// assigned to a hub (AssignedHub, DeviceID).
const EventProvisioned = "provisioned"

// MaxRegistering bounds how many fleet devices register with DPS at
// once, each over its own TLS connection, so that a large fleet does
// not open them all together.
const MaxRegistering = 1000

// Provisioning makes a fleet onboard through the Device Provisioning
// Service, as a real fleet does: each device registers (its id is the
// registration id) and then connects to the hub, and as the device id,
// that DPS assigned it.
type Provisioning struct {
	// Host is the DPS device endpoint, host[:port].
	// Default: provisioning.GlobalHost.
	Host string
	// IDScope is the DPS instance's ID scope. Required.
	IDScope string
	// GroupKey is a symmetric-key enrollment group's key (base64): each
	// device's key is derived from it (dps.DeriveKey). Without it the
	// fleet's Options.Issuer signs each device's certificate (CN = its
	// id) for an X.509 enrollment group of that CA.
	GroupKey string
	// RootCAs verify DPS. Default: the fleet's Device.RootCAs (its CA
	// file), else the system's.
	RootCAs *x509.CertPool
	// Register registers one device. Default: provisioning.Register.
	Register func(ctx context.Context, o *provisioning.Options) (*provisioning.Result, error)
}

// check validates p for a fleet with or without an issuer.
func (p *Provisioning) check(hasIssuer bool) error {
	if p.IDScope == "" {
		return errors.New("simulate: provisioning needs the DPS ID scope")
	}
	if (p.GroupKey == "") == !hasIssuer {
		return errors.New("simulate: provisioning needs either a group key or an Issuer (X.509), not both")
	}
	if p.GroupKey != "" {
		if _, err := dps.DeriveKey(p.GroupKey, "x"); err != nil {
			return fmt.Errorf("simulate: the group key is not base64: %w", err)
		}
	}
	return nil
}

// provision registers fleet device id with DPS and fills o with the
// hub, device id and credentials of its assignment.
func (f *Fleet) provision(ctx context.Context, id string, o *device.Options) error {
	p := f.opts.Provision
	po := &provisioning.Options{Host: p.Host, IDScope: p.IDScope, RegistrationID: id, RootCAs: p.RootCAs}
	if po.RootCAs == nil {
		po.RootCAs = f.opts.Device.RootCAs
	}
	if p.GroupKey != "" {
		key, err := dps.DeriveKey(p.GroupKey, id)
		if err != nil {
			return err
		}
		po.SymmetricKey = key
	} else {
		cert, err := f.issueCert(id)
		if err != nil {
			return err
		}
		po.Certificate = cert
	}
	register := p.Register
	if register == nil {
		register = provisioning.Register
	}
	res, err := register(ctx, po)
	if err != nil {
		return fmt.Errorf("registering with DPS: %w", err)
	}
	f.provisioned.Add(1)
	f.emit(Event{Type: EventProvisioned, DeviceID: res.State.DeviceID, AssignedHub: res.State.AssignedHub})
	o.HostName, o.GatewayHostName, o.DeviceID = res.State.AssignedHub, "", res.State.DeviceID
	o.SharedAccessKey, o.Certificate = po.SymmetricKey, po.Certificate
	return nil
}
