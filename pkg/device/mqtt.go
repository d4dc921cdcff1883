package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// conn is one MQTT 3.1.1 connection to the hub. paho's packets package
// encodes and decodes every packet; conn runs the session around them
// with as little as a simulated fleet of thousands can afford: one
// goroutine reads, writes happen on the caller's goroutine (one packet
// at a time), and the keep-alive is a timer. A packet that waits for
// its PUBACK or SUBACK has a waiter, which the reader calls with the
// acknowledgement (or the end of the connection with its loss), so
// that waiting needs no goroutine. An incoming PUBLISH runs its
// handler on a goroutine of its own and is acknowledged when the
// handler returns.
//
// A conn is made by dialMQTT and ends once: when reading, writing or
// the keep-alive fails (onLost is called) or when close is called
// (it is not).
type conn struct {
	nc   net.Conn
	lost chan struct{} // closed when the connection ended
	once sync.Once

	keepAlive   time.Duration
	ackTimeout  time.Duration // write deadline
	pingTimeout time.Duration // PINGRESP wait
	onPublish   func(*conn, *packets.PublishPacket)
	onLost      func(*conn, error)
	lastWrite   atomic.Int64 // unix nanoseconds
	lastRead    atomic.Int64
	pingPending atomic.Int64 // when the unanswered PINGREQ went, 0 if none

	wmu sync.Mutex // one packet at a time on nc

	mu      sync.Mutex
	timer   *time.Timer // keep-alive
	nextID  uint16
	waiting map[uint16]waiter // for a PUBACK or SUBACK, by packet id
	ended   bool              // end ran: await takes no more waiters
}

// waiter is told what became of a packet waiting for its
// acknowledgement (see conn.await): acked with the PUBACK or SUBACK,
// on the connection's reader, or lost when the connection ended first,
// on the goroutine that ended it (which may hold the write lock).
// Exactly one of the two is called, once, unless the wait is
// cancelled first. Neither may block: the reader waits for them.
type waiter interface {
	acked(cn *conn, p packets.ControlPacket)
	lost(cn *conn)
}

// ackChan is the waiter of a request whose goroutine waits for the
// acknowledgement: it has room for it, and watches cn.lost itself.
type ackChan chan packets.ControlPacket

func (ch ackChan) acked(_ *conn, p packets.ControlPacket) { ch <- p }
func (ackChan) lost(*conn)                                {}

// maxPingWait bounds the wait for a PINGRESP (paho's default too).
const maxPingWait = 10 * time.Second

// maxPacket bounds the packets the client reads: far above IoT Hub's
// largest (a 256 KB cloud-to-device message, a 32 KB twin document),
// below anything that would make a broken peer cost much memory.
const maxPacket = 1 << 20

var (
	// errPingTimeout ends a connection whose hub stopped answering.
	errPingTimeout = errors.New("device: the hub did not answer a keep-alive ping")
	// errTooManyAcks refuses a publish or subscribe when every packet
	// id is taken by one waiting for its acknowledgement.
	errTooManyAcks = errors.New("device: 65535 packets wait for their acknowledgement")
)

