package dps

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/provisioning"
)

// keyDPSConnectionString is the configuration key of the DPS service
// connection string (IOTCTL_DPS_CONNECTION_STRING, which `hub serve`'s
// env.sh exports).
const keyDPSConnectionString = "dps-connection-string"

// serviceTimeout bounds one service command.
const serviceTimeout = time.Minute

// addServiceFlags adds the flags every DPS service command reads.
func addServiceFlags(fl *pflag.FlagSet) {
	fl.String(keyDPSConnectionString, "", "DPS service connection string (default: IOTCTL_DPS_CONNECTION_STRING, which hub serve exports)")
	fl.String(cmdutil.KeyCAFile, "", "PEM file of CA certificates to trust besides the system's (a local hub's ca.pem)")
}

// rootCAs are the system roots plus --ca-file's certificates, or nil
// (the system's) without --ca-file.
func rootCAs(f *cmdutil.Factory) (*x509.CertPool, error) {
	caFile := f.V.GetString(cmdutil.KeyCAFile)
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, cmdutil.Usagef("--ca-file: %v", err)
	}
	// Besides the system roots, as --ca-file is everywhere in iotctl.
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, cmdutil.Usagef("--ca-file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// withService runs fn with the DPS service client of the configured
// connection string and a context bounded by serviceTimeout, and maps
// the DPS errors fn returns to exit codes (serviceError).
func withService(ctx context.Context, f *cmdutil.Factory, fn func(context.Context, *provisioning.Service) error) error {
	cs := f.V.GetString(keyDPSConnectionString)
	if cs == "" {
		return cmdutil.Usagef("no DPS connection string: pass --dps-connection-string or set IOTCTL_DPS_CONNECTION_STRING (`iotctl hub serve` prints the local one; for Azure, the DPS instance's provisioningserviceowner policy)")
	}
	roots, err := rootCAs(f)
	if err != nil {
		return err
	}
	s, err := provisioning.NewService(cs, &provisioning.ServiceOptions{RootCAs: roots})
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, serviceTimeout)
	defer cancel()
	if err := fn(ctx, s); err != nil {
		return serviceError(err, s.HostName())
	}
	return nil
}

// serviceError maps a DPS service error to iotctl's exit codes: a
// missing enrollment, group or registration exits 5, a refused token 4,
// a request DPS finds bad (400) 3, a deadline 7, the rest 1.
func serviceError(err error, host string) error {
	var pe *provisioning.Error
	if errors.As(err, &pe) {
		switch pe.HTTPStatus {
		case http.StatusNotFound:
			return &cmdutil.ExitError{Code: cmdutil.ExitNotFound, Err: fmt.Errorf("DPS at %s: %w", host, err)}
		case http.StatusUnauthorized, http.StatusForbidden:
			return &cmdutil.ExitError{Code: cmdutil.ExitAuth, Err: fmt.Errorf("DPS at %s refused the request: %w", host, err)}
		case http.StatusBadRequest:
			return &cmdutil.UsageError{Err: fmt.Errorf("DPS at %s: %w", host, err)}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &cmdutil.ExitError{Code: cmdutil.ExitTimeout, Err: fmt.Errorf("DPS at %s did not answer in %s: %w", host, serviceTimeout, err)}
	}
	return fmt.Errorf("DPS at %s: %w", host, err)
}
