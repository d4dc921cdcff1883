package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iotctl/iotctl/pkg/sas"
)

// leanDevice is a device connection of the lean bench client: MQTT
// 3.1.1 over TLS as the Azure IoT device SDKs speak it (the CONNECT of
// benchkit.ConnectDevice), each PUBLISH written on its own, as a device
// SDK writes it, with none of a general client's bookkeeping (paho's
// tokens, goroutines and stores cost the bench as much CPU as the hub
// spends on each message, on the same cores). Packets are encoded and
// decoded by paho's packet codec.
type leanDevice struct {
	conn *tls.Conn
	r    *bufio.Reader
}

// dialLean connects device id to the hub's MQTT listener at addr with
// a SAS token of key, as benchkit.ConnectDevice does.
// With src valid, it connects from that local address.
func dialLean(ctx context.Context, addr, host, id string, key []byte, tc *tls.Config, src netip.Addr) (*leanDevice, error) {
	tok, err := sas.Sign(sas.DeviceResource(host, id), key, &sas.SignOptions{TTL: time.Hour})
	if err != nil {
		return nil, err
	}
	c := tc.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	d := tls.Dialer{Config: c}
	if src.IsValid() {
		d.NetDialer = &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := nc.(*tls.Conn)
	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 4
	cp.ClientIdentifier, cp.Keepalive = id, 300
	cp.UsernameFlag, cp.Username = true, host+"/"+id+"/?api-version=2021-04-12"
	cp.PasswordFlag, cp.Password = true, []byte(tok.Encode())
	if err := cp.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	ld := &leanDevice{conn: conn, r: bufio.NewReader(conn)}
	pk, err := packets.ReadPacket(ld.r)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading CONNACK: %w", err)
	}
	if ca, ok := pk.(*packets.ConnackPacket); !ok || ca.ReturnCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK refused: %v", pk)
	}
	return ld, nil
}

// publishAll sends n PUBLISHes of body to topic at QoS 1, at most window
// unacknowledged, and returns the number acknowledged. It checks that
// the PUBACKs come in the order of the PUBLISHes (MQTT 3.1.1, 4.6).
func (ld *leanDevice) publishAll(ctx context.Context, topic string, body []byte, n, window int) (int64, error) {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.TopicName, p.Payload, p.MessageID = 1, topic, body, 1
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return 0, err
	}
	pkt := buf.Bytes()
	idAt := len(pkt) - len(body) - 2 // the packet id precedes the payload
	slots := make(chan struct{}, window)
	acked := make(chan error, 1)
	var count int64
	go func() {
		want := uint16(0)
		for range n {
			want = nextID(want)
			pk, err := packets.ReadPacket(ld.r)
			if err != nil {
				acked <- fmt.Errorf("reading PUBACK: %w", err)
				return
			}
			pa, ok := pk.(*packets.PubackPacket)
			if !ok || pa.MessageID != want {
				acked <- fmt.Errorf("got %v; want the PUBACK of packet %d", pk, want)
				return
			}
			count++
			<-slots
		}
		acked <- nil
	}()
	id := uint16(0)
	for range n {
		select {
		case slots <- struct{}{}:
		case err := <-acked:
			return count, fmt.Errorf("the hub stopped acknowledging: %v", err)
		case <-ctx.Done():
			ld.conn.Close()
			<-acked
			return count, ctx.Err()
		}
		id = nextID(id)
		pkt[idAt], pkt[idAt+1] = byte(id>>8), byte(id)
		if _, err := ld.conn.Write(pkt); err != nil {
			ld.conn.Close()
			<-acked
			return count, err
		}
	}
	select {
	case err := <-acked:
		return count, err
	case <-ctx.Done():
		ld.conn.Close()
		<-acked
		return count, ctx.Err()
	}
}

// nextID is the packet id after id: 1 to 65535, then 1 again.
func nextID(id uint16) uint16 {
	if id == 65535 {
		return 1
	}
	return id + 1
}

func (ld *leanDevice) close() {
	_ = packets.NewControlPacket(packets.Disconnect).Write(ld.conn)
	_ = ld.conn.Close()
}
