package amqp1

import (
	"errors"
	"fmt"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// ErrCond is an AMQP error condition, a symbol such as "amqp:not-found".
type ErrCond string

// Error conditions defined by AMQP 1.0 (part 2.8.15 to 2.8.18).
const (
	ErrCondDecodeError           ErrCond = "amqp:decode-error"
	ErrCondFrameSizeTooSmall     ErrCond = "amqp:frame-size-too-small"
	ErrCondIllegalState          ErrCond = "amqp:illegal-state"
	ErrCondInternalError         ErrCond = "amqp:internal-error"
	ErrCondInvalidField          ErrCond = "amqp:invalid-field"
	ErrCondNotAllowed            ErrCond = "amqp:not-allowed"
	ErrCondNotFound              ErrCond = "amqp:not-found"
	ErrCondNotImplemented        ErrCond = "amqp:not-implemented"
	ErrCondPreconditionFailed    ErrCond = "amqp:precondition-failed"
	ErrCondResourceDeleted       ErrCond = "amqp:resource-deleted"
	ErrCondResourceLimitExceeded ErrCond = "amqp:resource-limit-exceeded"
	ErrCondResourceLocked        ErrCond = "amqp:resource-locked"
	ErrCondUnauthorizedAccess    ErrCond = "amqp:unauthorized-access"

	ErrCondConnectionForced      ErrCond = "amqp:connection:forced"
	ErrCondConnectionRedirect    ErrCond = "amqp:connection:redirect"
	ErrCondFramingError          ErrCond = "amqp:connection:framing-error"
	ErrCondErrantLink            ErrCond = "amqp:session:errant-link"
	ErrCondHandleInUse           ErrCond = "amqp:session:handle-in-use"
	ErrCondUnattachedHandle      ErrCond = "amqp:session:unattached-handle"
	ErrCondWindowViolation       ErrCond = "amqp:session:window-violation"
	ErrCondDetachForced          ErrCond = "amqp:link:detach-forced"
	ErrCondLinkRedirect          ErrCond = "amqp:link:redirect"
	ErrCondMessageSizeExceeded   ErrCond = "amqp:link:message-size-exceeded"
	ErrCondStolen                ErrCond = "amqp:link:stolen"
	ErrCondTransferLimitExceeded ErrCond = "amqp:link:transfer-limit-exceeded"
)

// Error is an AMQP error as carried by close, end, detach and the
// rejected outcome. A nil *Error means "no error".
type Error struct {
	// Condition is the error condition, e.g. ErrCondLinkRedirect.
	Condition ErrCond
	// Description is optional human-readable text.
	Description string
	// Info is optional extra information. For amqp:link:redirect the
	// conventional keys are "hostname", "network-host", "port" and
	// "address". Values use the Go types listed in doc.go.
	Info map[string]any
}

// Error implements error.
func (e *Error) Error() string {
	if e == nil {
		return "amqp1: <nil error>"
	}
	if e.Description == "" {
		return fmt.Sprintf("*Error{Condition: %s, Info: %v}", e.Condition, e.Info)
	}
	return fmt.Sprintf("*Error{Condition: %s, Description: %s, Info: %v}", e.Condition, e.Description, e.Info)
}

func (e *Error) toFrame() *frames.Error {
	if e == nil {
		return nil
	}
	fe := &frames.Error{Condition: encoding.Symbol(e.Condition), Description: e.Description}
	if e.Info != nil {
		fe.Info = make(map[encoding.Symbol]any, len(e.Info))
		for k, v := range e.Info {
			fe.Info[encoding.Symbol(k)] = v
		}
	}
	return fe
}

func errorFromFrame(fe *frames.Error) *Error {
	if fe == nil {
		return nil
	}
	return &Error{Condition: ErrCond(fe.Condition), Description: fe.Description, Info: stringKeys(fe.Info)}
}

func stringKeys(m map[encoding.Symbol]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[string(k)] = v
	}
	return out
}

// ConnError is returned by Serve and by Link and Delivery methods once
// the connection has ended.
type ConnError struct {
	// RemoteErr is the error the peer sent in its close frame, if any.
	RemoteErr *Error
	// LocalErr is the error this side sent in its close frame, if any
	// (a protocol violation by the peer, an idle timeout, Conn.Close).
	LocalErr *Error
	inner    error
}

