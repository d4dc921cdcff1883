package amqp1

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/encoding"
	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// rawPeer is a hand-driven client for feeding the server bad input.
type rawPeer struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func newRawPeer(t testing.TB, opts *ConnOptions) (*rawPeer, *served) {
	t.Helper()
	cli, srv := net.Pipe()
	s := serveBackground(testCtx(t), srv, opts)
	p := &rawPeer{t: t, nc: cli, br: bufio.NewReader(cli)}
	t.Cleanup(func() { _ = cli.Close() })
	return p, s
}

func (p *rawPeer) write(b []byte) {
	p.t.Helper()
	_ = p.nc.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("raw write: %v", err)
	}
}

func (p *rawPeer) writeFrame(typ uint8, ch uint16, body frames.Body, payload []byte) {
	p.t.Helper()
	b, err := frames.Append(nil, typ, ch, body, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.write(b)
}

func (p *rawPeer) readHeader() []byte {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(testTimeout))
	h := make([]byte, 8)
	if _, err := io.ReadFull(p.br, h); err != nil {
		p.t.Fatalf("reading protocol header: %v", err)
	}
	return h
}

// readFrame returns the next frame; a nil body is a heartbeat.
func (p *rawPeer) readFrame() (frames.Header, frames.Body) {
	p.t.Helper()
	_ = p.nc.SetReadDeadline(time.Now().Add(testTimeout))
	hb := make([]byte, 8)
	if _, err := io.ReadFull(p.br, hb); err != nil {
		p.t.Fatalf("reading frame header: %v", err)
	}
	h, err := frames.ParseHeader(hb, 1<<20)
	if err != nil {
		p.t.Fatal(err)
	}
	body := make([]byte, h.Size-8)
	if _, err := io.ReadFull(p.br, body); err != nil {
		p.t.Fatalf("reading frame body: %v", err)
	}
	fb, err := frames.Parse(h.Type, body[int(h.DataOffset)*4-8:])
	if err != nil {
		p.t.Fatalf("parsing server frame: %v", err)
	}
	return h, fb
}

// next returns the next non-heartbeat frame body.
func (p *rawPeer) next() frames.Body {
	p.t.Helper()
	for {
		if _, b := p.readFrame(); b != nil {
			return b
		}
	}
}

// open performs the bare AMQP handshake with the given idle time-out (ms).
func (p *rawPeer) open(idle uint32) *frames.Open {
	p.t.Helper()
	p.write(protoHeader(protoAMQP))
	if h := p.readHeader(); !bytes.Equal(h, protoHeader(protoAMQP)) {
		p.t.Fatalf("server header %q", h)
	}
	p.writeFrame(frames.TypeAMQP, 0, &frames.Open{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 10, IdleTimeout: idle}, nil)
	o, ok := p.next().(*frames.Open)
	if !ok {
		p.t.Fatal("server did not answer with open")
	}
	return o
}

func (p *rawPeer) begin() {
	p.t.Helper()
	p.writeFrame(frames.TypeAMQP, 0, &frames.Begin{NextOutgoingID: 0, IncomingWindow: 100, OutgoingWindow: 100, HandleMax: 10}, nil)
	if _, ok := p.next().(*frames.Begin); !ok {
		p.t.Fatal("server did not answer with begin")
	}
}

// expectClose reads until a close frame and checks its condition.
func (p *rawPeer) expectClose(cond ErrCond) {
	p.t.Helper()
	for {
		b := p.next()
		if cl, ok := b.(*frames.Close); ok {
			if cl.Error == nil || ErrCond(cl.Error.Condition) != cond {
				p.t.Fatalf("close error = %+v; want %s", cl.Error, cond)
			}
			return
		}
	}
}

func rawFrame(typ uint8, ch uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = append(b, 2, typ, byte(ch>>8), byte(ch))
	return append(b, body...)
}

