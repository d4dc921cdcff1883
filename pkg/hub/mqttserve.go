package hub

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// The hub runs each MQTT connection on one goroutine of its own, over
// mochi-mqtt's Client (its state, lock and packet writes) and packet
// codec, instead of mochi's Server.EstablishConnection. mochi gives a
// connection two goroutines, a reader and a writer for its fan-out
// queue, which the hub never uses (every PUBLISH is routed to the core
// and every packet to a device is written directly), and reads packets
// inside attachClient and Client.Read, whose frames hold several
// packets.Packet values: a reader parked there uses about 5 KB of
// stack, so the runtime, which shrinks a stack only while less than a
// quarter of it is in use, keeps it at 16 KB, and the idle writer at 8
// KB. Here a connection waits for its next packet in mqttConnLoop's
// small frame, and a packet is handled in mqttPacket below it, whose
// frame is gone once the packet is.
//
// What mochi's server did and the hub still does, in the same order
// (github.com/mochi-mqtt/server/v2 server.go: attachClient,
// validateConnect, processPacket and the process* functions):
// the CONNECT first, validated, then OnConnect and
// OnConnectAuthenticate, CONNACK, OnSessionEstablished, packets until
// the connection ends, and OnDisconnect. What the hub leaves out is
// what it never used: the topic tree and fan-out, retained messages,
// wills (IoT Hub's device endpoint does not publish them to other
// devices either), session takeover by client id (the core replaces a
// connection of the same identity, core.ErrReplaced), QoS 2 (refused
// in OnPacketRead) and MQTT 5 (refused in OnConnect).

// mqttListener names the hub's MQTT connections in mochi's Client.
const mqttListener = "mqtt"

// connectTimeout bounds the wait for a client's CONNECT after the TLS
// handshake; the mux has seen its first byte already.
const connectTimeout = handshakeTimeout

// runMQTT serves one MQTT connection until it ends, and returns why.
func (h *Hub) runMQTT(c net.Conn) error {
	cl := h.mqtt.NewClient(c, mqttListener, "", false)
	defer cl.Stop(nil)
	ok, err := h.mqttConnect(cl)
	if !ok {
		return err
	}
	err = h.mqttConnLoop(cl)
	h.mqttHook.OnDisconnect(cl, err, true)
	h.dpsHook.OnDisconnect(cl, err, true)
	return err
}

// mqttConnect reads the CONNECT, authenticates the client and answers
// with a CONNACK. It reports whether the session is established; when
// it is not, the error says why.
func (h *Hub) mqttConnect(cl *mqtt.Client) (bool, error) {
	_ = cl.Net.Conn.SetDeadline(time.Now().Add(connectTimeout))
	var fh packets.FixedHeader
	if err := cl.ReadFixedHeader(&fh); err != nil {
		return false, err
	}
	if fh.Type != packets.Connect {
		return false, packets.ErrProtocolViolationRequireFirstConnect // MQTT 3.1.1 §3.1
	}
	pk, err := cl.ReadPacket(&fh)
	if err != nil {
		return false, err
	}
	cl.ParseConnect(mqttListener, pk)
	if code := h.validateConnect(cl, &pk); code != packets.CodeSuccess {
		if err := h.mqtt.SendConnack(cl, code, false, nil); err != nil {
			return false, err
		}
		return false, code
	}
	// mochi's decoder returns strings and byte slices that share the
	// CONNECT's bytes (packets/codec.go, bytesToString): the client id
	// and user name kept for the connection's life are copied, so that
	// they no longer hold the CONNECT, and the password in it. The hub
	// publishes no will (see above), so it keeps none.
	cl.ID = strings.Clone(cl.ID)
	cl.Properties.Username = bytes.Clone(cl.Properties.Username)
	cl.Properties.Will = mqtt.Will{}
	if err := h.mqttHook.OnConnect(cl, pk); err != nil {
		return false, err
	}
	if err := h.dpsHook.OnConnect(cl, pk); err != nil {
		return false, err
	}
	if !h.mqttHook.OnConnectAuthenticate(cl, pk) && !h.dpsHook.OnConnectAuthenticate(cl, pk) {
		if err := h.mqtt.SendConnack(cl, packets.ErrBadUsernameOrPassword, false, nil); err != nil {
			return false, err
		}
		return false, packets.ErrBadUsernameOrPassword
	}
	if err := h.mqtt.SendConnack(cl, packets.CodeSuccess, false, nil); err != nil {
		h.dpsHook.OnDisconnect(cl, err, true)
		return false, err
	}
	h.mqttHook.OnSessionEstablished(cl, pk)
	return true, nil
}

// validateConnect checks what mochi's Server.validateConnect checked
// for the hub's capabilities: the CONNECT's own rules, a client id for
// a session that is not clean (MQTT 3.1.1 §3.1.3.1), the protocol
// level, and a will within QoS 1 and without retain, which the hub
// does not offer.
func (h *Hub) validateConnect(cl *mqtt.Client, pk *packets.Packet) packets.Code {
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return code
	}
	caps := h.mqtt.Options.Capabilities
	switch {
	case cl.Properties.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "":
		return packets.ErrUnspecifiedError
	case cl.Properties.ProtocolVersion < caps.MinimumProtocolVersion:
		return packets.ErrUnsupportedProtocolVersion
	case cl.Properties.Will.Qos > caps.MaximumQos:
		return packets.ErrQosNotSupported
	case cl.Properties.Will.Retain && caps.RetainAvailable == 0:
		return packets.ErrRetainNotSupported
	}
	return packets.CodeSuccess
}

