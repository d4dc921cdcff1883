package amqp1

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// FuzzServe feeds arbitrary bytes to a connection after a valid header
// and open: Serve must return, without panicking, once the peer hangs up.
func FuzzServe(f *testing.F) {
	one, zero, credit := uint32(1), uint32(0), uint32(5)
	seq := func(bodies ...frames.Body) []byte {
		var b []byte
		for _, body := range bodies {
			var payload []byte
			if t, ok := body.(*frames.Transfer); ok {
				payload = t.Payload
			}
			b, _ = frames.Append(b, frames.TypeAMQP, 0, body, payload)
		}
		return b
	}
	begin := &frames.Begin{IncomingWindow: 10, OutgoingWindow: 10, HandleMax: 4}
	f.Add(seq(begin))
	f.Add(seq(begin, &frames.Attach{Name: "s", Handle: 0, Role: frames.RoleSender, Target: &frames.Target{Address: "q"}, InitialDeliveryCount: &zero},
		&frames.Transfer{Handle: 0, DeliveryID: &one, DeliveryTag: []byte{1}, Payload: []byte{0x00, 0x53, 0x75, 0xa0, 1, 'x'}}))
	f.Add(seq(begin, &frames.Attach{Name: "r", Handle: 1, Role: frames.RoleReceiver, Source: &frames.Source{Address: "q"}},
		&frames.Flow{IncomingWindow: 10, OutgoingWindow: 10, Handle: &one, DeliveryCount: &zero, LinkCredit: &credit, Drain: true, Echo: true},
		&frames.Disposition{Role: frames.RoleReceiver, First: 0, Last: &credit, Settled: true, State: &frames.Accepted{}},
		&frames.Detach{Handle: 1, Closed: true}, &frames.End{}, &frames.Close{}))
	f.Add([]byte{0, 0, 0, 8, 2, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cli, srv := net.Pipe()
		opts := &ConnOptions{
			CloseTimeout: 20 * time.Millisecond,
			NewHandler: func(*Conn) Handler {
				return HandlerFunc(func(ctx context.Context, l *Link) error {
					go func() {
						if l.Role() == RoleSender {
							_ = l.Send(ctx, amqp.NewMessage([]byte("m")))
							return
						}
						for {
							d, err := l.Receive(ctx)
							if err != nil {
								return
							}
							_ = d.Accept()
						}
					}()
					return nil
				})
			},
		}
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, srv, opts) }()
		go func() { _, _ = io.Copy(io.Discard, cli) }()
		hello := append(protoHeader(protoAMQP), mustFrame(&frames.Open{ContainerID: "fuzz", MaxFrameSize: 512})...)
		_, _ = cli.Write(hello)
		_, _ = cli.Write(data)
		_ = cli.Close()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("Serve did not return for input %x", data)
		}
	})
}
