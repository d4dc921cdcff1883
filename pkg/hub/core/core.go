package core

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/message"
)

// Identity names a device (ModuleID "") or a module.
type Identity struct{ DeviceID, ModuleID string }

// Key is "{deviceId}" or "{deviceId}/{moduleId}", the MQTT client id
// and the subject CN of an X.509 identity.
func (i Identity) Key() string {
	if i.ModuleID == "" {
		return i.DeviceID
	}
	return i.DeviceID + "/" + i.ModuleID
}

// Feature is something a device listens for on its connection.
type Feature int

// The features a Conn may listen for.
const (
	// Methods: direct-method requests (MQTT: subscribed to
	// $iothub/methods/POST/#).
	Methods Feature = iota
	// Desired: desired-property notifications.
	Desired
	// C2D: cloud-to-device messages (for a module: its input messages).
	C2D
)

// Conn is one identity's connection over a transport, as the core
// writes to it. A transport that multiplexes identities (AMQP) gives
// each one a Conn of its own. Its methods may be called from any
// goroutine, concurrently; they must not block for long.
type Conn interface {
	// Listening reports whether the device listens for f now. For C2D
	// it should be false while the device can take no message (no
	// AMQP link credit): every message handed out counts as a delivery.
	Listening(f Feature) bool
	// SendMethod sends a direct-method request with the core's request
	// id; the answer comes back through Session.MethodResponse.
	SendMethod(name, requestID string, payload []byte) error
	// SendDesired sends a desired-properties patch (body has "$version").
	SendDesired(version int64, body []byte) error
	// SendC2D hands a message, locked with m.LockToken, to the device.
	// The transport settles it later with Session.CompleteC2D,
	// RejectC2D or AbandonC2D. ErrNoCredit stops this round of
	// delivery without an error (Session.KickC2D starts another).
	SendC2D(m *registry.C2DMessage) error
	// Close ends the identity's connection (or its part of a shared
	// one) for reason: ErrTokenExpired, ErrReplaced, ErrNotStored or
	// the hub's shutdown. The transport calls Session.Detach once it
	// has ended. Close must be safe to call more than once.
	Close(reason error)
}

// Errors the core gives to Conn.Close and to callers.
var (
	// ErrTokenExpired ends a connection whose SAS token expired.
	ErrTokenExpired = errors.New("hub: the device's SAS token expired")
	// ErrReplaced ends a connection when the same identity connects
	// again: IoT Hub keeps one connection per device.
	ErrReplaced = errors.New("hub: the device connected again on another connection")
	// ErrNoCredit is returned by Conn.SendC2D when the device cannot
	// take another message now (AMQP link credit).
	ErrNoCredit = errors.New("hub: the device takes no more messages now")
	// ErrShutdown ends every connection when the hub closes.
	ErrShutdown = errors.New("hub shutting down")
)