func TestBadInputAfterOpenClosesConnection(t *testing.T) {
	tests := []struct {
		name string
		send func(p *rawPeer)
		want ErrCond
	}{
		{"garbage", func(p *rawPeer) { p.write([]byte("hello, this is not a frame")) }, ErrCondFramingError},
		{"oversize frame", func(p *rawPeer) { p.write([]byte{0, 2, 0, 0, 2, 0, 0, 0}) }, ErrCondFramingError},
		{"data offset below 2", func(p *rawPeer) { p.write([]byte{0, 0, 0, 8, 1, 0, 0, 0}) }, ErrCondFramingError},
		{"unknown performative", func(p *rawPeer) { p.write(rawFrame(0, 0, []byte{0x00, 0x53, 0x33, 0x45})) }, ErrCondDecodeError},
		{"truncated list", func(p *rawPeer) { p.write(rawFrame(0, 0, []byte{0x00, 0x53, 0x11, 0xc0, 0x09, 0x04})) }, ErrCondDecodeError},
		{"attach without name", func(p *rawPeer) {
			p.begin()
			p.write(rawFrame(0, 0, []byte{0x00, 0x53, 0x12, 0xc0, 0x04, 0x03, 0x40, 0x43, 0x41}))
		}, ErrCondInvalidField},
		{"second open", func(p *rawPeer) {
			p.writeFrame(frames.TypeAMQP, 0, &frames.Open{ContainerID: "again"}, nil)
		}, ErrCondIllegalState},
		{"frame on a channel without session", func(p *rawPeer) {
			p.writeFrame(frames.TypeAMQP, 3, &frames.Flow{IncomingWindow: 1, NextOutgoingID: 0, OutgoingWindow: 1}, nil)
		}, ErrCondIllegalState},
		{"sasl frame after open", func(p *rawPeer) {
			p.writeFrame(frames.TypeSASL, 0, &frames.SASLInit{Mechanism: "PLAIN"}, nil)
		}, ErrCondFramingError},
		{"attach handle above handle-max", func(p *rawPeer) {
			p.begin()
			p.writeFrame(frames.TypeAMQP, 0, &frames.Attach{Name: "x", Handle: 5000, Role: frames.RoleSender, Target: &frames.Target{}}, nil)
		}, ErrCondFramingError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s := newRawPeer(t, nil)
			p.open(0)
			tt.send(p)
			p.expectClose(tt.want)
			_ = p.nc.Close()
			var ce *ConnError
			if err := s.wait(t); !errors.As(err, &ce) || ce.LocalErr == nil || ce.LocalErr.Condition != tt.want {
				t.Fatalf("Serve = %v; want *ConnError with LocalErr %s", err, tt.want)
			}
		})
	}
}

func TestBadInputBeforeOpen(t *testing.T) {
	tests := []struct {
		name       string
		opts       *ConnOptions
		send       []byte
		wantHeader []byte // nil: expect no answer
		wantErr    error
	}{
		{"http request", nil, []byte("GET / HTTP/1.1\r\n"), protoHeader(protoAMQP), ErrProtocolHeader},
		{"tls header", nil, []byte("AMQP\x02\x01\x00\x00"), protoHeader(protoAMQP), ErrProtocolHeader},
		{"sasl header without sasl", nil, protoHeader(protoSASL), protoHeader(protoAMQP), ErrProtocolHeader},
		{"amqp header when sasl required", &ConnOptions{SASL: &SASLOptions{}}, protoHeader(protoAMQP), protoHeader(protoSASL), ErrProtocolHeader},
		{"amqp version 0.9", nil, []byte("AMQP\x00\x00\x09\x01"), protoHeader(protoAMQP), ErrProtocolHeader},
		{"truncated open", nil, append(protoHeader(protoAMQP), 0, 0, 0, 100, 2, 0, 0, 0, 0x00, 0x53), protoHeader(protoAMQP), io.ErrUnexpectedEOF},
		{"begin before open", nil, append(protoHeader(protoAMQP), mustFrame(&frames.Begin{IncomingWindow: 1, OutgoingWindow: 1})...), protoHeader(protoAMQP), encoding.ErrDecode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s := newRawPeer(t, tt.opts)
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				_ = p.nc.SetWriteDeadline(time.Now().Add(testTimeout))
				_, _ = p.nc.Write(tt.send)
			}()
			if h := p.readHeader(); !bytes.Equal(h, tt.wantHeader) {
				t.Errorf("server header = %q; want %q", h, tt.wantHeader)
			}
			if tt.wantErr == io.ErrUnexpectedEOF {
				<-wrote
				_ = p.nc.Close()
			} else {
				go func() { _, _ = io.Copy(io.Discard, p.br) }()
			}
			err := s.wait(t)
			var ce *ConnError
			if !errors.As(err, &ce) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Serve = %v; want *ConnError wrapping %v", err, tt.wantErr)
			}
			_ = p.nc.Close()
		})
	}
}

func TestTruncatedFrameAfterOpen(t *testing.T) {
	p, s := newRawPeer(t, nil)
	p.open(0)
	p.write([]byte{0, 0, 0, 100, 2, 0, 0, 0, 0x00, 0x53})
	_ = p.nc.Close()
	if err := s.wait(t); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Serve = %v; want io.ErrUnexpectedEOF", err)
	}
}

