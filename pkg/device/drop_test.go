package device

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// drain empties ch until the test ends.
func drain[T any](t *testing.T, ch chan T) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case <-ch:
			case <-done:
				return
			}
		}
	}()
}

// The broker drops the connection again and again under concurrent
// senders: every SendEvent still succeeds (the message goes again on
// the next connection), and none hangs on the dead connection. Before
// the fix, a send caught by the drop either failed with the write
// error ("connection reset by peer") or sat in paho's Publish for its
// 30 s write timeout.
func TestSendEventSurvivesDrops(t *testing.T) {
	b, c, events := watched(t)
	drain(t, b.telemetry)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var acked atomic.Int64
	tick := make(chan struct{}, 1) // a send was acknowledged
	errs := make(chan error, 16)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				m := &message.Message{Body: []byte(strconv.Itoa(i) + "-" + strconv.Itoa(n))}
				if err := c.SendEvent(ctx, m); err != nil {
					errs <- err
					return
				}
				acked.Add(1)
				select {
				case tick <- struct{}{}:
				default:
				}
			}
		}()
	}
	const drops = 10
	for i := range drops {
		target := acked.Load() + 20
		deadline := time.After(waitFor)
		for acked.Load() < target {
			select {
			case err := <-errs:
				t.Fatalf("before drop %d: SendEvent = %v; want nil (sent again after the reconnect)", i+1, err)
			case <-deadline:
				t.Fatalf("before drop %d: only %d messages acknowledged", i+1, acked.Load())
			case <-tick:
			}
		}
		b.drop("dev1")
		events.waitState(t, StateDisconnected)
		events.waitState(t, StateConnected)
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatalf("a SendEvent still hangs %v after the last reconnect", waitFor)
	}
	select {
	case err := <-errs:
		t.Fatalf("SendEvent = %v; want nil (sent again after the reconnect)", err)
	default:
	}
	t.Logf("%d messages acknowledged over %d drops", acked.Load(), drops)
}
