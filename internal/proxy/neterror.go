package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Phase is the step of reaching a server that failed.
type Phase string

// The phases of a connection, in order.
const (
	// PhaseConnect is the TCP connection (with the DNS lookup).
	PhaseConnect Phase = "TCP connect"
	// PhaseTLS is the TLS handshake.
	PhaseTLS Phase = "TLS handshake"
	// PhaseWebSocket is the WebSocket upgrade over TLS.
	PhaseWebSocket Phase = "WebSocket upgrade"
	// PhaseAnswer is the wait for the server's answer to a request
	// (an HTTP response, MQTT's CONNACK, AMQP's open).
	PhaseAnswer Phase = "waiting for the answer"
)

// NetError is a failure to reach a server, or to hear from it: the
// host, the phase that failed and, when a time limit ran out, that
// limit. It wraps the underlying error (errors.Is(err,
// syscall.ECONNREFUSED) and the like still work). The proxy's own
// failures are *Error instead.
type NetError struct {
	// Host is the server's host:port.
	Host string
	// Phase is the step that failed.
	Phase Phase
	// Timeout is the time limit that ran out, or 0 when the failure is
	// not a timeout (or the limit is not known).
	Timeout time.Duration
	// Err is the underlying error.
	Err error
}

func (e *NetError) Error() string {
	if e.TimedOut() {
		if e.Timeout > 0 {
			return fmt.Sprintf("%s: %s: no answer within %s", e.Host, e.Phase, e.Timeout)
		}
		return fmt.Sprintf("%s: %s: timed out", e.Host, e.Phase)
	}
	return fmt.Sprintf("%s: %s: %v", e.Host, e.Phase, e.Err)
}

// Unwrap returns Err.
func (e *NetError) Unwrap() error { return e.Err }

// TimedOut reports whether a time limit ran out.
func (e *NetError) TimedOut() bool {
	if e.Timeout > 0 || errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Refused reports whether nothing listens at Host (the connection was
// refused).
func (e *NetError) Refused() bool { return errors.Is(e.Err, syscall.ECONNREFUSED) }

// Untrusted reports whether the server's certificate was refused: not
// signed by a trusted CA, not for Host, or not valid now.
func (e *NetError) Untrusted() bool {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	var cie x509.CertificateInvalidError
	return errors.As(e.Err, &cve) || errors.As(e.Err, &uae) || errors.As(e.Err, &hne) || errors.As(e.Err, &cie)
}

// UnknownHost reports whether the host name does not resolve.
func (e *NetError) UnknownHost() bool {
	var dns *net.DNSError
	return errors.As(e.Err, &dns) && dns.IsNotFound
}

// NewNetError returns a *NetError for err in phase, or err itself when
// it is nil, already a *NetError or *Error, or the cancellation of ctx.
// When ctx's deadline has passed, Timeout is the time from start to that
// deadline; a timeout of another limit leaves Timeout to the caller.
func NewNetError(ctx context.Context, start time.Time, host string, phase Phase, err error) error {
	var ne *NetError
	var pe *Error
	if err == nil || errors.As(err, &ne) || errors.As(err, &pe) || errors.Is(err, context.Canceled) {
		return err
	}
	e := &NetError{Host: host, Phase: phase, Err: err}
	if dl, ok := ctx.Deadline(); ok && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e.Timeout = roundLimit(dl.Sub(start))
	}
	return e
}

// roundLimit rounds a time limit measured from a deadline to what was
// most likely configured: whole seconds above one second.
func roundLimit(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// DialWithin runs dial with a context that ends after limit (or with
// ctx). When it is limit that runs out, the *NetError dial returns gets
// exactly limit as its Timeout, whatever the clock measured.
func DialWithin[T any](ctx context.Context, limit time.Duration, dial func(context.Context) (T, error)) (T, error) {
	lctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	v, err := dial(lctx)
	var ne *NetError
	if err != nil && ctx.Err() == nil && lctx.Err() != nil && errors.As(err, &ne) {
		ne.Timeout = limit
	}
	return v, err
}