// attachSender attaches a link on which the raw peer sends and returns
// the credit the server granted.
func (p *rawPeer) attachSender(handle uint32) uint32 {
	p.t.Helper()
	zero := uint32(0)
	p.writeFrame(frames.TypeAMQP, 0, &frames.Attach{Name: "l", Handle: handle, Role: frames.RoleSender,
		SndSettleMode: frames.SndUnsettled, Source: &frames.Source{}, Target: &frames.Target{Address: "q"},
		InitialDeliveryCount: &zero}, nil)
	if a, ok := p.next().(*frames.Attach); !ok || a.Target == nil {
		p.t.Fatal("server did not accept the attach")
	}
	f, ok := p.next().(*frames.Flow)
	if !ok || f.LinkCredit == nil {
		p.t.Fatal("server did not grant credit")
	}
	return *f.LinkCredit
}

func TestSessionAndLinkErrors(t *testing.T) {
	one, two := uint32(1), uint32(2)
	tests := []struct {
		name    string
		opts    *ConnOptions
		send    func(p *rawPeer)
		wantEnd ErrCond // session ended with
		wantDet ErrCond // link detached with
	}{
		{name: "transfer on unattached handle", send: func(p *rawPeer) {
			p.writeFrame(frames.TypeAMQP, 0, &frames.Transfer{Handle: 7, DeliveryID: &one, DeliveryTag: []byte{1}}, []byte{0x00, 0x53, 0x75, 0xa0, 0})
		}, wantEnd: ErrCondUnattachedHandle},
		{name: "flow on unattached handle", send: func(p *rawPeer) {
			p.writeFrame(frames.TypeAMQP, 0, &frames.Flow{IncomingWindow: 1, OutgoingWindow: 1, Handle: &two}, nil)
		}, wantEnd: ErrCondUnattachedHandle},
		{name: "attach on a handle in use", send: func(p *rawPeer) {
			p.attachSender(0)
			p.writeFrame(frames.TypeAMQP, 0, &frames.Attach{Name: "dup", Handle: 0, Role: frames.RoleSender, Target: &frames.Target{}}, nil)
		}, wantEnd: ErrCondHandleInUse},
		{name: "message larger than max-message-size", opts: &ConnOptions{MaxMessageSize: 10}, send: func(p *rawPeer) {
			p.attachSender(0)
			p.writeFrame(frames.TypeAMQP, 0, &frames.Transfer{Handle: 0, DeliveryID: &one, DeliveryTag: []byte{1}, More: true}, make([]byte, 8))
			p.writeFrame(frames.TypeAMQP, 0, &frames.Transfer{Handle: 0}, make([]byte, 8))
		}, wantDet: ErrCondMessageSizeExceeded},
		{name: "transfer beyond link credit", opts: &ConnOptions{LinkCredit: 1}, send: func(p *rawPeer) {
			p.attachSender(0)
			payload := []byte{0x00, 0x53, 0x75, 0xa0, 1, 'x'}
			p.writeFrame(frames.TypeAMQP, 0, &frames.Transfer{Handle: 0, DeliveryID: &one, DeliveryTag: []byte{1}}, payload)
			p.writeFrame(frames.TypeAMQP, 0, &frames.Transfer{Handle: 0, DeliveryID: &two, DeliveryTag: []byte{2}}, payload)
		}, wantDet: ErrCondTransferLimitExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			opts := &ConnOptions{}
			if tt.opts != nil {
				*opts = *tt.opts
			}
			opts.NewHandler = rec.newHandler
			p, _ := newRawPeer(t, opts)
			p.open(0)
			p.begin()
			tt.send(p)
			for {
				switch b := p.next().(type) {
				case *frames.End:
					if tt.wantEnd == "" || b.Error == nil || ErrCond(b.Error.Condition) != tt.wantEnd {
						t.Fatalf("end error = %+v; want %q", b.Error, tt.wantEnd)
					}
					return
				case *frames.Detach:
					if tt.wantDet == "" || b.Error == nil || ErrCond(b.Error.Condition) != tt.wantDet || !b.Closed {
						t.Fatalf("detach = %+v; want closed with %q", b, tt.wantDet)
					}
					l := rec.nextLink(t)
					var le *LinkError
					if err := l.Err(); !errors.As(err, &le) || le.LocalErr.Condition != tt.wantDet {
						t.Fatalf("link Err() = %v; want *LinkError %s", err, tt.wantDet)
					}
					return
				case *frames.Close:
					t.Fatalf("connection closed with %+v", b.Error)
				}
			}
		})
	}
}

