package device

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	hubdps "github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/provisioning"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// Configuration key of the DPS ID scope, which `hub serve` exports as
// IOTCTL_DPS_ID_SCOPE (the key `dps register --id-scope` reads too).
const keyDPSIDScope = "dps-id-scope"

// simulateDPSHelp is the part of `device simulate --help` about fleets
// that onboard through DPS.
const simulateDPSHelp = `A fleet can onboard through the Device Provisioning Service instead, as a real
fleet does: with --dps-group-key (a symmetric-key enrollment group's key; each
device's key is derived from it) or --dps-ca/--dps-ca-key (the CA of an X.509
enrollment group; each device gets a certificate it signs, CN = its id), each
device registers with DPS (registration id = its id) and then connects to the hub
and as the device DPS assigned it. The ID scope comes from --dps-id-scope or
IOTCTL_DPS_ID_SCOPE; --dps-host defaults to the local hub's host when --host,
--hub-connection-string or the device connection string names a local hub, else
to Azure's global endpoint. The
status line and the stats count the provisioned devices. A fleet whose every
registration DPS refuses (a wrong key, a disabled or missing enrollment, another
ID scope) exits 4.
`

// dpsFlags are the flags of a fleet that onboards through DPS.
type dpsFlags struct {
	groupKey, ca, caKey, host string
}

func (d *dpsFlags) add(fl *pflag.FlagSet) {
	fl.String(keyDPSIDScope, "", "fleet through DPS: the DPS ID scope (default: IOTCTL_DPS_ID_SCOPE, which hub serve exports)")
	fl.StringVar(&d.groupKey, "dps-group-key", "", "fleet through DPS: a symmetric-key enrollment group's key, from which each device's key is derived")
	fl.StringVar(&d.ca, "dps-ca", "", "fleet through DPS: the CA certificate (PEM) of an X.509 enrollment group, which signs each device's certificate")
	fl.StringVar(&d.caKey, "dps-ca-key", "", "private key (PEM) of --dps-ca (default: in the --dps-ca file)")
	fl.StringVar(&d.host, "dps-host", "", "fleet through DPS: the DPS device endpoint host[:port] (default: the local hub's host, or global.azure-devices-provisioning.net)")
}

// set reports whether the fleet onboards through DPS.
func (d *dpsFlags) set() bool { return d.groupKey != "" || d.ca != "" || d.caKey != "" }

// validateDPS fills s for a fleet that onboards through DPS.
func (o *simulateOptions) validateDPS(s *simulate.Options) error {
	d := &o.dps
	if !o.devicesSet {
		return cmdutil.Usagef("--dps-group-key and --dps-ca are for a fleet: give --devices N too")
	}
	switch {
	case d.groupKey != "" && d.ca != "":
		return cmdutil.Usagef("--dps-group-key and --dps-ca: a fleet registers with a group key or with a CA, not both")
	case d.caKey != "" && d.ca == "":
		return cmdutil.Usagef("--dps-ca-key needs --dps-ca")
	case o.keysFile != "" || o.deviceCA != "":
		return cmdutil.Usagef("a fleet through DPS gets its identities from DPS: --keys-file and --device-ca are for a fleet without it")
	case o.conn.certFile != "" || o.conn.deviceID != "":
		return cmdutil.Usagef("a fleet has its own identities: --cert and --device-id are for one device")
	}
	p := &simulate.Provisioning{Host: d.host, IDScope: o.f.V.GetString(keyDPSIDScope), GroupKey: d.groupKey}
	if p.IDScope == "" {
		return cmdutil.Usagef("no DPS ID scope: pass --dps-id-scope or set IOTCTL_DPS_ID_SCOPE (hub serve prints it)")
	}
	if p.GroupKey != "" {
		if _, err := hubdps.DeriveKey(p.GroupKey, "x"); err != nil {
			return cmdutil.Usagef("--dps-group-key is not base64: copy the enrollment group's primary or secondary key whole")
		}
	} else {
		issuer, err := loadIssuer("--dps-ca", d.ca, d.caKey)
		if err != nil {
			return err
		}
		s.Issuer = issuer
	}
	if err := o.conn.transport(o.f, &s.Device); err != nil {
		return err
	}
	if p.Host == "" {
		p.Host = o.defaultDPSHost()
	}
	if !o.connectRateSet && provisioning.IsAzureHost(p.Host) {
		// The hubs Azure DPS assigns are Azure's, with their throttle,
		// shared by the fleet's shards.
		s.ConnectRate = simulate.AzureConnectRate / float64(o.shards.count)
	}
	s.Provision = p
	ids, err := o.shards.fleetIDs(o.prefix, o.devices)
	if err != nil {
		return err
	}
	s.DeviceIDs = ids
	o.sim = s
	return nil
}

// defaultDPSHost is the local hub's host when one is configured (--host,
// --hub-connection-string, the device connection string, or the service
// connection string that `hub serve`'s env.sh exports, as `dps register`
// reads it), as the local hub serves DPS on its own ports; else Azure's
// global endpoint.
func (o *simulateOptions) defaultDPSHost() string {
	if o.conn.host != "" && !connstr.IsAzureHost(o.conn.host) {
		return o.conn.host
	}
	for _, key := range []string{"hub-connection-string", cmdutil.KeyDeviceConnectionString, cmdutil.KeyConnectionString} {
		if h := provisioning.DefaultHost(o.f.V.GetString(key)); h != provisioning.GlobalHost {
			return h
		}
	}
	return provisioning.GlobalHost
}

// loadIssuer loads the CA certificate and key that sign a fleet's
// device certificates (flag names the flag for the messages).
func loadIssuer(flag, certFile, keyFile string) (*tls.Certificate, error) {
	issuer, err := device.LoadKeyPair(certFile, keyFile)
	if err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("%s: %w", flag, err)}
	}
	if issuer.Leaf == nil || !issuer.Leaf.IsCA {
		return nil, cmdutil.Usagef("%s %s is not a CA certificate: it cannot sign device certificates", flag, certFile)
	}
	return issuer, nil
}

// dpsExitError maps a fleet's DPS refusal to exit code 4.
func dpsExitError(err error) error {
	var pe *provisioning.Error
	if errors.As(err, &pe) && pe.Refused() {
		return &cmdutil.ExitError{Code: cmdutil.ExitAuth, Err: fmt.Errorf("DPS refused the fleet's registrations: %w", err)}
	}
	return err
}
