package hub

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// The hub serves each MQTT connection on one goroutine of its own, on
// mochi-mqtt's packet codec, without mochi's Server. mochi gives a
// connection two goroutines, a reader and a writer for its fan-out
// queue, which the hub never uses (every PUBLISH is routed to the core
// and every packet to a device is written directly), and reads packets
// inside attachClient and Client.Read, whose frames hold several
// packets.Packet values: a reader parked there uses about 5 KB of
// stack, so the runtime, which shrinks a stack only while less than a
// quarter of it is in use, keeps it at 16 KB, and the idle writer at 8
// KB; its Client also allocates maps and a context for features the
// hub does not use. Here a connection waits for its next packet in
// mqttConnLoop's small frame, a packet is handled in mqttPacket below
// it, whose frame is gone once the packet is, and mqttClient holds what
// the hub uses.
//
// What mochi's server did and the hub still does, in the same order
// (github.com/mochi-mqtt/server/v2 server.go: attachClient,
// validateConnect, processPacket and the process* functions): the
// CONNECT first, validated, then OnConnect and OnConnectAuthenticate
// (the IoT Hub hook's, then DPS's), CONNACK, OnSessionEstablished,
// packets (each through OnPacketRead first) until the connection ends,
// and OnDisconnect. What the hub leaves out is what it never used: the
// topic tree and fan-out, retained messages, wills (IoT Hub's device
// endpoint does not publish them to other devices either), session
// takeover by client id (the core replaces a connection of the same
// identity, core.ErrReplaced; a persistent session's subscriptions
// carry over, mqttHook.session), QoS 2 (refused in OnPacketRead) and
// MQTT 5 (refused in OnConnect).

// connectTimeout bounds the wait for a client's CONNECT after the TLS
// handshake; the mux has seen its first byte already.
const connectTimeout = handshakeTimeout

// runMQTT serves one MQTT connection until it ends, and returns why.
func (h *Hub) runMQTT(c net.Conn) error {
	cl := newMQTTClient(c)
	defer cl.Stop()
	ok, err := h.mqttConnect(cl)
	if !ok {
		return err
	}
	err = h.mqttConnLoop(cl)
	h.mqttHook.OnDisconnect(cl, err)
	h.dpsHook.OnDisconnect(cl)
	return err
}

// mqttConnect reads the CONNECT, authenticates the client and answers
// with a CONNACK. It reports whether the session is established; when
// it is not, the error says why.
func (h *Hub) mqttConnect(cl *mqttClient) (bool, error) {
	_ = cl.conn.SetDeadline(time.Now().Add(connectTimeout))
	var fh packets.FixedHeader
	if err := cl.readFixedHeader(&fh); err != nil {
		return false, err
	}
	if fh.Type != packets.Connect {
		return false, packets.ErrProtocolViolationRequireFirstConnect // MQTT 3.1.1 §3.1
	}
	pk, err := cl.readPacket(&fh)
	if err != nil {
		return false, err
	}
	cl.version = pk.ProtocolVersion
	cl.keepalive = pk.Connect.Keepalive
	// mochi's decoder returns strings that share the packet's bytes
	// (packets/codec.go, bytesToString): the client id, kept for the
	// connection's life, is copied, so that it does not keep the
	// CONNECT, and the password in it.
	cl.id = strings.Clone(pk.Connect.ClientIdentifier)
	if code := validateConnect(&pk); code != packets.CodeSuccess {
		if err := cl.connack(code, false); err != nil {
			return false, err
		}
		return false, code
	}
	if err := h.mqttHook.OnConnect(cl, &pk); err != nil {
		return false, err
	}
	h.dpsHook.OnConnect(cl, &pk)
	if !h.mqttHook.OnConnectAuthenticate(cl, &pk) && !h.dpsHook.OnConnectAuthenticate(cl, &pk) {
		if err := cl.connack(packets.ErrBadUsernameOrPassword, false); err != nil {
			return false, err
		}
		return false, packets.ErrBadUsernameOrPassword
	}
	present := h.mqttHook.session(cl, pk.Connect.Clean)
	if err := cl.connack(packets.CodeSuccess, present); err != nil {
		return false, err
	}
	h.mqttHook.OnSessionEstablished(cl, &pk)
	return true, nil
}