func TestHeartbeatsAtHalfThePeersIdleTimeout(t *testing.T) {
	p, _ := newRawPeer(t, nil)
	p.open(100) // the peer wants a frame at least every 100ms
	for beats := 0; beats < 3; {
		h, b := p.readFrame()
		if b == nil && h.Size == 8 {
			beats++
		}
	}
}

func TestIdleTimeoutClosesSilentPeer(t *testing.T) {
	p, s := newRawPeer(t, &ConnOptions{IdleTimeout: 150 * time.Millisecond})
	o := p.open(0)
	if o.IdleTimeout != 150 {
		t.Fatalf("announced idle-time-out = %d; want 150", o.IdleTimeout)
	}
	p.expectClose(ErrCondResourceLimitExceeded)
	var ce *ConnError
	if err := s.wait(t); !errors.As(err, &ce) || ce.LocalErr == nil || ce.LocalErr.Condition != ErrCondResourceLimitExceeded {
		t.Fatalf("Serve = %v; want *ConnError resource-limit-exceeded", err)
	}
}

func TestPeerMaxFrameSizeSplitsTransfers(t *testing.T) {
	rec := newRecorder()
	p, _ := newRawPeer(t, &ConnOptions{NewHandler: rec.newHandler})
	p.write(protoHeader(protoAMQP))
	p.readHeader()
	p.writeFrame(frames.TypeAMQP, 0, &frames.Open{ContainerID: "raw", MaxFrameSize: 512, ChannelMax: 1}, nil)
	p.next()
	p.begin()
	p.writeFrame(frames.TypeAMQP, 0, &frames.Attach{Name: "r", Handle: 0, Role: frames.RoleReceiver,
		SndSettleMode: frames.SndSettled, Source: &frames.Source{Address: "s"}, Target: &frames.Target{}}, nil)
	p.next() // attach
	zero, credit := uint32(0), uint32(1)
	p.writeFrame(frames.TypeAMQP, 0, &frames.Flow{NextIncomingID: &zero, IncomingWindow: 100, OutgoingWindow: 100,
		Handle: &zero, DeliveryCount: &zero, LinkCredit: &credit}, nil)
	l := rec.nextLink(t)
	body := bytes.Repeat([]byte("z"), 3000)
	sent := make(chan error, 1)
	go func() { sent <- l.Send(testCtx(t), amqpMessage(body)) }()
	var got []byte
	frameCount := 0
	for {
		h, b := p.readFrame()
		tr, ok := b.(*frames.Transfer)
		if !ok {
			continue
		}
		if h.Size > 512 {
			t.Fatalf("frame of %d bytes exceeds the peer's 512", h.Size)
		}
		frameCount++
		got = append(got, tr.Payload...)
		if !tr.More {
			break
		}
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send (settled) = %v", err)
	}
	if frameCount < 6 || !bytes.Contains(got, body) {
		t.Fatalf("got %d frames, payload %d bytes", frameCount, len(got))
	}
}

func mustFrame(body frames.Body) []byte {
	b, err := frames.Append(nil, frames.TypeAMQP, 0, body, nil)
	if err != nil {
		panic(err)
	}
	return b
}

// A refused attach is answered with neither source nor target, as
// Azure's brokers answer, then detached with the error.
func TestRefusedAttachHasNoTerminus(t *testing.T) {
	for peer, role := range map[string]bool{"sender": frames.RoleSender, "receiver": frames.RoleReceiver} {
		rec := newRecorder()
		rec.attach = func(context.Context, *Link) error { return redirectErr }
		p, _ := newRawPeer(t, &ConnOptions{NewHandler: rec.newHandler})
		p.open(0)
		p.begin()
		zero := uint32(0)
		p.writeFrame(frames.TypeAMQP, 0, &frames.Attach{Name: "l", Handle: 0, Role: role,
			Source: &frames.Source{Address: "/messages/events/"}, Target: &frames.Target{Address: "me"},
			InitialDeliveryCount: &zero}, nil)
		a, ok := p.next().(*frames.Attach)
		if !ok {
			t.Fatalf("peer %s: the server did not answer the attach", peer)
		}
		if a.Source != nil || a.Target != nil {
			t.Errorf("peer %s: refused attach answered with source %+v, target %+v; want both null", peer, a.Source, a.Target)
		}
		d, ok := p.next().(*frames.Detach)
		if !ok || !d.Closed || d.Error == nil || ErrCond(d.Error.Condition) != ErrCondLinkRedirect {
			t.Errorf("peer %s: after the attach got %+v; want a closing detach with amqp:link:redirect", peer, d)
		}
	}
}
