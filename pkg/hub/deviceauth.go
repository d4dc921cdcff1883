package hub

import (
	"errors"
	"fmt"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/sas"
)

// errUnauthorized is the condition of every refused device credential.
var errUnauthorized = errors.New("hub: unauthorized")

// identityAuth authenticates devices and modules with SAS tokens signed
// by their own keys or by a policy with DeviceConnect.
type identityAuth struct {
	reg   *registry.Store
	hosts []string
	now   func() time.Time
}

// Device checks token for deviceID (and moduleID). The reason in the
// error never contains the token or a key.
func (a *identityAuth) Device(token, deviceID, moduleID string) error {
	tok, err := sas.Parse(token)
	if err != nil {
		return fmt.Errorf("%w: %v", errUnauthorized, err)
	}
	var auth *registry.Authentication
	if moduleID != "" {
		m, err := a.reg.Module(deviceID, moduleID)
		if err != nil {
			return fmt.Errorf("%w: %v", errUnauthorized, err)
		}
		auth = m.Authentication
	}
	d, err := a.reg.Device(deviceID)
	if err != nil {
		return fmt.Errorf("%w: %v", errUnauthorized, err)
	}
	if !d.Enabled() {
		return fmt.Errorf("%w: device %s is disabled", errUnauthorized, deviceID)
	}
	if moduleID == "" {
		auth = d.Authentication
	}
	var keys []string
	if tok.KeyName != "" {
		p, err := a.reg.Policy(tok.KeyName)
		if err != nil {
			return fmt.Errorf("%w: %v", errUnauthorized, err)
		}
		if !p.Rights.Has(registry.DeviceConnect) {
			return fmt.Errorf("%w: policy %s has no DeviceConnect permission", errUnauthorized, p.KeyName)
		}
		keys = []string{p.PrimaryKey, p.SecondaryKey}
	} else if k := auth.Keys(); k != nil {
		keys = []string{k.PrimaryKey, k.SecondaryKey}
	} else {
		return fmt.Errorf("%w: %s authenticates with %s, not a key", errUnauthorized, clientKey(deviceID, moduleID), auth.Type)
	}
	verr := sas.ErrSignature
	for _, k := range keys {
		key, err := sas.DecodeKey(k)
		if err != nil {
			continue
		}
		if verr = sas.Verify(tok, key, a.now()); verr == nil || !errors.Is(verr, sas.ErrSignature) {
			break
		}
	}
	if verr != nil {
		return fmt.Errorf("%w: %v", errUnauthorized, verr)
	}
	resource := "/devices/" + deviceID
	if moduleID != "" {
		resource += "/modules/" + moduleID
	}
	for _, h := range a.hosts {
		if sas.Covers(tok.Scope(), h+resource) {
			return nil
		}
	}
	return fmt.Errorf("%w: token scope %q does not cover %s", errUnauthorized, tok.Scope(), clientKey(deviceID, moduleID))
}