// Error implements error.
func (e *ConnError) Error() string {
	switch {
	case e.RemoteErr != nil:
		return "amqp1: connection closed by peer: " + e.RemoteErr.Error()
	case e.LocalErr != nil && e.inner != nil:
		return fmt.Sprintf("amqp1: connection closed: %s: %v", e.LocalErr.Condition, e.inner)
	case e.LocalErr != nil:
		return "amqp1: connection closed: " + e.LocalErr.Error()
	case e.inner != nil:
		return "amqp1: connection closed: " + e.inner.Error()
	}
	return "amqp1: connection closed"
}

// Unwrap returns the underlying cause (an I/O error, a context error or a
// decoding error), if any.
func (e *ConnError) Unwrap() error { return e.inner }

// SessionError is returned by Link and Delivery methods once the link's
// session has ended while the connection lives on.
type SessionError struct {
	// RemoteErr is the error the peer sent in its end frame, if any.
	RemoteErr *Error
	// LocalErr is the error this side sent in its end frame, if any.
	LocalErr *Error
}

// Error implements error.
func (e *SessionError) Error() string {
	switch {
	case e.RemoteErr != nil:
		return "amqp1: session ended by peer: " + e.RemoteErr.Error()
	case e.LocalErr != nil:
		return "amqp1: session ended: " + e.LocalErr.Error()
	}
	return "amqp1: session ended"
}

// LinkError is returned by Link and Delivery methods once the link has
// been detached while its session lives on.
type LinkError struct {
	// RemoteErr is the error the peer sent in its detach frame, if any.
	RemoteErr *Error
	// LocalErr is the error this side sent in its detach frame, if any.
	LocalErr *Error
}

// Error implements error.
func (e *LinkError) Error() string {
	switch {
	case e.RemoteErr != nil:
		return "amqp1: link detached by peer: " + e.RemoteErr.Error()
	case e.LocalErr != nil:
		return "amqp1: link detached: " + e.LocalErr.Error()
	}
	return "amqp1: link detached"
}

// RejectedError is returned by Link.Send when the peer rejected the
// message.
type RejectedError struct {
	// RemoteErr is the error in the rejected outcome; it may be nil.
	RemoteErr *Error
}

// Error implements error.
func (e *RejectedError) Error() string {
	if e.RemoteErr == nil {
		return "amqp1: message rejected"
	}
	return "amqp1: message rejected: " + e.RemoteErr.Error()
}

// ModifiedError is returned by Link.Send when the peer settled the
// message with the modified outcome.
type ModifiedError struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations map[string]any
}

// Error implements error.
func (e *ModifiedError) Error() string {
	return fmt.Sprintf("amqp1: message modified (delivery-failed=%t, undeliverable-here=%t)", e.DeliveryFailed, e.UndeliverableHere)
}

// Sentinel errors.
var (
	// ErrReleased is returned by Link.Send when the peer released the
	// message.
	ErrReleased = errors.New("amqp1: message released")
	// ErrWrongRole is returned by Send on a link where this side is the
	// receiver and by Receive where it is the sender.
	ErrWrongRole = errors.New("amqp1: operation not valid for this link's role")
	// ErrMessageTooLarge is returned by Send when the encoded message is
	// larger than the peer's max-message-size.
	ErrMessageTooLarge = errors.New("amqp1: message larger than the peer's max-message-size")
	// ErrProtocolHeader is wrapped by Serve's error when the peer sent a
	// protocol header this server does not accept.
	ErrProtocolHeader = errors.New("amqp1: unsupported protocol header")
	// ErrAuth is wrapped by Serve's error when SASL authentication failed.
	ErrAuth = errors.New("amqp1: sasl authentication failed")
)

// DetachAfterAttach, returned by Handler.Attach, accepts the attach
// (echoing source and target) and then at once detaches the link with
// closed=true and Err: go-amqp clients then see an *amqp.LinkError from
// their first Receive or Send instead of an *amqp.Error from NewReceiver
// or NewSender, which is what returning a plain *Error (a refusal, the
// way Azure refuses and redirects) gives.
type DetachAfterAttach struct {
	Err *Error
}

// Error implements error.
func (d *DetachAfterAttach) Error() string { return "amqp1: detach after attach: " + d.Err.Error() }