// validateConnect checks what mochi's Server.validateConnect checked
// with the hub's capabilities: the CONNECT's own rules
// (Packet.ConnectValidate), a client id for a session that is not clean
// (MQTT 3.1.1 §3.1.3.1), MQTT 3.1 or later, and a will within QoS 1 and
// without retain, which IoT Hub does not offer.
func validateConnect(pk *packets.Packet) packets.Code {
	if code := pk.ConnectValidate(); code != packets.CodeSuccess {
		return code
	}
	switch {
	case pk.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "":
		return packets.ErrUnspecifiedError
	case pk.ProtocolVersion < 3:
		return packets.ErrUnsupportedProtocolVersion
	case pk.Connect.WillFlag && pk.Connect.WillQos > 1:
		return packets.ErrQosNotSupported
	case pk.Connect.WillFlag && pk.Connect.WillRetain:
		return packets.ErrRetainNotSupported
	}
	return packets.CodeSuccess
}

// mqttConnLoop reads and handles packets until the connection ends: nil
// after a DISCONNECT, else the error that ended it. Each read waits at
// most one and a half keep-alive periods (MQTT 3.1.1 §3.1.2.10), none
// for a keep-alive of 0.
func (h *Hub) mqttConnLoop(cl *mqttClient) error {
	for !cl.Closed() {
		var deadline time.Time
		if ka := time.Duration(cl.keepalive) * time.Second; ka > 0 {
			deadline = time.Now().Add(ka + ka/2)
		}
		_ = cl.conn.SetDeadline(deadline)
		var fh packets.FixedHeader
		if err := cl.readFixedHeader(&fh); err != nil {
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
func (h *Hub) mqttPacket(cl *mqttClient, fh *packets.FixedHeader) error {
	pk, err := cl.readPacket(fh)
	if err != nil {
		return err
	}
	// OnPacketRead refuses what a client may not send, and completes a
	// C2D message on its PUBACK.
	if cl.dps != nil {
		err = h.dpsHook.OnPacketRead(cl, &pk)
	} else {
		err = h.mqttHook.OnPacketRead(cl, &pk)
	}
	if err != nil {
		return err
	}
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return h.mqttPublish(cl, &pk)
	case packets.Puback:
		return nil
	case packets.Subscribe:
		return h.mqttSubscribe(cl, &pk)
	case packets.Unsubscribe:
		if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
			return code
		}
		for _, f := range pk.Filters {
			cl.subs.remove(f.Filter)
		}
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, PacketID: pk.PacketID})
	case packets.Pingreq:
		return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})
	case packets.Disconnect:
		cl.Stop() // MQTT 3.1.1 §3.14.4
		return nil
	case packets.Connect:
		return packets.ErrProtocolViolationSecondConnect // MQTT 3.1.1 §3.1.0
	case packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return errQoS2Flow
	}
	return packets.ErrProtocolViolation
}

// mqttPublish hands a PUBLISH to its hook and acknowledges it as the
// hook says: errNoAck leaves the PUBACK to the hook (telemetry is
// acknowledged once stored) or to no one; otherwise a QoS 1 PUBLISH is
// acknowledged now. Nothing is fanned out.
func (h *Hub) mqttPublish(cl *mqttClient, pk *packets.Packet) error {
	if code := pk.PublishValidate(0); code != packets.CodeSuccess {
		return code
	}
	var ack bool
	if cl.dps != nil {
		ack = h.dpsHook.OnPublish(cl, pk)
	} else {
		ack = h.mqttHook.OnPublish(cl, pk)
	}
	if !ack || pk.FixedHeader.Qos == 0 {
		return nil
	}
	return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
}

// mqttSubscribe records a SUBSCRIBE's filters (OnPacketRead refused any
// the client may not have), grants each at most QoS 1 (MQTT 3.1.1
// §3.9.3), answers with the SUBACK and then tells the hook, so that
// what the subscription lets through (a C2D message waiting) follows
// the SUBACK.
func (h *Hub) mqttSubscribe(cl *mqttClient, pk *packets.Packet) error {
	if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
		return code
	}
	granted := make([]byte, len(pk.Filters))
	for i, sub := range pk.Filters {
		cl.subs.add(strings.Clone(sub.Filter))
		granted[i] = min(sub.Qos, 1)
	}
	err := cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pk.PacketID, ReasonCodes: granted})
	if err != nil {
		return err
	}
	h.mqttHook.OnSubscribed(cl)
	return nil
}