// Options configure a Core. Registry and Telemetry are required.
type Options struct {
	// Registry holds identities, twins and C2D queues. Required.
	Registry *registry.Store
	// Telemetry is the log devices' messages go to. Required.
	Telemetry *telemetry.Log
	// Go runs f on a goroutine its owner waits for, or reports false
	// (and does not run f) once the owner is closing. Default: a plain
	// go statement that always runs f.
	Go func(f func()) bool
	// Events is told what the core does, for metrics. Default: nil,
	// nothing is told.
	Events Events
	// Logger receives the core's log. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Events is told what the core does, for metrics. Its methods are
// called from any goroutine and must not block.
type Events interface {
	// MessageStored: a device-to-cloud message that came over transport
	// ("mqtt", "amqp", "https") is in the telemetry log.
	MessageStored(transport string)
	// MethodCalled: a direct-method call ended with err (nil: the device
	// answered).
	MethodCalled(err error)
	// C2D: a cloud-to-device message was handed to its device
	// (C2DDelivered) or completed by it (C2DCompleted).
	C2D(event string)
}

// The events of Events.C2D.
const (
	C2DDelivered = "delivered"
	C2DCompleted = "completed"
)

// noEvents is the Events of a Core without Options.Events.
type noEvents struct{}

func (noEvents) MessageStored(string) {}
func (noEvents) MethodCalled(error)   {}
func (noEvents) C2D(string)           {}

// Core is the hub's device core. Make one with New; it is safe for
// concurrent use.
type Core struct {
	reg       *registry.Store
	telemetry *telemetry.Log
	spawn     func(func()) bool
	events    Events
	log       *slog.Logger
	now       func() time.Time
	closing   <-chan struct{}

	sessions sessionTable
	methods  methodBus
}

// New returns a Core whose life ctx bounds: once ctx is done, waits
// for devices and method answers end with ErrDeviceNotOnline.
func New(ctx context.Context, opts *Options) *Core {
	o := *opts
	if o.Go == nil {
		o.Go = func(f func()) bool { go f(); return true }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Events == nil {
		o.Events = noEvents{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Core{reg: o.Registry, telemetry: o.Telemetry, spawn: o.Go, events: o.Events, log: o.Logger, now: o.Now, closing: ctx.Done(),
		sessions: sessionTable{byID: map[string]*Session{}, waiters: map[string]chan struct{}{}},
		methods:  methodBus{pending: map[string]pendingCall{}}}
}

// AttachOptions describe a connection being attached.
type AttachOptions struct {
	// AuthMethod is how the device authenticated: "sas" or "x509"
	// (iothub-connection-auth-method of its telemetry).
	AuthMethod string
	// Transport names the device's transport for Events ("mqtt", "amqp").
	Transport string
	// Expiry is when its SAS token expires; the core closes the
	// connection then (Conn.Close(ErrTokenExpired)). Zero: never (X.509).
	Expiry time.Time
}

// Session is one identity's live connection, attached to the core.
type Session struct {
	Identity
	c           *Core
	conn        Conn
	connectedAt time.Time
	authMethod  string
	transport   string
	generation  string

	lastActivity atomic.Int64 // unix nanoseconds

	mu     sync.Mutex
	expiry *time.Timer
	// C2D delivery
	inflight   map[string]struct{} // lock tokens handed to the device
	delivering bool                // a deliverC2D runs
	again      bool                // it was kicked while running
	done       chan struct{}       // closed by Detach

	slots chan struct{} // telemetry appends waiting for the log on disk
}

// Attach makes conn the identity's current connection and returns its
// Session. An older connection of the same identity is closed with
// ErrReplaced. Queued C2D messages are delivered once conn listens for
// them (Session.Changed).
func (c *Core) Attach(id Identity, conn Conn, o AttachOptions) *Session {
	now := c.now()
	s := &Session{Identity: id, c: c, conn: conn, connectedAt: now, authMethod: o.AuthMethod, transport: o.Transport,
		inflight: map[string]struct{}{}, done: make(chan struct{}), slots: make(chan struct{}, maxPendingAppends)}
	s.Touch()
	s.generation, _ = c.generationID(id)
	old := c.sessions.put(s)
	if old != nil {
		old.conn.Close(ErrReplaced)
	}
	if !o.Expiry.IsZero() {
		s.endAtExpiry(o.Expiry)
	}
	c.log.Info("device connected", "device", id.DeviceID, "module", id.ModuleID, "auth", o.AuthMethod)
	s.KickC2D()
	return s
}

// Touch records activity now (lastActivityTime).
func (s *Session) Touch() { s.lastActivity.Store(s.c.now().UnixNano()) }

// Conn is the session's connection.
func (s *Session) Conn() Conn { return s.conn }

// Changed tells the core that what the device listens for changed (it
// subscribed): queued C2D messages go out, and calls waiting for the
// device to listen for methods go on.
func (s *Session) Changed() {
	s.KickC2D()
	s.c.sessions.changed(s.Key())
}

// Detach ends the session after its connection ended (err is why, for
// the log). Its unsettled C2D messages go back to the queue (and to the
// connection that replaced it, if any); its connection times are kept
// in the registry.
func (s *Session) Detach(err error) {
	c := s.c
	current, ok := c.sessions.lookup(s)
	if !ok {
		return
	}
	if current {
		// The connection times go to the registry before the session
		// leaves the table, so that State never sees neither.
		p := registry.Presence{StateUpdated: c.now(), LastActivity: time.Unix(0, s.lastActivity.Load())}
		if perr := c.reg.SetPresence(s.DeviceID, s.ModuleID, p); perr != nil && !errors.Is(perr, registry.ErrDeviceNotFound) && !errors.Is(perr, registry.ErrModuleNotFound) {
			c.log.Warn("recording the disconnection failed", "device", s.DeviceID, "module", s.ModuleID, "err", perr)
		}
	}
	if current, ok = c.sessions.remove(s); !ok {
		return
	}
	close(s.done)
	s.mu.Lock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.mu.Unlock()
	s.abandonInflight()
	c.C2DEnqueued(s.DeviceID, s.ModuleID)
	if !current {
		c.log.Info("device connection replaced", "device", s.DeviceID, "module", s.ModuleID)
		return
	}
	c.log.Info("device disconnected", "device", s.DeviceID, "module", s.ModuleID, "err", err)
	c.sessions.changed(s.Key())
}

// endAtExpiry closes the connection when its token expires, as IoT Hub
// does ("When the token expires, the IoT hub severs the device/module
// connection", https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas):
// at the first second the token is refused (sas.Token.Expired, the
// check made at connect), by the core's clock.
func (s *Session) endAtExpiry(expiry time.Time) {
	at := time.Unix(expiry.Unix()+1, 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiry = time.AfterFunc(at.Sub(s.c.now()), func() {
		s.c.spawn(func() {
			s.c.log.Info("device disconnected: its SAS token expired", "device", s.DeviceID, "module", s.ModuleID,
				"expiry", expiry.UTC().Format(time.RFC3339))
			s.conn.Close(ErrTokenExpired)
		})
	})
}

// Renew moves the end of the connection to a new token's expiry, for
// transports that renew a token on a live connection (AMQP put-token).
func (s *Session) Renew(expiry time.Time) {
	select {
	case <-s.done:
		return
	default:
	}
	s.endAtExpiry(expiry)
}

// CloseAll closes every attached connection with reason.
func (c *Core) CloseAll(reason error) {
	for _, s := range c.sessions.all() {
		s.conn.Close(reason)
	}
}

// Session returns the identity's current session, or nil.
func (c *Core) Session(id Identity) *Session { return c.sessions.get(id.Key()) }

// Wait returns a channel closed at the identity's next change: it
// connects, disconnects or starts listening for something.
func (c *Core) Wait(id Identity) <-chan struct{} { return c.sessions.wait(id.Key()) }

// Connected is the number of identities connected.
func (c *Core) Connected() int { return c.sessions.count() }

// State answers the REST API's questions about connections: is the
// identity connected, since when is its state what it is, and when was
// it last active. A disconnected identity's times are those the
// registry kept of its last connection (zero if it never connected).
func (c *Core) State(deviceID, moduleID string) (bool, time.Time, time.Time) {
	if s := c.sessions.get(Identity{deviceID, moduleID}.Key()); s != nil {
		return true, s.connectedAt, time.Unix(0, s.lastActivity.Load())
	}
	p, err := c.reg.Presence(deviceID, moduleID)
	if err != nil {
		c.log.Warn("reading the last connection failed", "device", deviceID, "module", moduleID, "err", err)
	}
	return false, p.StateUpdated, p.LastActivity
}

// generationID is the identity's generationId in the registry.
func (c *Core) generationID(id Identity) (string, error) {
	if id.ModuleID != "" {
		m, err := c.reg.Module(id.DeviceID, id.ModuleID)
		if err != nil {
			return "", err
		}
		return m.GenerationID, nil
	}
	d, err := c.reg.Device(id.DeviceID)
	if err != nil {
		return "", err
	}
	return d.GenerationID, nil
}

// sessionTable holds the connected identities and lets callers wait for
// one to connect and listen.
type sessionTable struct {
	mu      sync.Mutex
	byID    map[string]*Session // the current connection of each identity
	waiters map[string]chan struct{}
	// attached are every session not yet detached, replaced ones too.
	attached map[*Session]struct{}
}

// put makes s its identity's current session and returns the one it
// replaces, if any.
func (t *sessionTable) put(s *Session) *Session {
	k := s.Key()
	t.mu.Lock()
	old := t.byID[k]
	t.byID[k] = s
	if t.attached == nil {
		t.attached = map[*Session]struct{}{}
	}
	t.attached[s] = struct{}{}
	t.mu.Unlock()
	t.changed(k)
	return old
}

// lookup reports whether s is attached and whether it is its
// identity's current session.
func (t *sessionTable) lookup(s *Session) (current, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.attached[s]; !ok {
		return false, false
	}
	return t.byID[s.Key()] == s, true
}

// remove forgets s and reports whether it was attached and whether it
// was its identity's current session (false when a newer one had
// replaced it).
func (t *sessionTable) remove(s *Session) (current, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.attached[s]; !ok {
		return false, false
	}
	delete(t.attached, s)
	k := s.Key()
	if t.byID[k] != s {
		return false, true
	}
	delete(t.byID, k)
	return true, true
}

func (t *sessionTable) get(id string) *Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

func (t *sessionTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

// all returns every attached session, replaced ones still attached too.
func (t *sessionTable) all() []*Session {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Session, 0, len(t.attached))
	for s := range t.attached {
		out = append(out, s)
	}
	return out
}

// changed wakes everyone waiting on id.
func (t *sessionTable) changed(id string) {
	t.mu.Lock()
	ch := t.waiters[id]
	delete(t.waiters, id)
	t.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// wait returns a channel closed at the next change of id; all waiters
// of one id share it.
func (t *sessionTable) wait(id string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := t.waiters[id]
	if ch == nil {
		ch = make(chan struct{})
		t.waiters[id] = ch
	}
	return ch
}

// ToMessage is the message model of a queued C2D message, as device
// transports send it (system properties, application properties and
// the body; the ack mode only when feedback is asked for).
func ToMessage(c *registry.C2DMessage) *message.Message {
	m := &message.Message{
		Body: c.Body, MessageID: c.MessageID, CorrelationID: c.CorrelationID, UserID: c.UserID,
		ContentType: c.ContentType, ContentEncoding: c.ContentEncoding, To: c.To, ExpiryTime: c.ExpiryTime,
		Properties: c.Properties,
	}
	if c.Ack != "" && c.Ack != message.AckNone {
		m.Ack = c.Ack
	}
	return m
}
