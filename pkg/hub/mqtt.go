package hub

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// mqttHook is the hub's MQTT device endpoint: it authenticates devices,
// keeps them to their own topics, and routes what they publish
// (telemetry, method responses, twin requests) and what they receive
// (method requests, twin responses and notifications, C2D messages) to
// the one connection concerned. The connection loop (mqttserve.go)
// calls its methods, named after the mochi-mqtt hooks they once were,
// on the connection's goroutine.
type mqttHook struct {
	h *Hub

	// sessions are the subscriptions of the clients that connected
	// with CleanSession 0, by client id, kept after they disconnect.
	smu      sync.Mutex
	sessions map[string]*mqttSubs
}

// session gives cl, whose CONNECT was accepted, its subscriptions, and
// reports whether they come from a session present (MQTT 3.1.1
// §3.1.2.4, §3.2.2.2). With CleanSession 0 a client keeps its
// subscriptions across connections: IoT Hub keeps a device's C2D
// subscription, so that it gets the messages sent while it was
// disconnected without subscribing again (the C# SDK's
// IotHubClientMqttSettings.CleanSession, false by default:
// https://learn.microsoft.com/dotnet/api/microsoft.azure.devices.client.iothubclientmqttsettings.cleansession).
// With CleanSession 1 it starts with none, and the hub forgets its
// persistent session.
func (k *mqttHook) session(cl *mqttClient, clean bool) (present bool) {
	k.smu.Lock()
	defer k.smu.Unlock()
	if clean {
		delete(k.sessions, cl.id)
		cl.subs = &mqttSubs{}
		return false
	}
	s, present := k.sessions[cl.id]
	if !present {
		if k.sessions == nil {
			k.sessions = map[string]*mqttSubs{}
		}
		s = &mqttSubs{}
		k.sessions[cl.id] = s
	}
	cl.subs = s
	return present
}

// mqttConn is one device's or module's MQTT connection: the core's
// core.Conn over an mqttClient.
type mqttConn struct {
	h  *Hub
	cl *mqttClient
	s  *core.Session

	mu       sync.Mutex
	nextPID  uint16
	inflight map[uint16]string // packet id → C2D lock token

	acks ackQueue // PUBACKs of telemetry stored
}

func (c *mqttConn) subscribed(filter string) bool { return c.cl.subscribed(filter) }

// Listening reports the device's subscriptions.
func (c *mqttConn) Listening(f core.Feature) bool {
	switch f {
	case core.Methods:
		return c.subscribed(message.MethodRequestFilter)
	case core.Desired:
		return c.subscribed(message.TwinDesiredFilter)
	}
	deviceID, moduleID := splitClientID(c.cl.id)
	if moduleID != "" {
		return c.subscribed(message.ModuleInputFilter(deviceID, moduleID))
	}
	return c.subscribed(message.C2DFilter(deviceID))
}

// SendMethod publishes a method request at QoS 0.
func (c *mqttConn) SendMethod(name, rid string, payload []byte) error {
	return c.write(message.MethodRequestTopic(name, rid), payload, 0, 0)
}

// SendDesired publishes a desired-properties patch at QoS 0.
func (c *mqttConn) SendDesired(version int64, body []byte) error {
	return c.write(message.TwinDesiredTopic(version), body, 0, 0)
}

// SendC2D publishes a C2D message at QoS 1; its PUBACK completes it.
// MQTT has no reject or abandon: IoT Hub completes a message on PUBACK.
func (c *mqttConn) SendC2D(m *registry.C2DMessage) error {
	deviceID, moduleID := splitClientID(c.cl.id)
	msg := core.ToMessage(m)
	topic := message.C2DTopic(deviceID, msg)
	if moduleID != "" {
		topic = message.ModuleInputTopic(deviceID, moduleID, msg.InputName, msg)
	}
	c.mu.Lock()
	c.nextPID++
	if c.nextPID == 0 {
		c.nextPID = 1
	}
	pid := c.nextPID
	c.inflight[pid] = m.LockToken
	c.mu.Unlock()
	if err := c.write(topic, m.Body, 1, pid); err != nil {
		c.mu.Lock()
		delete(c.inflight, pid)
		c.mu.Unlock()
		logClosed(c.h.log, "c2d delivery", err)
		return err
	}
	return nil
}

