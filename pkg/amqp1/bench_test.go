package amqp1

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/Azure/go-amqp"
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
