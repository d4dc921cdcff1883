package hub

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// mqttHook is the hub's MQTT device endpoint: it authenticates devices,
// keeps them to their own topics, and routes what they publish
// (telemetry, method responses, twin requests) and what they receive
// (method requests, twin responses and notifications, C2D messages) to
// the one connection concerned, never through mochi's fan-out.
type mqttHook struct {
	mqtt.HookBase
	h *Hub
}

func (k *mqttHook) ID() string { return "iothub" }

func (k *mqttHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnPublish, mqtt.OnSubscribed:
		return true
	}
	return false
}

// session is one connected device or module.
type session struct {
	cl                 *mqtt.Client
	deviceID, moduleID string
	connectedAt        time.Time
	lastActivity       atomic.Int64 // unix nanoseconds
	authMethod         string
	generationID       string
	// expiry ends the connection when its SAS token expires (nil for
	// X.509 devices).
	expiry *time.Timer

	// c2d delivery state
	mu         sync.Mutex
	nextPID    uint16
	inflight   map[uint16]string // packet id → C2D lock token
	delivering bool              // a deliverC2D runs
	again      bool              // it was kicked while running
	done       chan struct{}     // closed when the connection ended

	acks ackQueue // PUBACKs of telemetry stored on disk
}

func (s *session) touch(now time.Time) { s.lastActivity.Store(now.UnixNano()) }

func (s *session) subscribed(filter string) bool {
	_, ok := s.cl.State.Subscriptions.Get(filter)
	return ok
}

// clientKey is the key of a device or module in the session table.
func clientKey(deviceID, moduleID string) string {
	if moduleID == "" {
		return deviceID
	}
	return deviceID + "/" + moduleID
}

// parseUsername reads "{host}/{clientId}/?api-version=..." or the older
// "{host}/{clientId}/api-version=..." and returns host and client id.
func parseUsername(u string) (host, clientID string, ok bool) {
	host, rest, found := strings.Cut(u, "/")
	if !found || host == "" {
		return "", "", false
	}
	switch {
	case strings.Contains(rest, "/?"):
		clientID = rest[:strings.Index(rest, "/?")]
	case strings.Contains(rest, "/api-version="):
		clientID = rest[:strings.Index(rest, "/api-version=")]
	default:
		clientID = strings.TrimSuffix(rest, "/")
	}
	return host, clientID, clientID != ""
}

func splitClientID(id string) (deviceID, moduleID string) {
	deviceID, moduleID, _ = strings.Cut(id, "/")
	return deviceID, moduleID
}

// errProtocolVersion ends a connection whose CONNECT asks for a
// protocol level other than MQTT 3.1 or 3.1.1.
var errProtocolVersion = errors.New("hub: mqtt: only MQTT 3.1.1 is served")

// OnConnect refuses MQTT 5. IoT Hub's device endpoint speaks MQTT 3.1.1
// (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub);
// MQTT 5 exists only on hubs created in preview mode
// (https://learn.microsoft.com/azure/iot/iot-mqtt-5-preview). A 3.1.1
// server answers a protocol level it does not support with CONNACK
// return code 0x01, "unacceptable protocol version", and closes the
// connection (MQTT 3.1.1 §3.1.2.2), so the CONNACK goes out in the
// 3.1.1 form (two bytes, no MQTT 5 properties) whatever the client
// asked for.
func (k *mqttHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.ProtocolVersion <= 4 {
		return nil
	}
	k.h.log.Info("mqtt connect refused", "client", cl.ID, "remote", cl.Net.Remote,
		"reason", "unacceptable protocol version: IoT Hub speaks MQTT 3.1.1", "protocolVersion", pk.ProtocolVersion)
	cl.Properties.ProtocolVersion = 4
	logClosed(k.h.log, "connack", k.h.mqtt.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil))
	return errProtocolVersion
}

func (k *mqttHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	log := k.h.log.With("client", cl.ID, "remote", cl.Net.Remote)
	host, clientID, ok := parseUsername(string(pk.Connect.Username))
	if !ok || clientID != cl.ID {
		log.Info("mqtt connect refused", "reason", "username is not {host}/{clientId}/?api-version=... for this client id")
		return false
	}
	if !k.h.knownHost(host) {
		log.Info("mqtt connect refused", "reason", "username names another hub", "host", host)
		return false
	}
	deviceID, moduleID := splitClientID(cl.ID)
	if strings.Contains(moduleID, "/") || deviceID == "" {
		log.Info("mqtt connect refused", "reason", "malformed client id")
		return false
	}
	if len(pk.Connect.Password) == 0 {
		// No password: an X.509 device, known by its client certificate.
		if err := k.h.authX509(cl.Net.Conn, deviceID, moduleID); err != nil {
			log.Info("mqtt connect refused", "err", err)
			return false
		}
		return true
	}
	if err := k.h.auth.Device(string(pk.Connect.Password), deviceID, moduleID); err != nil {
		log.Info("mqtt connect refused", "err", err)
		return false
	}
	return true
}

