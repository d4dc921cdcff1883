package hub

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/hub/dps"
)

// DPS over MQTT (Azure docs, articles/iot-dps/iot-dps-mqtt-support.md;
// azure-iot-sdk-node provisioning/transport/mqtt/src/mqtt.ts): a
// provisioning client connects with the user name
// "{idScope}/registrations/{registrationId}/api-version=..." and the
// registration id as client id, subscribes to $dps/registrations/res/#,
// publishes its register and operation status requests to
// $dps/registrations/PUT/iotdps-register/?$rid={rid} and
// $dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id},
// and gets each answer on $dps/registrations/res/{status}/?$rid={rid}&retry-after={s}.
const (
	dpsResponseFilter = "$dps/registrations/res/#"
	dpsRegisterTopic  = "$dps/registrations/PUT/iotdps-register/"
	dpsStatusTopic    = "$dps/registrations/GET/iotdps-get-operationstatus/"
	dpsResponsePrefix = "$dps/registrations/res/"
)

// dpsClientPrefix starts the client id the hub gives a provisioning client
// (a space, which no device id may hold), so that a device registering
// over MQTT never takes over the hub session of the device with the same
// id, nor the other way round.
const dpsClientPrefix = "dps "

// isDPSClient reports whether cl is a provisioning client, which the IoT
// Hub hook leaves to dpsMQTTHook.
func isDPSClient(cl *mqttClient) bool { return strings.HasPrefix(cl.id, dpsClientPrefix) }

// dpsUsername reads "{idScope}/registrations/{registrationId}/api-version=..."
// (the api-version part optional).
func dpsUsername(u string) (idScope, registrationID string, ok bool) {
	segs := strings.SplitN(u, "/", 4)
	if len(segs) < 3 || segs[0] == "" || segs[2] == "" || !strings.EqualFold(segs[1], "registrations") {
		return "", "", false
	}
	return segs[0], segs[2], true
}

// dpsConn is a provisioning client's connection.
type dpsConn struct {
	idScope, registrationID string
	// idMismatch is set when the client id is not the registration id.
	idMismatch bool
	cred       dps.Credentials
}

// dpsMQTTHook serves DPS's device API over MQTT beside the IoT Hub
// hook, on the same listener; the connection loop (mqttserve.go) calls
// it for the clients it recognises.
type dpsMQTTHook struct {
	h *Hub
}

// OnConnect recognises a provisioning client by its user name (whose
// first segment is an ID scope, not one of the hub's host names) and
// moves it to a client id of its own.
func (k *dpsMQTTHook) OnConnect(cl *mqttClient, pk *packets.Packet) {
	host, _, _ := strings.Cut(string(pk.Connect.Username), "/")
	scope, regID, ok := dpsUsername(string(pk.Connect.Username))
	if !ok || k.h.knownHost(host) {
		return
	}
	cl.dps = &dpsConn{idScope: scope, registrationID: regID, idMismatch: cl.id != regID}
	cl.id = dpsClientPrefix + cl.id
}

func (k *dpsMQTTHook) OnConnectAuthenticate(cl *mqttClient, pk *packets.Packet) bool {
	c := cl.dps
	if c == nil {
		return false
	}
	log := k.h.log.With("component", "dps", "registrationId", c.registrationID, "remote", cl.remote)
	if c.idMismatch {
		log.Info("dps mqtt connect refused", "reason", "the client id is not the registration id of the user name", "clientId", strings.TrimPrefix(cl.id, dpsClientPrefix))
		return false
	}
	if len(pk.Connect.Password) > 0 {
		c.cred.Token = string(pk.Connect.Password)
	} else if st, ok := tlsState(cl.conn); ok {
		c.cred.Certificates = st.PeerCertificates
	}
	if err := k.h.dps.Authenticate(c.idScope, c.registrationID, &c.cred); err != nil {
		log.Info("dps mqtt connect refused", "err", err)
		return false
	}
	return true
}

// OnPacketRead keeps a provisioning client to DPS's topics: anything
// else ends its connection (errDisconnect).
func (k *dpsMQTTHook) OnPacketRead(cl *mqttClient, pk *packets.Packet) error {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos > 1 {
			k.h.log.Info("dps client disconnected: QoS 2 publish", "client", cl.id, "topic", pk.TopicName)
			return errDisconnect
		}
		if _, _, err := parseDPSRequest(pk.TopicName); err != nil {
			k.h.log.Info("dps client disconnected", "client", cl.id, "err", err)
			return errDisconnect
		}
	case packets.Subscribe:
		for _, f := range pk.Filters {
			if f.Filter != dpsResponseFilter {
				k.h.log.Info("dps client disconnected: it may subscribe to "+dpsResponseFilter+" only", "client", cl.id, "filter", f.Filter)
				return errDisconnect
			}
		}
	}
	return nil
}

// errDPSTopic is a publish to a topic of no DPS request.
var errDPSTopic = errors.New("hub: dps: the topic is neither " + dpsRegisterTopic + "?$rid={rid} nor " + dpsStatusTopic + "?$rid={rid}&operationId={id}")

// parseDPSRequest reads a request topic: whether it registers, and its
// query ($rid, operationId).
func parseDPSRequest(topic string) (register bool, q url.Values, err error) {
	base, query, _ := strings.Cut(topic, "?")
	switch base {
	case dpsRegisterTopic:
		register = true
	case dpsStatusTopic:
	default:
		return false, nil, errDPSTopic
	}
	if q, err = url.ParseQuery(query); err != nil || q.Get("$rid") == "" {
		return false, nil, errDPSTopic
	}
	if !register && q.Get("operationId") == "" {
		return false, nil, errDPSTopic
	}
	return register, q, nil
}

// OnPublish answers a register or operation status request on the
// client's response topic, after dpsReplyDelay. It runs on the
// connection's goroutine, so a client's requests are answered in order.
// It reports whether the loop acknowledges the request (QoS 1).
func (k *dpsMQTTHook) OnPublish(cl *mqttClient, pk *packets.Packet) (ack bool) {
	c := cl.dps
	register, q, err := parseDPSRequest(pk.TopicName)
	if err != nil {
		return false
	}
	var rep *dps.Reply
	if register {
		rep = k.h.dps.RegisterReply(c.idScope, c.registrationID, pk.Payload, c.cred)
	} else {
		rep = k.h.dps.OperationReply(c.idScope, c.registrationID, q.Get("operationId"), c.cred)
	}
	pauseBeforeDPSReply(k.h.ctx.Done())
	// $rid first, right after "?$": the C# SDK matches
	// ^\$dps/registrations/res/(.*?)/\?\$rid=(.*?)$ (azure-iot-sdk-csharp
	// provisioning/transport/mqtt/src/ProvisioningChannelHandlerAdapter.cs).
	topic := dpsResponsePrefix + strconv.Itoa(rep.Status) + "/?$rid=" + url.QueryEscape(q.Get("$rid"))
	if rep.RetryAfter > 0 {
		topic += "&retry-after=" + strconv.Itoa(rep.RetryAfter)
	}
	logClosed(k.h.log, "dps response", cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     rep.Body,
	}))
	return true
}

// OnDisconnect forgets the connection's provisioning state.
func (k *dpsMQTTHook) OnDisconnect(cl *mqttClient) { cl.dps = nil }
