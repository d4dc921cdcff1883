package hub

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/message"
)

// mqttClient is one MQTT connection to the hub: what the hub keeps of
// it for its life, and its packet reads and writes, on mochi-mqtt's
// packet codec (github.com/mochi-mqtt/server/v2/packets). It holds only
// what the hub uses: no fan-out queue, inflight store, topic aliases or
// will, which mochi's Client allocates for every connection.
type mqttClient struct {
	// id is the client id: a device's or module's, or dpsClientPrefix
	// and a registration id for a provisioning client.
	id     string
	remote string // the remote address, for logs
	conn   net.Conn
	r      *bufio.Reader
	// version is the CONNECT's protocol level (3 or 4).
	version   byte
	keepalive uint16 // seconds; 0 for none

	// wmu orders writes, so that packets never interleave.
	wmu sync.Mutex

	stop   sync.Once
	closed atomic.Bool

	// subs are the filters subscribed to: the client's own, or its
	// persistent session's (mqttHook.session), set once its CONNECT is
	// accepted.
	subs *mqttSubs

	// dev is the device's or module's session, dps the provisioning
	// client's, once authenticated (set and read on the connection's
	// goroutine only).
	dev *mqttConn
	dps *dpsConn
}

// mqttReadBuffer is the size of the buffer a connection is read
// through: the TLS layer under it holds a whole record decrypted, so
// the smallest buffer bufio allows does. It reads a packet's fixed
// header, and the rest goes straight into the packet.
const mqttReadBuffer = 16

func newMQTTClient(c net.Conn) *mqttClient {
	return &mqttClient{conn: c, r: bufio.NewReaderSize(c, mqttReadBuffer), remote: c.RemoteAddr().String(), version: 4}
}

// errMQTTClosed is the error of a write to a connection that has ended.
var errMQTTClosed = errors.New("hub: mqtt: connection closed")

// errPacketTooLarge ends a connection that sends a packet over
// mqttMaxPacket.
var errPacketTooLarge = errors.New("hub: mqtt: packet too large")

// mqttMaxPacket bounds the packets the hub reads: a telemetry message
// of IoT Hub's largest size and room for its topic and properties.
const mqttMaxPacket = message.MaxTelemetrySize + 64*1024

// Stop ends the connection (once); reading and writing fail from then.
func (cl *mqttClient) Stop() {
	cl.stop.Do(func() {
		cl.closed.Store(true)
		_ = cl.conn.Close()
	})
}

// Closed reports whether Stop was called.
func (cl *mqttClient) Closed() bool { return cl.closed.Load() }

// readFixedHeader reads the next packet's fixed header (MQTT 3.1.1
// §2.2).
func (cl *mqttClient) readFixedHeader(fh *packets.FixedHeader) error {
	b, err := cl.r.ReadByte()
	if err != nil {
		return err
	}
	if err := fh.Decode(b); err != nil {
		return err
	}
	if fh.Remaining, _, err = packets.DecodeLength(cl.r); err != nil {
		return err
	}
	if fh.Remaining+1 > mqttMaxPacket {
		return errPacketTooLarge
	}
	return nil
}

// readPacket reads and decodes the rest of the packet fh starts. Strings
// in the packet share its bytes, which are its own.
func (cl *mqttClient) readPacket(fh *packets.FixedHeader) (pk packets.Packet, err error) {
	pk.ProtocolVersion = cl.version
	pk.FixedHeader = *fh
	b := make([]byte, fh.Remaining)
	if _, err := io.ReadFull(cl.r, b); err != nil {
		return pk, err
	}
	switch fh.Type {
	case packets.Connect:
		err = pk.ConnectDecode(b)
	case packets.Publish:
		err = pk.PublishDecode(b)
	case packets.Puback:
		err = pk.PubackDecode(b)
	case packets.Pubrec:
		err = pk.PubrecDecode(b)
	case packets.Pubrel:
		err = pk.PubrelDecode(b)
	case packets.Pubcomp:
		err = pk.PubcompDecode(b)
	case packets.Subscribe:
		err = pk.SubscribeDecode(b)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(b)
	case packets.Disconnect:
		err = pk.DisconnectDecode(b)
	case packets.Pingreq:
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP go to clients; AUTH is
		// MQTT 5's.
		err = fmt.Errorf("%w: a client may not send packet type %d", packets.ErrProtocolViolation, fh.Type)
	}
	return pk, err
}

// WritePacket encodes pk and writes it to the client, in one write.
func (cl *mqttClient) WritePacket(pk packets.Packet) error {
	if cl.Closed() {
		return errMQTTClosed
	}
	pk.ProtocolVersion = cl.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(&buf)
	default:
		err = fmt.Errorf("hub: mqtt: the hub does not send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	return cl.write(buf.Bytes())
}

// write writes b, whole packets, to the client under the write lock.
func (cl *mqttClient) write(b []byte) error {
	if cl.Closed() {
		return errMQTTClosed
	}
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	_, err := cl.conn.Write(b)
	return err
}

// connack answers the CONNECT with code and the Session Present flag,
// as MQTT 3.1.1 return codes (§3.2.2): a refusal given as an MQTT 5
// reason code is sent as the 3.1.1 code mochi maps it to
// (packets.V5CodesToV3), and never with a session.
func (cl *mqttClient) connack(code packets.Code, present bool) error {
	if v3, ok := packets.V5CodesToV3[code]; ok && code.Code >= packets.ErrUnspecifiedError.Code {
		code, present = v3, false
	}
	return cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code, SessionPresent: present})
}

// subscribed reports whether the client subscribed to filter (exactly
// that filter: the hub matches no wildcards, as a device subscribes to
// the filters IoT Hub documents).
func (cl *mqttClient) subscribed(filter string) bool { return cl.subs.has(filter) }

// mqttSubs is a set of subscribed filters (a few at most: the ones a
// device may subscribe to are fixed), safe for concurrent use; nil is
// empty.
type mqttSubs struct {
	mu      sync.Mutex
	filters []string
}

// add records filter (again: a no-op).
func (s *mqttSubs) add(filter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.filters, filter) {
		s.filters = append(s.filters, filter)
	}
}

// remove forgets filter.
func (s *mqttSubs) remove(filter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = slices.DeleteFunc(s.filters, func(f string) bool { return f == filter })
}

func (s *mqttSubs) has(filter string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.filters, filter)
}