// OnACLCheck allows everything that reaches mochi's own checks: every
// PUBLISH and SUBSCRIBE was already checked in OnPacketRead, where a
// violation disconnects the device as IoT Hub does.
func (k *mqttHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }

func (k *mqttHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	deviceID, moduleID := splitClientID(cl.ID)
	now := k.h.now()
	method := "sas"
	if len(pk.Connect.Password) == 0 {
		method = "x509"
	}
	s := &session{cl: cl, deviceID: deviceID, moduleID: moduleID, connectedAt: now, authMethod: method,
		inflight: map[uint16]string{}, done: make(chan struct{})}
	s.touch(now)
	if gen, err := k.h.generationID(deviceID, moduleID); err == nil {
		s.generationID = gen
	}
	k.h.sessions.put(s)
	if method == "sas" {
		if tok, err := sas.Parse(string(pk.Connect.Password)); err == nil {
			k.h.endAtExpiry(s, tok)
		}
	}
	k.h.log.Info("device connected", "device", deviceID, "module", moduleID, "remote", cl.Net.Remote)
	k.h.kickC2D(s)
}

func (k *mqttHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s, current := k.h.sessions.remove(cl)
	if s == nil {
		return
	}
	close(s.done)
	if s.expiry != nil {
		s.expiry.Stop()
	}
	// Its unacknowledged C2D messages go back to the queue, and to the
	// connection that replaced it, if any.
	k.h.abandonInflight(s)
	k.h.C2DEnqueued(s.deviceID, s.moduleID)
	if !current {
		k.h.log.Info("device connection replaced", "device", s.deviceID, "module", s.moduleID)
		return
	}
	// Its connection times outlive the connection, in the registry.
	p := registry.Presence{StateUpdated: k.h.now(), LastActivity: time.Unix(0, s.lastActivity.Load())}
	if perr := k.h.reg.SetPresence(s.deviceID, s.moduleID, p); perr != nil && !errors.Is(perr, registry.ErrDeviceNotFound) && !errors.Is(perr, registry.ErrModuleNotFound) {
		k.h.log.Warn("recording the disconnection failed", "device", s.deviceID, "module", s.moduleID, "err", perr)
	}
	k.h.log.Info("device disconnected", "device", s.deviceID, "module", s.moduleID, "err", err)
	k.h.sessions.changed(cl.ID)
}

// errTokenExpired ends a connection whose SAS token has expired.
var errTokenExpired = errors.New("hub: the device's SAS token expired")

// endAtExpiry ends s's connection when its token expires, as IoT Hub
// does ("When the token expires, the IoT hub severs the device/module
// connection", https://learn.microsoft.com/azure/iot-hub/authenticate-authorize-sas):
// at the first second the token is refused (sas.Token.Expired, the
// check made at CONNECT), by the hub's clock. A device renews by
// connecting again with a new token, as the SDKs do over MQTT.
func (h *Hub) endAtExpiry(s *session, tok *sas.Token) {
	at := time.Unix(tok.ExpiryUnix()+1, 0)
	s.expiry = time.AfterFunc(at.Sub(h.now()), func() {
		if !h.workers.add() {
			return // the hub is closing: it ends every connection
		}
		defer h.workers.done()
		h.log.Info("device disconnected: its SAS token expired", "device", s.deviceID, "module", s.moduleID,
			"expiry", tok.Expiry().Format(time.RFC3339))
		s.cl.Stop(errTokenExpired)
	})
}

// errDisconnect makes mochi close the connection: IoT Hub drops a
// device that uses a topic it may not, or QoS 2.
var errDisconnect = packets.ErrRejectPacket

func (k *mqttHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	deviceID, moduleID := splitClientID(cl.ID)
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos > 1 {
			k.h.log.Info("device disconnected: QoS 2 publish", "client", cl.ID, "topic", pk.TopicName)
			return pk, errDisconnect
		}
		if !message.BelongsTo(pk.TopicName, deviceID, moduleID) {
			k.h.log.Info("device disconnected: publish to a topic it does not own", "client", cl.ID, "topic", pk.TopicName)
			return pk, errDisconnect
		}
	case packets.Subscribe:
		for _, f := range pk.Filters {
			if !allowedFilter(f.Filter, deviceID, moduleID) {
				k.h.log.Info("device disconnected: subscription it may not make", "client", cl.ID, "filter", f.Filter)
				return pk, errDisconnect
			}
		}
	case packets.Puback:
		if s := k.h.sessions.get(cl.ID); s != nil && s.cl == cl {
			k.h.completeC2D(s, pk.PacketID)
		}
	}
	return pk, nil
}