// dialMQTT sends CONNECT on nc and waits for the CONNACK, both within
// timeout. On return code 0 it starts the connection (reader and
// keep-alive) and returns it; otherwise it closes nc and returns the
// code, or an error when no CONNACK came.
func dialMQTT(nc net.Conn, cp *packets.ConnectPacket, timeout time.Duration, onPublish func(*conn, *packets.PublishPacket), onLost func(*conn, error)) (*conn, byte, error) {
	_ = nc.SetDeadline(time.Now().Add(timeout))
	if err := cp.Write(nc); err != nil {
		nc.Close()
		return nil, 0, fmt.Errorf("sending CONNECT: %w", err)
	}
	p, err := readPacket(nc)
	if err != nil {
		nc.Close()
		if errors.Is(err, io.EOF) {
			return nil, 0, errors.New("the hub closed the connection instead of answering CONNECT")
		}
		return nil, 0, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	ack, ok := p.(*packets.ConnackPacket)
	if !ok {
		nc.Close()
		return nil, 0, fmt.Errorf("the hub answered CONNECT with %s", packetName(p))
	}
	if ack.ReturnCode != packets.Accepted {
		nc.Close()
		return nil, ack.ReturnCode, nil
	}
	_ = nc.SetDeadline(time.Time{})
	cn := &conn{nc: nc, lost: make(chan struct{}), keepAlive: time.Duration(cp.Keepalive) * time.Second,
		ackTimeout: timeout, pingTimeout: min(timeout, maxPingWait), onPublish: onPublish, onLost: onLost}
	now := time.Now().UnixNano()
	cn.lastWrite.Store(now)
	cn.lastRead.Store(now)
	if cn.keepAlive > 0 {
		cn.mu.Lock()
		cn.timer = time.AfterFunc(cn.keepAlive, cn.keepAliveTick)
		cn.mu.Unlock()
	}
	go cn.readLoop()
	return cn, 0, nil
}

// readPacket reads one packet, refusing one larger than maxPacket
// before reading its body.
func readPacket(r io.Reader) (packets.ControlPacket, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, err
	}
	fh := packets.FixedHeader{MessageType: b[0] >> 4, Dup: b[0]&0x08 != 0, Qos: b[0] >> 1 & 0x03, Retain: b[0]&0x01 != 0}
	for shift := 0; ; shift += 7 {
		if shift > 21 {
			return nil, errors.New("malformed packet length")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		fh.RemainingLength |= int(b[0]&0x7f) << shift
		if b[0]&0x80 == 0 {
			break
		}
	}
	switch fh.MessageType {
	case packets.Connack, packets.Publish, packets.Puback, packets.Suback, packets.Pingresp:
	default:
		// Nothing else is sent to a client that publishes at QoS 0
		// and 1 and never unsubscribes.
		name := packets.PacketNames[fh.MessageType]
		if name == "" {
			name = fmt.Sprintf("type %d", fh.MessageType)
		}
		return nil, fmt.Errorf("unexpected %s packet from the hub", name)
	}
	if fh.RemainingLength > maxPacket {
		return nil, fmt.Errorf("a %d-byte packet from the hub is over the %d-byte limit", fh.RemainingLength, maxPacket)
	}
	cp, err := packets.NewControlPacketWithHeader(fh)
	if err != nil {
		return nil, err
	}
	body := make([]byte, fh.RemainingLength)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	// A bytes.Buffer, not a bytes.Reader: packets reads an empty
	// payload with Read, which a drained Buffer answers with nil.
	if err := cp.Unpack(bytes.NewBuffer(body)); err != nil {
		return nil, fmt.Errorf("malformed %s packet: %w", packetName(cp), err)
	}
	return cp, nil
}

// packetName is the name of p's type as MQTT writes it: "PUBACK".
func packetName(p packets.ControlPacket) string {
	if p == nil {
		return "nothing"
	}
	name := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", p), "*packets."), "Packet")
	return strings.ToUpper(name)
}

// readLoop reads packets until the connection ends.
func (cn *conn) readLoop() {
	for {
		p, err := readPacket(cn.nc)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("device: the hub closed the connection")
			}
			cn.fail(err)
			return
		}
		cn.lastRead.Store(time.Now().UnixNano())
		switch p := p.(type) {
		case *packets.PublishPacket:
			if p.Qos > 1 {
				cn.fail(fmt.Errorf("device: the hub sent a QoS %d PUBLISH", p.Qos))
				return
			}
			go cn.deliver(p)
		case *packets.PubackPacket:
			cn.complete(p.MessageID, p)
		case *packets.SubackPacket:
			cn.complete(p.MessageID, p)
		case *packets.PingrespPacket:
			cn.pingPending.Store(0)
		default:
			cn.fail(fmt.Errorf("device: unexpected %s packet from the hub", packetName(p)))
			return
		}
	}
}