// Close ends the connection.
func (c *mqttConn) Close(reason error) { c.cl.Stop() }

// puback completes the C2D message delivered with packet id pid.
func (c *mqttConn) puback(pid uint16) {
	c.mu.Lock()
	lock, ok := c.inflight[pid]
	delete(c.inflight, pid)
	c.mu.Unlock()
	if ok {
		_ = c.s.CompleteC2D(lock) // the core logs a failure
	}
}

// conn returns cl's connection, or nil before its session is
// established and after it ended.
func (k *mqttHook) conn(cl *mqttClient) *mqttConn { return cl.dev }

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
func (k *mqttHook) OnConnect(cl *mqttClient, pk *packets.Packet) error {
	if pk.ProtocolVersion <= 4 {
		return nil
	}
	k.h.log.Info("mqtt connect refused", "client", cl.id, "remote", cl.remote,
		"reason", "unacceptable protocol version: IoT Hub speaks MQTT 3.1.1", "protocolVersion", pk.ProtocolVersion)
	cl.version = 4
	logClosed(k.h.log, "connack", cl.connack(packets.ErrUnsupportedProtocolVersion, false))
	return errProtocolVersion
}

func (k *mqttHook) OnConnectAuthenticate(cl *mqttClient, pk *packets.Packet) bool {
	if isDPSClient(cl) {
		return false // dpsmqtt.go
	}
	log := k.h.log.With("client", cl.id, "remote", cl.remote)
	host, clientID, ok := parseUsername(string(pk.Connect.Username))
	if !ok || clientID != cl.id {
		log.Info("mqtt connect refused", "reason", "username is not {host}/{clientId}/?api-version=... for this client id")
		return false
	}
	if !k.h.knownHost(host) {
		log.Info("mqtt connect refused", "reason", "username names another hub", "host", host)
		return false
	}
	deviceID, moduleID := splitClientID(cl.id)
	if strings.Contains(moduleID, "/") || deviceID == "" {
		log.Info("mqtt connect refused", "reason", "malformed client id")
		return false
	}
	if len(pk.Connect.Password) == 0 {
		// No password: an X.509 device, known by its client certificate.
		if err := k.h.authX509(cl.conn, deviceID, moduleID); err != nil {
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

// OnSessionEstablished attaches the device's session to the core, once
// its CONNACK is sent.
func (k *mqttHook) OnSessionEstablished(cl *mqttClient, pk *packets.Packet) {
	if isDPSClient(cl) {
		return
	}
	deviceID, moduleID := splitClientID(cl.id)
	o := core.AttachOptions{AuthMethod: "sas", Transport: "mqtt"}
	if len(pk.Connect.Password) == 0 {
		o.AuthMethod = "x509"
	} else if tok, err := sas.Parse(string(pk.Connect.Password)); err == nil {
		// A device renews its token by connecting again with a new one,
		// as the SDKs do over MQTT.
		o.Expiry = tok.Expiry()
	}
	c := &mqttConn{h: k.h, cl: cl, inflight: map[uint16]string{}}
	k.h.log.Debug("mqtt session established", "client", cl.id, "remote", cl.remote)
	c.s = k.h.core.Attach(core.Identity{DeviceID: deviceID, ModuleID: moduleID}, c, o)
	cl.dev = c
}

// OnDisconnect detaches the device's session, when the connection ended
// for err.
func (k *mqttHook) OnDisconnect(cl *mqttClient, err error) {
	if c := cl.dev; c != nil {
		cl.dev = nil
		c.s.Detach(err)
	}
}

// errDisconnect ends a connection: IoT Hub drops a device that uses a
// topic it may not, or QoS 2.
var errDisconnect = errors.New("hub: mqtt: topic or QoS not allowed")

// OnPacketRead refuses, with errDisconnect, what a device may not send,
// and completes a C2D message on its PUBACK.
func (k *mqttHook) OnPacketRead(cl *mqttClient, pk *packets.Packet) error {
	deviceID, moduleID := splitClientID(cl.id)
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos > 1 {
			k.h.log.Info("device disconnected: QoS 2 publish", "client", cl.id, "topic", pk.TopicName)
			return errDisconnect
		}
		if !message.BelongsTo(pk.TopicName, deviceID, moduleID) {
			k.h.log.Info("device disconnected: publish to a topic it does not own", "client", cl.id, "topic", pk.TopicName)
			return errDisconnect
		}
	case packets.Subscribe:
		for _, f := range pk.Filters {
			if !allowedFilter(f.Filter, deviceID, moduleID) {
				k.h.log.Info("device disconnected: subscription it may not make", "client", cl.id, "filter", f.Filter)
				return errDisconnect
			}
		}
	case packets.Puback:
		if c := k.conn(cl); c != nil {
			c.puback(pk.PacketID)
		}
	}
	return nil
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

// OnSubscribed tells the core that what the device listens to changed,
// after its SUBACK.
func (k *mqttHook) OnSubscribed(cl *mqttClient) {
	if c := k.conn(cl); c != nil {
		c.s.Changed()
	}
}

// OnPublish routes a device's PUBLISH and reports whether the
// connection loop acknowledges it now: telemetry is acknowledged by
// the hub once stored (queueAck), or not at all when it was not.
func (k *mqttHook) OnPublish(cl *mqttClient, pk *packets.Packet) (ack bool) {
	c := k.conn(cl)
	if c == nil {
		return false
	}
	s := c.s
	s.Touch()
	t, err := message.ParseDeviceTopic(pk.TopicName)
	if err != nil {
		k.h.log.Info("device disconnected: unknown topic", "client", cl.id, "err", err)
		cl.Stop()
		return false
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
		qos, pid := pk.FixedHeader.Qos, pk.PacketID
		pending, err := s.Ingest(m, func(err error) {
			// On disk: the hub sends the PUBACK itself once the event
			// is synced.
			if err == nil && qos > 0 {
				k.h.queueAck(c, pid)
			}
		})
		switch {
		case errors.Is(err, core.ErrTooLarge):
			k.h.log.Info("device disconnected: message over 256 KB", "client", cl.id, "size", m.Size())
			cl.Stop()
			return false
		case err != nil:
			// Not stored, so not acknowledged (the core closed the
			// connection): the device sends it again when it reconnects.
			return false
		case pending:
			return false
		}
		// In memory: stored now. The PUBACK goes through the same queue
		// as on disk, in one write with the others queued meanwhile.
		if qos > 0 {
			k.h.queueAck(c, pid)
		}
		return false
	case message.KindMethodResponse:
		s.MethodResponse(t.RequestID, t.Status, pk.Payload)
	case message.KindTwinGet:
		// Twin requests run here, on the connection's own goroutine,
		// where the loop calls OnPublish for each PUBLISH in the order
		// the device sent them: a device's patches are applied in its
		// order and a GET sees every patch sent before it.
		status, body := s.TwinGet()
		logClosed(k.h.log, "twin response", c.write(message.TwinResponseTopic(status, t.RequestID, 0), body, 0, 0))
	case message.KindTwinPatchReported:
		status, version := s.PatchReported(pk.Payload)
		logClosed(k.h.log, "twin response", c.write(message.TwinResponseTopic(status, t.RequestID, version), nil, 0, 0))
	}
	// PUBACK (for QoS 1) now.
	return true
}

// write sends one packet to the device.
func (c *mqttConn) write(topic string, payload []byte, qos byte, pid uint16) error {
	return c.cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    pid,
	})
}

func logClosed(log *slog.Logger, what string, err error) {
	if err != nil && !errors.Is(err, errMQTTClosed) {
		log.Debug(what, "err", err)
	}
}
