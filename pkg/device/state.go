package device

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// State is a connection state of a Client.
type State int

// The connection states, in the order a client usually goes through them.
const (
	// StateDisconnected: the connection is down. Event.Err says why;
	// the client reconnects by itself unless Event.Final is true.
	StateDisconnected State = iota
	// StateConnecting: Connect is making its first connection.
	StateConnecting
	// StateConnected: connected and subscribed.
	StateConnected
	// StateReconnecting: a reconnect attempt is about to start after
	// Event.Delay (attempt Event.Attempt), or a planned reconnect to
	// renew the token has begun (Event.Reason ReasonTokenRenewal).
	StateReconnecting
	// StateClosed: Close was called; the client is done.
	StateClosed
)

var stateNames = [...]string{"disconnected", "connecting", "connected", "reconnecting", "closed"}

// String returns "disconnected", "connecting", "connected",
// "reconnecting" or "closed".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Event is a connection-state change, given to Options.OnState.
type Event struct {
	// State is the new state.
	State State
	// Reason says why; compare it with the Reason constants, print it
	// with its String method.
	Reason Reason
	// Err is the error behind a StateDisconnected (nil otherwise). When
	// the hub refused a reconnect it is a *ConnectError.
	Err error
	// Final is true when the client gave up for good: a reconnect was
	// refused (Err wraps ErrUnauthorized for bad credentials).
	Final bool
	// Attempt is the reconnect attempt number (1, 2, ...) of a
	// StateReconnecting event, 0 for a planned reconnect.
	Attempt int
	// Delay is the back-off before that attempt.
	Delay time.Duration
}

// Reason is why a connection state changed. The zero value,
// ReasonNone, says nothing. It marshals to text as its String (so a
// JSON field of this type with omitempty is left out for ReasonNone).
type Reason uint8

// The reasons of Event.Reason.
const (
	// ReasonNone: no reason given (StateConnecting, StateConnected).
	ReasonNone Reason = iota
	// ReasonConnectFailed: Connect's first connection failed; the
	// client gives up (Event.Final).
	ReasonConnectFailed
	// ReasonConnectionLost: a live connection broke; the client
	// reconnects with back-off.
	ReasonConnectionLost
	// ReasonTokenRenewal: the client reconnects with a fresh SAS token
	// before the old one expires (Event.Attempt 0 when it begins).
	ReasonTokenRenewal
	// ReasonReconnectRefused: the hub refused a reconnect; the client
	// gives up (Event.Final).
	ReasonReconnectRefused
	// ReasonClosed: Close was called.
	ReasonClosed
)

var reasonNames = [...]string{"", "connect failed", "connection lost", "token renewal", "reconnect refused", "closed"}

// String returns the reason in a few words ("connection lost", "token
// renewal", ...), "" for ReasonNone.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText returns String, so events keep their words in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// backoff returns the delay before reconnect attempt n (1-based):
// min·2^(n-1) capped at max, then jittered into [d/2, d].
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