// deliver runs the handler of an incoming PUBLISH, then acknowledges
// it if it came at QoS 1.
func (cn *conn) deliver(p *packets.PublishPacket) {
	cn.onPublish(cn, p)
	if p.Qos == 1 {
		ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		ack.MessageID = p.MessageID
		_ = cn.write(ack) // a failed write ends the connection
	}
}

// keepAliveTick runs on the keep-alive timer: it sends PINGREQ after
// keepAlive without traffic in either direction, and ends the
// connection when a PINGREQ stays unanswered for pingTimeout.
func (cn *conn) keepAliveTick() {
	if cn.isLost() {
		return
	}
	now := time.Now()
	if sent := cn.pingPending.Load(); sent != 0 {
		if due := time.Unix(0, sent).Add(cn.pingTimeout); now.Before(due) {
			cn.rearm(due.Sub(now))
			return
		}
		cn.fail(errPingTimeout)
		return
	}
	last := time.Unix(0, min(cn.lastWrite.Load(), cn.lastRead.Load()))
	if idle := now.Sub(last); idle < cn.keepAlive {
		cn.rearm(cn.keepAlive - idle)
		return
	}
	cn.pingPending.Store(now.UnixNano())
	if cn.write(packets.NewControlPacket(packets.Pingreq)) == nil {
		cn.rearm(cn.pingTimeout)
	}
}

// rearm runs keepAliveTick again after d.
func (cn *conn) rearm(d time.Duration) {
	cn.mu.Lock()
	cn.timer.Reset(d)
	cn.mu.Unlock()
}

// write sends one packet (see writeBytes).
func (cn *conn) write(p packets.ControlPacket) error {
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		return fmt.Errorf("device: encoding %s: %w", packetName(p), err)
	}
	return cn.writeBytes(b.Bytes())
}

// writeBytes sends one encoded packet, within ackTimeout. A failed
// write ends the connection and returns errLost, as does writing on an
// ended one.
func (cn *conn) writeBytes(b []byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	if cn.isLost() {
		return errLost
	}
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.ackTimeout))
	if _, err := cn.nc.Write(b); err != nil {
		cn.fail(fmt.Errorf("device: write: %w", err))
		return errLost
	}
	cn.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// await registers w to be told of the acknowledgement of a packet and
// returns the packet id to send it with. It fails with errLost once
// the connection ended (w is then never called) and with
// errTooManyAcks when every id is taken.
func (cn *conn) await(w waiter) (uint16, error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.ended {
		return 0, errLost
	}
	if cn.waiting == nil {
		cn.waiting = make(map[uint16]waiter)
	}
	if len(cn.waiting) >= 65535 {
		return 0, errTooManyAcks
	}
	for {
		cn.nextID++
		if cn.nextID == 0 {
			cn.nextID = 1
		}
		if _, used := cn.waiting[cn.nextID]; !used {
			break
		}
	}
	cn.waiting[cn.nextID] = w
	return cn.nextID, nil
}

// cancel forgets w's wait on id, if it is still waiting there (the id
// may have been acknowledged and given to another packet since): w is
// then not called.
func (cn *conn) cancel(id uint16, w waiter) {
	cn.mu.Lock()
	if cn.waiting[id] == w {
		delete(cn.waiting, id)
	}
	cn.mu.Unlock()
}

// complete hands an acknowledgement to the waiter of its packet id; an
// acknowledgement nobody waits for (the wait was cancelled) is
// dropped.
func (cn *conn) complete(id uint16, p packets.ControlPacket) {
	cn.mu.Lock()
	w := cn.waiting[id]
	delete(cn.waiting, id)
	cn.mu.Unlock()
	if w != nil {
		w.acked(cn, p)
	}
}

