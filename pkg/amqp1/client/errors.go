package client

import (
	"errors"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// ErrClosed is returned for work on a connection that has ended (Err
// tells why) or on a link that was detached by this side.
var ErrClosed = errors.New("amqp client: closed")

// Error is an AMQP error condition the peer sent: in a close, an end,
// a detach, or a rejected outcome.
type Error struct {
	// Condition is the AMQP error condition, e.g.
	// "amqp:unauthorized-access".
	Condition string
	// Description is the peer's text, possibly empty.
	Description string
}

func (e *Error) Error() string {
	if e.Description == "" {
		return "amqp client: " + e.Condition
	}
	return "amqp client: " + e.Condition + ": " + e.Description
}

// LinkError is a link's end by the peer (a detach) or a session's (an
// end): Remote is its error, nil when it gave none.
type LinkError struct{ Remote *Error }

func (e *LinkError) Error() string {
	if e.Remote == nil {
		return "amqp client: the link was detached"
	}
	return "amqp client: the link was detached: " + e.Remote.Error()
}

// Unwrap returns Remote.
func (e *LinkError) Unwrap() error {
	if e.Remote == nil {
		return nil
	}
	return e.Remote
}

// ConnError is the end of the connection: Remote is the error of the
// peer's close, Err the local cause (a read or write failure, Close).
type ConnError struct {
	Remote *Error
	Err    error
}

func (e *ConnError) Error() string {
	switch {
	case e.Remote != nil:
		return "amqp client: the connection was closed: " + e.Remote.Error()
	case e.Err != nil:
		return "amqp client: connection lost: " + e.Err.Error()
	}
	return "amqp client: the connection was closed"
}

// Unwrap returns Remote or Err.
func (e *ConnError) Unwrap() error {
	if e.Remote != nil {
		return e.Remote
	}
	return e.Err
}

// RejectedError is a delivery the peer settled with the rejected
// outcome (Remote is its error) or released (Released true).
type RejectedError struct {
	Remote   *Error
	Released bool
}

func (e *RejectedError) Error() string {
	switch {
	case e.Released:
		return "amqp client: the message was released"
	case e.Remote != nil:
		return "amqp client: the message was rejected: " + e.Remote.Error()
	}
	return "amqp client: the message was rejected"
}

// Unwrap returns Remote.
func (e *RejectedError) Unwrap() error {
	if e.Remote == nil {
		return nil
	}
	return e.Remote
}

func remoteErr(e *frames.Error) *Error {
	if e == nil {
		return nil
	}
	return &Error{Condition: string(e.Condition), Description: e.Description}
}
