package amqp1

import (
	"testing"

	"github.com/Azure/go-amqp"
)

// A server sender sees the credit a client receiver grants, after the
// attach and as the client issues more, and Changed wakes it when it
// comes.
func TestCreditFollowsTheClientReceiver(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	rcv, err := mustSession(t, c).NewReceiver(ctx, "devices/d1/messages/devicebound", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	l := rec.nextLink(t)
	if got := l.Credit(); got != 0 {
		t.Fatalf("Credit() before the client issued any = %d; want 0", got)
	}
	ch := l.Changed()
	if err := rcv.IssueCredit(3); err != nil {
		t.Fatal(err)
	}
	for l.Credit() != 3 {
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("Credit() = %d after the client issued 3", l.Credit())
		}
		ch = l.Changed()
	}
	errs := make(chan error, 1)
	go func() { errs <- l.Send(ctx, &amqp.Message{Data: [][]byte{[]byte("x")}}) }()
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("Send = %v", err)
	}
	if got := l.Credit(); got != 2 {
		t.Errorf("Credit() after one message = %d; want 2", got)
	}
	_ = rcv.Close(ctx)
	<-l.Done()
	if got := l.Credit(); got != 0 {
		t.Errorf("Credit() after detach = %d; want 0", got)
	}
}