// mqttConnLoop reads and handles packets until the connection ends: nil
// after a DISCONNECT, else the error that ended it. Each read waits at
// most one and a half keep-alive periods (MQTT 3.1.1 §3.1.2.10), none
// for a keep-alive of 0.
func (h *Hub) mqttConnLoop(cl *mqtt.Client) error {
	for !cl.Closed() {
		var deadline time.Time
		if ka := time.Duration(cl.State.Keepalive) * time.Second; ka > 0 {
			deadline = time.Now().Add(ka + ka/2)
		}
		_ = cl.Net.Conn.SetDeadline(deadline)
		var fh packets.FixedHeader
		if err := cl.ReadFixedHeader(&fh); err != nil {
			return err
		}
		if err := h.mqttPacket(cl, &fh); err != nil {
			return err
		}
	}
	return nil
}

// errQoS2Flow ends a connection that sends PUBREC, PUBREL or PUBCOMP:
// the hub takes part in no QoS 2 exchange (IoT Hub closes the
// connection of a device that publishes at QoS 2,
// https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub).
var errQoS2Flow = errors.New("hub: mqtt: QoS 2 is not supported")

// mqttPacket reads the rest of the packet fh starts and handles it; an
// error ends the connection. It is not inlined into mqttConnLoop so
// that its frame, which holds packets, is off the stack while the
// connection waits.
//
//go:noinline
func (h *Hub) mqttPacket(cl *mqtt.Client, fh *packets.FixedHeader) error {
	// ReadPacket runs the hooks' OnPacketRead, which refuses what a
	// device may not send.
	pk, err := cl.ReadPacket(fh)
	if err != nil {
		return err
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return h.mqttPublish(cl, &pk)
	case packets.Puback:
		return nil // OnPacketRead completed the C2D message
	case packets.Subscribe:
		return h.mqttSubscribe(cl, &pk)
	case packets.Unsubscribe:
		if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
			return code
		}
		for _, f := range pk.Filters {
			cl.State.Subscriptions.Delete(f.Filter)
		}
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, PacketID: pk.PacketID})
	case packets.Pingreq:
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})
	case packets.Disconnect:
		cl.Stop(packets.CodeDisconnect) // MQTT 3.1.1 §3.14.4
		return nil
	case packets.Connect:
		return packets.ErrProtocolViolationSecondConnect // MQTT 3.1.1 §3.1.0
	case packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return errQoS2Flow
	}
	return packets.ErrProtocolViolation
}

// mqttPublish hands a PUBLISH to the hooks and acknowledges it as they
// say: packets.ErrRejectPacket leaves the PUBACK to the hook (telemetry
// is acknowledged once stored) or to no one, anything else is
// acknowledged now (QoS 1). Nothing is fanned out.
func (h *Hub) mqttPublish(cl *mqtt.Client, pk *packets.Packet) error {
	if code := pk.PublishValidate(h.mqtt.Options.Capabilities.TopicAliasMaximum); code != packets.CodeSuccess {
		return code
	}
	if !mqtt.IsValidFilter(pk.TopicName, true) {
		return nil // dropped, as mochi drops a publish to a filter
	}
	var err error
	if isDPSClient(cl) {
		_, err = h.dpsHook.OnPublish(cl, *pk)
	} else {
		_, err = h.mqttHook.OnPublish(cl, *pk)
	}
	if errors.Is(err, packets.ErrRejectPacket) || pk.FixedHeader.Qos == 0 {
		return nil
	}
	return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
}

// mqttSubscribe records a SUBSCRIBE's filters (OnPacketRead refused any
// the client may not have), grants each at most QoS 1 (0x80 for an
// invalid filter, MQTT 3.1.1 §3.9.3), answers with the SUBACK and then
// tells the hook, so that what the subscription lets through (a C2D
// message waiting) follows the SUBACK.
func (h *Hub) mqttSubscribe(cl *mqtt.Client, pk *packets.Packet) error {
	if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
		return code
	}
	maxQoS := h.mqtt.Options.Capabilities.MaximumQos
	granted := make([]byte, len(pk.Filters))
	for i, sub := range pk.Filters {
		if !mqtt.IsValidFilter(sub.Filter, false) {
			granted[i] = packets.ErrUnspecifiedError.Code
			continue
		}
		cl.State.Subscriptions.Add(sub.Filter, sub)
		granted[i] = min(sub.Qos, maxQoS)
	}
	err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pk.PacketID, ReasonCodes: granted})
	if err != nil {
		return err
	}
	if !isDPSClient(cl) {
		h.mqttHook.OnSubscribed(cl, *pk, granted)
	}
	return nil
}
