package cmdutil

import (
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/service"
)

// Explain returns err with what to do about it appended, for the
// failures iotctl knows the remedy of: a hub that cannot be reached
// (nothing listening, a certificate not trusted, no answer in time), a
// device that is not online, and a hub data directory in use. Other errors are returned as they are.
// The exit code stays ExitCode(err)'s.
func Explain(err error) error {
	if hint := hintFor(err); hint != "" {
		return &explained{err: err, hint: hint}
	}
	return err
}

// explained is an error with a remedy.
type explained struct {
	err  error
	hint string
}

func (e *explained) Error() string { return e.err.Error() + "\n" + e.hint }
func (e *explained) Unwrap() error { return e.err }

func hintFor(err error) string {
	var ne *proxy.NetError
	if errors.As(err, &ne) {
		return netHint(ne)
	}
	var de *hub.DataDirInUseError
	if errors.As(err, &de) {
		stop := "Stop that hub"
		if de.PID > 0 {
			stop = fmt.Sprintf("Stop that hub (kill %d)", de.PID)
		}
		return stop + ", or run this one with a data directory of its own (--data-dir DIR) or with --in-memory to keep nothing."
	}
	if errors.Is(err, service.ErrDeviceNotOnline) {
		return "The device is not connected, or not subscribed to direct methods: start it, or let the hub wait for it to connect with --connect-timeout (up to 300s)."
	}
	return ""
}

func netHint(ne *proxy.NetError) string {
	switch {
	case ne.Refused():
		return fmt.Sprintf("Nothing accepts connections at %s: check the host and port in the connection string; for a local hub, start it with `iotctl hub serve` (it prints its address and connection string).", ne.Host)
	case ne.UnknownHost():
		return fmt.Sprintf("The host name of %s does not resolve: check HostName in the connection string.", ne.Host)
	case ne.Untrusted():
		return fmt.Sprintf("The certificate of %s is not trusted: for the local hub, give its CA with --ca-file or IOTCTL_CA_FILE (`iotctl hub serve` prints the path, and exports it in env.sh); a name missing from its certificate is added with `iotctl hub serve --san NAME`.", ne.Host)
	case !ne.TimedOut():
		return ""
	case ne.Phase == proxy.PhaseConnect:
		return fmt.Sprintf("%s did not accept the connection in time: check the host and port, and that a firewall lets them through.", ne.Host)
	case ne.Phase == proxy.PhaseTLS, ne.Phase == proxy.PhaseWebSocket:
		return fmt.Sprintf("%s accepted the connection but did not complete the %s: check that the port is the hub's TLS port (for the local hub, the address `iotctl hub serve` prints).", ne.Host, ne.Phase)
	}
	return fmt.Sprintf("%s did not answer in time: check that it is an IoT hub and is not overloaded, then try again.", ne.Host)
}
