package amqp1

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// benchConn serves opts on a loopback TCP listener and dials it with
// go-amqp.
func benchConn(b *testing.B, opts *ConnOptions) *amqp.Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		_ = Serve(ctx, nc, opts)
	}()
	c, err := amqp.Dial(ctx, "amqp://"+ln.Addr().String(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.Close()
		cancel()
		_ = ln.Close()
		<-done
	})
	return c
}

func BenchmarkReceiveFromClientSender(b *testing.B) {
	rec := newRecorder()
	rec.attach = func(ctx context.Context, l *Link) error {
		go func() {
			for {
				d, err := l.Receive(ctx)
				if err != nil {
					return
				}
				_ = d.Accept()
			}
		}()
		return nil
	}
	c := benchConn(b, &ConnOptions{NewHandler: rec.newHandler})
	ctx := context.Background()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	snd, err := s.NewSender(ctx, "q", nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := amqp.NewMessage(bytes.Repeat([]byte("x"), 256))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := snd.Send(ctx, msg, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSendToClientReceiver(b *testing.B) {
	rec := newRecorder()
	c := benchConn(b, &ConnOptions{NewHandler: rec.newHandler})
	ctx := context.Background()
	s, err := c.NewSession(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	rcv, err := s.NewReceiver(ctx, "q", &amqp.ReceiverOptions{Credit: 100})
	if err != nil {
		b.Fatal(err)
	}
	l := rec.nextLink(b)
	stop := make(chan struct{})
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for {
			m, err := rcv.Receive(ctx, nil)
			if err != nil {
				return
			}
			_ = rcv.AcceptMessage(ctx, m)
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	msg := amqp.NewMessage(bytes.Repeat([]byte("x"), 256))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := l.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.StopTimer()
	close(stop)
	_ = c.Close()
	<-recvDone
}

// BenchmarkDeliveriesIn measures the server's path of one delivery in:
// a pre-encoded transfer frame (a small telemetry message, as
// bench/amqpdev's devices send) read, parsed and queued, handed to
// HandleDeliveries' function, decoded, accepted and settled in a
// disposition range. The peer is hand-driven over loopback TCP, 32
// deliveries in flight, and allocates only when it parses a
// disposition, so allocs/op is nearly all the server's.
//
//	go test -run '^$' -bench DeliveriesIn -benchmem ./pkg/amqp1
func BenchmarkDeliveriesIn(b *testing.B) {
	rec := newRecorder()
	rec.attach = func(_ context.Context, l *Link) error {
		return l.HandleDeliveries(func(d *Delivery) { _ = d.Accept() })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- Serve(ctx, nc, &ConnOptions{NewHandler: rec.newHandler})
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	p := &rawPeer{t: b, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	p.open(0)
	p.begin()
	p.writeFrame(frames.TypeAMQP, 0, &frames.Attach{Name: "events", Handle: 0, Role: false, SndSettleMode: frames.SndMixed,
		Source: &frames.Source{Address: "dev"}, Target: &frames.Target{Address: "/devices/dev/messages/events"},
		InitialDeliveryCount: new(uint32)}, nil)
	if _, ok := p.next().(*frames.Attach); !ok {
		b.Fatal("no attach answer")
	}
	rec.nextLink(b)

	payload, err := (&amqp.Message{Data: [][]byte{[]byte(`{"temperature":21.5,"humidity":40}`)},
		ApplicationProperties: map[string]any{"n": int64(1)}}).MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	const marker = 0xa1b2c3d4
	id, format, settled := uint32(marker), uint32(0), false
	frame, err := frames.Append(nil, frames.TypeAMQP, 0, &frames.Transfer{Handle: 0, DeliveryID: &id,
		DeliveryTag: binary.BigEndian.AppendUint32(nil, marker), MessageFormat: &format, Settled: &settled}, payload)
	if err != nil {
		b.Fatal(err)
	}
	m := binary.BigEndian.AppendUint32(nil, marker)
	idAt := bytes.Index(frame, m)
	tagAt := idAt + 4 + bytes.Index(frame[idAt+4:], m)

	const window = 32
	slots := make(chan struct{}, window)
	writeErr := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU(b)
	go func() {
		for i := range b.N {
			slots <- struct{}{}
			binary.BigEndian.PutUint32(frame[idAt:], uint32(i))
			binary.BigEndian.PutUint32(frame[tagAt:], uint32(i))
			if _, err := nc.Write(frame); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}()
	for acked := 0; acked < b.N; {
		switch f := p.next().(type) {
		case *frames.Disposition:
			last := f.First
			if f.Last != nil {
				last = *f.Last
			}
			if _, ok := f.State.(*frames.Accepted); !ok {
				b.Fatalf("deliveries %d-%d settled with %#v", f.First, last, f.State)
			}
			for range last - f.First + 1 {
				<-slots
				acked++
			}
		case *frames.Flow:
		default:
			b.Fatalf("unexpected %T", f)
		}
	}
	b.StopTimer()
	cpu := processCPU(b) - cpu0
	if err := <-writeErr; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// On a shared machine the wall time per op follows the load; the
	// CPU time (the server's and the lean peer's) does much less.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	_ = nc.Close()
	cancel()
	<-served
}

// processCPU is the CPU time (user and system) this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