// request writes p with a fresh packet id (set by setID) and waits for
// its acknowledgement, the end of the connection (errLost) or ctx.
func (cn *conn) request(ctx context.Context, p packets.ControlPacket, setID func(uint16)) (packets.ControlPacket, error) {
	ch := make(ackChan, 1)
	id, err := cn.await(ch)
	if err != nil {
		return nil, err
	}
	defer cn.cancel(id, ch)
	setID(id)
	if err := cn.write(p); err != nil {
		return nil, err
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-cn.lost:
		return nil, errLost
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// publish0 sends a PUBLISH at QoS 0; errLost means the connection
// ended first.
func (cn *conn) publish0(topic string, payload []byte) error {
	return cn.writeBytes(appendPublish(nil, topic, 0, 0, payload))
}

// appendPublish appends a PUBLISH packet (MQTT 3.1.1, 3.3) to b: the
// fixed header, the topic, the packet id when qos > 0, the payload.
// paho's PublishPacket.Write makes the same bytes through half a
// dozen buffers; a fleet sends thousands a second, so here each
// message costs one allocation of the packet's size.
func appendPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	n := 2 + len(topic) + len(payload) // remaining length
	if qos > 0 {
		n += 2
	}
	if b == nil {
		b = make([]byte, 0, 1+varintLen(n)+n)
	}
	b = append(b, packets.Publish<<4|qos<<1)
	for {
		d := byte(n & 0x7f)
		if n >>= 7; n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			break
		}
	}
	b = append(b, byte(len(topic)>>8), byte(len(topic)))
	b = append(b, topic...)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	return append(b, payload...)
}

// varintLen is the length of n in MQTT's variable-length encoding
// (MQTT 3.1.1, 2.2.3).
func varintLen(n int) int {
	l := 1
	for ; n > 0x7f; n >>= 7 {
		l++
	}
	return l
}

// subscribe sends one SUBSCRIBE with every filter and returns the
// granted QoS per filter (0x80: refused).
func (cn *conn) subscribe(ctx context.Context, filters map[string]byte) (map[string]byte, error) {
	p := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	for f, q := range filters {
		p.Topics = append(p.Topics, f)
		p.Qoss = append(p.Qoss, q)
	}
	ack, err := cn.request(ctx, p, func(id uint16) { p.MessageID = id })
	if err != nil {
		return nil, err
	}
	codes := ack.(*packets.SubackPacket).ReturnCodes
	if len(codes) != len(p.Topics) {
		return nil, fmt.Errorf("device: SUBACK with %d return codes for %d filters", len(codes), len(p.Topics))
	}
	granted := make(map[string]byte, len(codes))
	for i, f := range p.Topics {
		granted[f] = codes[i]
	}
	return granted, nil
}

func (cn *conn) isLost() bool {
	select {
	case <-cn.lost:
		return true
	default:
		return false
	}
}

// end ends the connection once and tells every waiter still waiting
// for an acknowledgement that it is lost; it reports whether this call
// ended it.
func (cn *conn) end() bool {
	ended := false
	cn.once.Do(func() {
		ended = true
		close(cn.lost)
		cn.mu.Lock()
		cn.ended = true
		if cn.timer != nil {
			cn.timer.Stop()
		}
		waiting := cn.waiting
		cn.waiting = nil
		cn.mu.Unlock()
		cn.nc.Close()
		for _, w := range waiting {
			w.lost(cn)
		}
	})
	return ended
}

// fail ends the connection because of err and reports it to onLost.
func (cn *conn) fail(err error) {
	if cn.end() && cn.onLost != nil {
		go cn.onLost(cn, err)
	}
}

// close ends the connection without calling onLost: it sends
// DISCONNECT and closes the socket, within quiesce even when a write
// is stuck (the socket is closed under it); with quiesce 0 it just
// closes the socket.
func (cn *conn) close(quiesce time.Duration) {
	if quiesce <= 0 || cn.isLost() {
		cn.end()
		return
	}
	t := time.AfterFunc(quiesce, func() { cn.end() })
	defer t.Stop()
	cn.wmu.Lock()
	if !cn.isLost() {
		_ = cn.nc.SetWriteDeadline(time.Now().Add(quiesce))
		_ = packets.NewControlPacket(packets.Disconnect).Write(cn.nc)
	}
	cn.wmu.Unlock()
	cn.end()
}
