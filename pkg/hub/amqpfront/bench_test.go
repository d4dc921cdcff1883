package amqpfront

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/message"
)

// BenchmarkC2DSend measures C2D messages accepted per second from one
// go-amqp sender, spread over 1,000 devices, with one send in flight
// at a time and with many (each message is queued in the registry
// before it is accepted; the registry batches concurrent writes).
func BenchmarkC2DSend(b *testing.B) {
	for _, inflight := range []int{1, 128} {
		b.Run("inflight="+strconv.Itoa(inflight), func(b *testing.B) {
			h := newTestHub(b, &registry.Options{C2DMaxPending: 1 << 20}, nil)
			const devices = 1000
			for i := range devices {
				h.createDevice("dev-" + strconv.Itoa(i))
			}
			go func() {
				for range h.kick {
				}
			}()
			s := h.session("service", testHost)
			snd, err := s.NewSender(testCtx(b), "/messages/devicebound", nil)
			if err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			work := make(chan struct{})
			errs := make(chan error, inflight)
			var wg sync.WaitGroup
			for range inflight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// No deadline: a large b.N may take longer than the
					// tests' timeout.
					ctx := context.Background()
					for range work {
						i := n.Add(1)
						to := "/devices/dev-" + strconv.Itoa(int(i%devices)) + "/messages/devicebound"
						err := snd.Send(ctx, &amqp.Message{
							Properties:            &amqp.MessageProperties{MessageID: strconv.FormatInt(i, 10), To: &to},
							ApplicationProperties: map[string]any{"iothub-ack": "full", "color": "red"},
							Data:                  [][]byte{[]byte(`{"command":"reboot"}`)},
						}, nil)
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				select {
				case work <- struct{}{}:
				case err := <-errs:
					b.Fatal(err)
				}
			}
			close(work)
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkEventsReceive measures events per second delivered to one
// go-amqp receiver reading a backlog of 100,000 events from the start
// of a partition, with the receiver settling each event (the default)
// and with events sent presettled.
func BenchmarkEventsReceive(b *testing.B) {
	const backlog = 100_000
	for _, mode := range []struct {
		name string
		opts func() *amqp.ReceiverOptions
	}{
		{"accept", func() *amqp.ReceiverOptions { return &amqp.ReceiverOptions{Credit: 1000} }},
		{"presettled", func() *amqp.ReceiverOptions {
			return &amqp.ReceiverOptions{Credit: 1000, RequestedSenderSettleMode: amqp.SenderSettleModeSettled.Ptr()}
		}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			h := newTestHub(b, nil, nil)
			h.tel = telemetry.New(4, 4*backlog, 0, nil) // the whole backlog fits one partition
			h.f = New(h.reg, h.tel, &Options{HostNames: []string{testHost}})
			dev := deviceOn(h, 0)
			for i := range backlog {
				h.tel.Append(telemetry.Event{DeviceID: dev, AuthMethod: "sas", GenerationID: "1", Message: &message.Message{
					Body: []byte(`{"temperature":21.5,"humidity":60}`), MessageID: strconv.Itoa(i),
					ContentType: "application/json", ContentEncoding: "utf-8",
					Properties: map[string]string{"temperatureAlert": "false"}}})
			}
			s := h.session("service", ehAudience)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				ctx := testCtx(b)
				r, err := s.NewReceiver(ctx, "myhub/ConsumerGroups/$Default/Partitions/0", mode.opts())
				if err != nil {
					b.Fatal(err)
				}
				for i := range backlog {
					m, err := r.Receive(ctx, nil)
					if err != nil {
						b.Fatalf("event %d: %v", i, err)
					}
					if err := r.AcceptMessage(ctx, m); err != nil {
						b.Fatal(err)
					}
				}
				_ = r.Close(ctx)
			}
			b.ReportMetric(float64(b.N*backlog)/time.Since(start).Seconds(), "events/s")
		})
	}
}
