package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
)

// Exit codes, one table for the whole program (README "Scripting", iotctl help exit-codes).
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitPanic       = 2
	ExitUsage       = 3
	ExitAuth        = 4
	ExitNotFound    = 5
	ExitOffline     = 6
	ExitTimeout     = 7
	ExitDeviceError = 8
	ExitInterrupted = 130
)

// ExitCodes is the table `iotctl help exit-codes` prints.
var ExitCodes = []struct {
	Code    int
	Meaning string
}{
	{ExitOK, "success"},
	{ExitFailure, "failure not covered below"},
	{ExitPanic, "reserved (Go runtime panic)"},
	{ExitUsage, "usage: bad flags, bad connection string, bad payload, bad template"},
	{ExitAuth, "authentication or authorization refused"},
	{ExitNotFound, "not found (device, module)"},
	{ExitOffline, "device offline / not listening for methods (404103)"},
	{ExitTimeout, "timed out (504101 or a client deadline)"},
	{ExitDeviceError, "the device answered a method with a status >= 400"},
	{ExitInterrupted, "interrupted (Ctrl-C)"},
}

// ExitCodesText renders ExitCodes as an aligned table.
func ExitCodesText() string {
	var b strings.Builder
	b.WriteString("CODE  MEANING\n")
	for _, e := range ExitCodes {
		fmt.Fprintf(&b, "%-5d %s\n", e.Code, e.Meaning)
	}
	return b.String()
}

// UsageError is a mistake in how the command was called: exit 3.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitError carries an explicit exit code, for outcomes that are not
// errors of iotctl itself (a device that answered 404 exits 8).
// An ExitError with a nil Err prints nothing.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode maps an error to the process exit code. nil is 0.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue *UsageError
	var pe *connstr.ParseError
	switch {
	case errors.As(err, &ue), errors.As(err, &pe), errors.Is(err, sas.ErrMalformed), errors.Is(err, sas.ErrKey):
		return ExitUsage
	case errors.Is(err, sas.ErrExpired), errors.Is(err, sas.ErrSignature), errors.Is(err, sas.ErrScope):
		return ExitAuth
	case errors.Is(err, service.ErrDeviceNotOnline):
		return ExitOffline
	case errors.Is(err, service.ErrNotFound):
		return ExitNotFound
	case errors.Is(err, service.ErrTimeout):
		return ExitTimeout
	case errors.Is(err, service.ErrUnauthorized), errors.Is(err, device.ErrUnauthorized):
		return ExitAuth
	}
	var ne *proxy.NetError
	switch {
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.TimedOut():
		return ExitTimeout
	}
	return ExitFailure
}

// IDArg is the id a command takes either as its one argument or with
// a flag (`hub device show dev1` or `--device-id dev1`): what names it
// in errors ("device id"), flagName is the flag without its dashes.
// Given both, they must agree; given neither, it is a usage error.
func IDArg(args []string, what, flagName, flagValue string) (string, error) {
	switch {
	case len(args) == 1 && flagValue != "" && args[0] != flagValue:
		return "", Usagef("the %s is given twice: %q and --%s %q", what, args[0], flagName, flagValue)
	case len(args) == 1:
		return args[0], nil
	case flagValue != "":
		return flagValue, nil
	}
	return "", Usagef("no %s: give it as the argument or with --%s", what, flagName)
}
