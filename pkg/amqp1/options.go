package amqp1

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"math"
	"time"
)

// ConnOptions configures a connection served by Serve. A nil
// *ConnOptions, and every zero field, means the documented default.
type ConnOptions struct {
	// ContainerID is the container-id sent in our open frame.
	// Default: "amqp1-" followed by 16 random hex digits.
	ContainerID string

	// MaxFrameSize is the largest frame we accept, announced in our open.
	// Frames we send are limited by the peer's announced value.
	// Default: 65536. Values below 512 are raised to 512.
	MaxFrameSize uint32

	// ChannelMax is the highest channel (session) number we accept,
	// announced in our open. Default: 255.
	ChannelMax uint16

	// IdleTimeout is the idle time-out we announce: if the peer sends
	// nothing (not even an empty frame) for this long, the connection is
	// closed with amqp:resource-limit-exceeded. Independently, when the
	// peer announces an idle time-out we send empty frames often enough
	// (at most half its value apart). Default: 0, no time-out. Values
	// below 100ms are raised to 100ms.
	IdleTimeout time.Duration

	// HandshakeTimeout bounds the protocol header, SASL and open exchange.
	// Default: 30s.
	HandshakeTimeout time.Duration

	// CloseTimeout bounds how long a closing connection waits for the
	// peer's close frame (and for its own frames to be written) before the
	// network connection is closed. Default: 5s.
	CloseTimeout time.Duration

	// SASL enables the SASL layer. Nil means the peer must start with the
	// bare AMQP header. Default: nil.
	SASL *SASLOptions

	// AllowNoSASL also accepts the bare AMQP header (no SASL) when SASL is
	// set; the official Node IoT service SDK connects that way. Without
	// it a peer skipping SASL is answered with the SASL header and
	// disconnected. Ignored when SASL is nil. Default: false.
	AllowNoSASL bool

	// LinkCredit is the credit window granted on every link where the peer
	// is the sender. Credit is topped up as Link.Receive consumes
	// deliveries, so at most LinkCredit deliveries are buffered per link.
	// Default: 100.
	LinkCredit uint32

	// MaxMessageSize is the largest message accepted on links where the
	// peer is the sender, announced in our attach. A larger delivery
	// detaches the link with amqp:link:message-size-exceeded.
	// Default: 1 MiB.
	MaxMessageSize uint64

	// NewHandler returns the Handler for a connection. It is called once
	// per connection after the peer's open has been received and answered
	// (so Conn's Hostname, Properties and SASL are known), before any
	// session is processed. It must not block and must not call
	// Conn.Close. Default: nil, which refuses every link with
	// amqp:not-found.
	NewHandler func(*Conn) Handler

	// Logger receives debug logs about the connection. Default: nil,
	// which discards them.
	Logger *slog.Logger
}

// SASLOptions configures the SASL layer.
type SASLOptions struct {
	// Mechanisms are the mechanisms offered, in order of preference. This
	// server understands "ANONYMOUS", "PLAIN" and "MSSBCBS" (Microsoft's
	// mechanism that defers authentication to CBS; it carries no
	// credentials). Default: ANONYMOUS, PLAIN and MSSBCBS.
	Mechanisms []string

	// Authenticate decides the outcome of a SASL exchange: nil accepts,
	// an error fails it with the SASL code "auth" (the error text is not
	// sent to the peer). ctx ends with the handshake. It runs on the
	// connection's goroutine. Default: nil, which accepts everyone.
	Authenticate func(ctx context.Context, req *SASLRequest) error
}

// SASLRequest is what a peer presented during SASL. Its String and
// LogValue methods redact the password.
type SASLRequest struct {
	// Mechanism is the mechanism the peer chose, e.g. "PLAIN".
	Mechanism string
	// Identity is the PLAIN authentication identity (the username, e.g.
	// "iothubowner@sas.root.myhub") or the ANONYMOUS trace string.
	Identity string
	// AuthzID is the PLAIN authorization identity, usually empty.
	AuthzID string
	// Password is the PLAIN password (for IoT Hub, a SAS token).
	Password string
	// Hostname is the hostname the peer sent in sasl-init, if any.
	Hostname string
}

// String formats r without the password.
func (r *SASLRequest) String() string {
	if r == nil {
		return "<nil>"
	}
	pw := ""
	if r.Password != "" {
		pw = "[redacted]"
	}
	return "SASLRequest{Mechanism: " + r.Mechanism + ", Identity: " + r.Identity + ", AuthzID: " + r.AuthzID +
		", Password: " + pw + ", Hostname: " + r.Hostname + "}"
}

// LogValue implements slog.LogValuer without the password.
func (r *SASLRequest) LogValue() slog.Value {
	if r == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.String("mechanism", r.Mechanism), slog.String("identity", r.Identity),
		slog.String("hostname", r.Hostname))
}

// SASL mechanism names.
const (
	SASLAnonymous = "ANONYMOUS"
	SASLPlain     = "PLAIN"
	SASLMSSBCBS   = "MSSBCBS"
)

const (
	minMaxFrameSize     = 512
	defaultMaxFrameSize = 65536
	defaultChannelMax   = 255
	defaultHandleMax    = 1023
	defaultLinkCredit   = 100
	defaultMaxMessage   = 1 << 20
	defaultHandshake    = 30 * time.Second
	defaultCloseTimeout = 5 * time.Second
	minIdleTimeout      = 100 * time.Millisecond
	// sessionWindow is the incoming-window (in transfer frames) we
	// announce for every session and top up when half is used.
	sessionWindow = 5000
	// writeHighWater is the amount of queued, unwritten bytes above which
	// Send waits for the writer to catch up.
	writeHighWater = 1 << 20
)

// resolved returns a copy of o with the defaults applied.
func (o *ConnOptions) resolved() ConnOptions {
	var r ConnOptions
	if o != nil {
		r = *o
	}
	if r.ContainerID == "" {
		var b [8]byte
		_, _ = io.ReadFull(rand.Reader, b[:])
		r.ContainerID = "amqp1-" + hex.EncodeToString(b[:])
	}
	if r.MaxFrameSize == 0 {
		r.MaxFrameSize = defaultMaxFrameSize
	}
	r.MaxFrameSize = max(r.MaxFrameSize, minMaxFrameSize)
	if r.ChannelMax == 0 {
		r.ChannelMax = defaultChannelMax
	}
	if r.IdleTimeout > 0 {
		r.IdleTimeout = min(max(r.IdleTimeout, minIdleTimeout), time.Duration(math.MaxUint32)*time.Millisecond)
	}
	if r.HandshakeTimeout <= 0 {
		r.HandshakeTimeout = defaultHandshake
	}
	if r.CloseTimeout <= 0 {
		r.CloseTimeout = defaultCloseTimeout
	}
	if r.LinkCredit == 0 {
		r.LinkCredit = defaultLinkCredit
	}
	if r.MaxMessageSize == 0 {
		r.MaxMessageSize = defaultMaxMessage
	}
	if r.SASL != nil {
		s := *r.SASL
		if len(s.Mechanisms) == 0 {
			s.Mechanisms = []string{SASLAnonymous, SASLPlain, SASLMSSBCBS}
		}
		r.SASL = &s
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}