// allowedFilter reports whether a device or module may subscribe to
// filter: its own C2D or module-input filter, or one of the $iothub
// filters.
func allowedFilter(filter, deviceID, moduleID string) bool {
	switch filter {
	case message.MethodRequestFilter, message.TwinResponseFilter, message.TwinDesiredFilter:
		return true
	}
	if moduleID == "" {
		return filter == message.C2DFilter(deviceID)
	}
	return filter == message.ModuleInputFilter(deviceID, moduleID) ||
		filter == "devices/"+deviceID+"/modules/"+moduleID+"/#"
}

func (k *mqttHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if s := k.h.sessions.get(cl.ID); s != nil && s.cl == cl {
		k.h.kickC2D(s)
		k.h.sessions.changed(clientKey(s.deviceID, s.moduleID))
	}
}

func (k *mqttHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	s := k.h.sessions.get(cl.ID)
	if s == nil || s.cl != cl {
		return pk, packets.ErrRejectPacket
	}
	now := k.h.now()
	s.touch(now)
	t, err := message.ParseDeviceTopic(pk.TopicName)
	if err != nil {
		k.h.log.Info("device disconnected: unknown topic", "client", cl.ID, "err", err)
		cl.Stop(err)
		return pk, packets.ErrRejectPacket
	}
	switch t.Kind {
	case message.KindTelemetry:
		m := t.Message
		m.Body = bytes.Clone(pk.Payload)
		if pk.FixedHeader.Retain {
			if m.Properties == nil {
				m.Properties = map[string]string{}
			}
			m.Properties["mqtt-retain"] = "true"
		}
		if m.Size() > message.MaxTelemetrySize {
			k.h.log.Info("device disconnected: message over 256 KB", "client", cl.ID, "size", m.Size())
			cl.Stop(errors.New("message too large"))
			return pk, packets.ErrRejectPacket
		}
		ev := telemetry.Event{DeviceID: s.deviceID, ModuleID: s.moduleID, AuthMethod: s.authMethod,
			GenerationID: s.generationID, Message: m}
		if k.h.telemetry.Durable() {
			// The hub sends the PUBACK itself once the event is synced.
			k.h.storeTelemetry(s, ev, pk.FixedHeader.Qos, pk.PacketID)
			return pk, packets.ErrRejectPacket
		}
		// In memory: stored now; mochi sends the PUBACK when OnPublish
		// returns.
		if _, err := k.h.telemetry.Append(ev); err != nil {
			// Not stored, so not acknowledged: the device sends it again
			// when it reconnects.
			k.h.log.Info("device disconnected: telemetry not stored", "client", cl.ID, "err", err)
			cl.Stop(err)
			return pk, packets.ErrRejectPacket
		}
		k.h.meter.messageIn("mqtt")
	case message.KindMethodResponse:
		k.h.methods.respond(cl.ID, t.RequestID, t.Status, pk.Payload)
	case message.KindTwinGet:
		// Twin requests run here, on the connection's own goroutine,
		// where mochi calls OnPublish for each PUBLISH in the order
		// the device sent them: a device's patches are applied in its
		// order and a GET sees every patch sent before it.
		k.h.twinGet(s, t.RequestID)
	case message.KindTwinPatchReported:
		k.h.twinPatchReported(s, t.RequestID, pk.Payload)
	}
	// PUBACK (for QoS 1) without fanning the message out.
	return pk, packets.CodeSuccessIgnore
}

// write sends one packet to the session's client.
func (s *session) write(topic string, payload []byte, qos byte, pid uint16) error {
	return s.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    pid,
	})
}

// sessionTable holds the connected devices and lets callers wait for a
// device to connect and subscribe.
type sessionTable struct {
	mu       sync.Mutex
	byID     map[string]*session // the current connection of each client id
	byClient map[*mqtt.Client]*session
	waiters  map[string]chan struct{}
}

func newSessionTable() *sessionTable {
	return &sessionTable{byID: map[string]*session{}, byClient: map[*mqtt.Client]*session{}, waiters: map[string]chan struct{}{}}
}

// put makes s its client id's current session.
func (t *sessionTable) put(s *session) {
	t.mu.Lock()
	t.byID[s.cl.ID] = s
	t.byClient[s.cl] = s
	t.mu.Unlock()
	t.changed(s.cl.ID)
}

// remove forgets the session of cl and returns it, with current
// false when a newer connection of the same client id had replaced
// it (that one stays), or nil when cl has none.
func (t *sessionTable) remove(cl *mqtt.Client) (s *session, current bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s = t.byClient[cl]
	if s == nil {
		return nil, false
	}
	delete(t.byClient, cl)
	if t.byID[cl.ID] != s {
		return s, false
	}
	delete(t.byID, cl.ID)
	return s, true
}

func (t *sessionTable) get(id string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

func (t *sessionTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}

func (t *sessionTable) all() []*session {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*session, 0, len(t.byID))
	for _, s := range t.byID {
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

func logClosed(log *slog.Logger, what string, err error) {
	if err != nil && !errors.Is(err, mqtt.ErrConnectionClosed) {
		log.Debug(what, "err", err)
	}
}
