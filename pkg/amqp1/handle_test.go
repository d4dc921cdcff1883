package amqp1

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

// senderLink connects a go-amqp client with a sender on "q" (with
// sopts) to a server with opts, and returns the sender and the server's
// link.
func senderLink(t *testing.T, opts *ConnOptions, sopts *amqp.SenderOptions) (*amqp.Sender, *Link) {
	t.Helper()
	rec := newRecorder()
	o := ConnOptions{}
	if opts != nil {
		o = *opts
	}
	o.NewHandler = rec.newHandler
	c, _ := mustClient(t, &o, nil)
	snd, err := mustSession(t, c).NewSender(testCtx(t), "q", sopts)
	if err != nil {
		t.Fatal(err)
	}
	return snd, rec.nextLink(t)
}

// TestHandleDeliveriesInOrderAcrossCredit sends more messages than the
// credit window to a link whose deliveries go to a function: they all
// arrive, in order, each accepted, and Receive refuses.
func TestHandleDeliveriesInOrderAcrossCredit(t *testing.T) {
	const n = 57
	ctx := testCtx(t)
	snd, l := senderLink(t, &ConnOptions{LinkCredit: 5}, nil)
	got := make(chan string, n)
	if err := l.HandleDeliveries(func(d *Delivery) {
		got <- string(d.Message.GetData())
		_ = d.Accept()
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.HandleDeliveries(func(*Delivery) {}); err == nil {
		t.Error("a second HandleDeliveries succeeded; want an error")
	}
	if _, err := l.Receive(ctx); !errors.Is(err, errHandled) {
		t.Errorf("Receive on a handled link = %v; want %v", err, errHandled)
	}
	for i := range n {
		// Send waits for the accepted outcome, so each message went
		// through the handler before the next one is sent; the window
		// of 5 is used up and granted again many times over.
		if err := snd.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint(i))), nil); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	for i := range n {
		select {
		case m := <-got:
			if m != fmt.Sprint(i) {
				t.Fatalf("message %d = %q", i, m)
			}
		case <-time.After(testTimeout):
			t.Fatalf("message %d never reached the handler", i)
		}
	}
}

// TestHandleDeliveriesTakesQueuedMessages: deliveries that arrived
// before HandleDeliveries go to the function too, first.
func TestHandleDeliveriesTakesQueuedMessages(t *testing.T) {
	ctx := testCtx(t)
	snd, l := senderLink(t, nil, &amqp.SenderOptions{SettlementMode: amqp.SenderSettleModeSettled.Ptr()})
	for i := range 3 {
		if err := snd.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint(i))), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until all three are queued on the link.
	for {
		ch := l.Changed()
		l.s.mu.Lock()
		queued := len(l.queue)
		l.s.mu.Unlock()
		if queued == 3 {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("%d of 3 messages queued", queued)
		}
	}
	got := make(chan string, 3)
	if err := l.HandleDeliveries(func(d *Delivery) { got <- string(d.Message.GetData()) }); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		select {
		case m := <-got:
			if m != fmt.Sprint(i) {
				t.Fatalf("message %d = %q", i, m)
			}
		case <-ctx.Done():
			t.Fatalf("message %d never reached the handler", i)
		}
	}
}

// TestHandleDeliveriesWrongRole: a link where the peer receives has no
// deliveries to hand over.
func TestHandleDeliveriesWrongRole(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	if _, err := mustSession(t, c).NewReceiver(ctx, "q", nil); err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	if err := l.HandleDeliveries(func(*Delivery) {}); !errors.Is(err, ErrWrongRole) {
		t.Fatalf("HandleDeliveries on a sending link = %v; want ErrWrongRole", err)
	}
}

// TestAfterDoneRunsOnceTheLinkEnds: a function registered while the
// link lives runs when the peer detaches it, with Err already set; one
// registered afterwards runs at once.
func TestAfterDoneRunsOnceTheLinkEnds(t *testing.T) {
	ctx := testCtx(t)
	snd, l := senderLink(t, nil, nil)
	ran := make(chan error, 2)
	l.AfterDone(func() { ran <- l.Err() })
	select {
	case err := <-ran:
		t.Fatalf("AfterDone ran while the link lives (Err %v)", err)
	default:
	}
	if err := snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, when := range []string{"registered before the detach", "registered after the end"} {
		if when != "registered before the detach" {
			l.AfterDone(func() { ran <- l.Err() })
		}
		select {
		case err := <-ran:
			if !errors.As(err, new(*LinkError)) {
				t.Fatalf("Err in AfterDone %s = %v; want *LinkError", when, err)
			}
		case <-ctx.Done():
			t.Fatalf("AfterDone %s did not run", when)
		}
	}
}
