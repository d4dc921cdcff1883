package amqp1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
)

func TestClientSenderMessagesArriveIntact(t *testing.T) {
	expiry := time.UnixMilli(1700000000123).UTC()
	uuid := amqp.UUID{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: many 64 KB frames
	tests := []struct {
		name string
		msg  *amqp.Message
	}{
		{"string message-id", &amqp.Message{
			Properties: &amqp.MessageProperties{MessageID: "msg-1", To: ptr("/devices/dev1/messages/devicebound"),
				CorrelationID: "corr-1", ContentType: ptr("application/json"), AbsoluteExpiryTime: &expiry},
			ApplicationProperties: map[string]any{"iothub-ack": "full", "n": int32(7)},
			Data:                  [][]byte{[]byte(`{"a":1}`)},
		}},
		{"uuid message-id", &amqp.Message{
			Properties: &amqp.MessageProperties{MessageID: uuid, To: ptr("/devices/dev2/messages/devicebound")},
			Data:       [][]byte{[]byte("x")},
		}},
		{"multi-frame body", &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "big"}, Data: [][]byte{big}}},
		{"amqp-value body", &amqp.Message{Value: "SharedAccessSignature sr=x"}},
	}
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	snd, err := mustSession(t, c).NewSender(ctx, "/messages/devicebound", nil)
	if err != nil {
		t.Fatalf("NewSender: %v", err)
	}
	l := rec.nextLink(t)
	if l.Role() != RoleReceiver || l.Address() != "/messages/devicebound" {
		t.Fatalf("link role, address = %v, %q", l.Role(), l.Address())
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := make(chan error, 1)
			go func() { sent <- snd.Send(ctx, tt.msg, nil) }()
			d, err := l.Receive(ctx)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			got := d.Message
			if !sameProperties(got.Properties, tt.msg.Properties) {
				t.Errorf("Properties = %+v; want %+v", got.Properties, tt.msg.Properties)
			}
			if !reflect.DeepEqual(got.ApplicationProperties, tt.msg.ApplicationProperties) {
				t.Errorf("ApplicationProperties = %v; want %v", got.ApplicationProperties, tt.msg.ApplicationProperties)
			}
			if !reflect.DeepEqual(got.Data, tt.msg.Data) || !reflect.DeepEqual(got.Value, tt.msg.Value) {
				t.Errorf("body = %d data sections, value %v; want %d, %v", len(got.Data), got.Value, len(tt.msg.Data), tt.msg.Value)
			}
			if len(got.DeliveryTag) == 0 || len(d.Payload) == 0 {
				t.Errorf("DeliveryTag %x, Payload %d bytes; want both set", got.DeliveryTag, len(d.Payload))
			}
			if err := d.Accept(); err != nil {
				t.Fatalf("Accept: %v", err)
			}
			if err := <-sent; err != nil {
				t.Fatalf("client Send = %v; want nil after Accept", err)
			}
		})
	}
}

func TestOutcomesReachClientSender(t *testing.T) {
	rejectErr := &Error{Condition: "amqp:precondition-failed", Description: "queue full", Info: map[string]any{"n": int32(50)}}
	tests := []struct {
		name   string
		settle func(*Delivery) error
		check  func(amqp.DeliveryState) bool
	}{
		{"accept", (*Delivery).Accept, func(s amqp.DeliveryState) bool { _, ok := s.(*amqp.StateAccepted); return ok }},
		{"reject", func(d *Delivery) error { return d.Reject(rejectErr) }, func(s amqp.DeliveryState) bool {
			r, ok := s.(*amqp.StateRejected)
			return ok && r.Error != nil && r.Error.Condition == "amqp:precondition-failed" && r.Error.Description == "queue full" && r.Error.Info["n"] == int32(50)
		}},
		{"release", (*Delivery).Release, func(s amqp.DeliveryState) bool { _, ok := s.(*amqp.StateReleased); return ok }},
		{"modify", func(d *Delivery) error { return d.Modify(true, true, map[string]any{"k": "v"}) }, func(s amqp.DeliveryState) bool {
			m, ok := s.(*amqp.StateModified)
			return ok && m.DeliveryFailed && m.UndeliverableHere && m.MessageAnnotations["k"] == "v"
		}},
	}
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	snd, err := mustSession(t, c).NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			receipt, err := snd.SendWithReceipt(ctx, amqp.NewMessage([]byte(tt.name)), nil)
			if err != nil {
				t.Fatal(err)
			}
			d, err := l.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.settle(d); err != nil {
				t.Fatalf("settling: %v", err)
			}
			if err := tt.settle(d); err != nil {
				t.Fatalf("settling twice: %v; want a no-op", err)
			}
			state, err := receipt.Wait(ctx)
			if err != nil || !tt.check(state) {
				t.Fatalf("client receipt = %#v, %v", state, err)
			}
		})
	}
}

func TestSettledSenderNeedsNoDisposition(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	snd, err := mustSession(t, c).NewSender(ctx, "q", &amqp.SenderOptions{SettlementMode: ptr(amqp.SenderSettleModeSettled)})
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	if l.SenderSettleMode() != SenderSettleModeSettled {
		t.Fatalf("SenderSettleMode = %v; want settled", l.SenderSettleMode())
	}
	if err := snd.Send(ctx, amqp.NewMessage([]byte("fire")), nil); err != nil {
		t.Fatal(err)
	}
	d, err := l.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Settled() {
		t.Fatal("Settled() = false for a pre-settled delivery")
	}
	if err := d.Accept(); err != nil {
		t.Fatalf("Accept on a settled delivery = %v; want nil", err)
	}
}

func TestCreditFlowWithMoreMessagesThanWindow(t *testing.T) {
	const n = 57
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler, LinkCredit: 5}, nil)
	ctx := testCtx(t)
	snd, err := mustSession(t, c).NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := snd.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint(i))), nil); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	for i := 0; i < n; i++ {
		d, err := l.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive %d: %v", i, err)
		}
		if got := string(d.Message.GetData()); got != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, got)
		}
		_ = d.Accept()
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestMessageTooLargeDetachesLink(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler, MaxMessageSize: 1000}, nil)
	ctx := testCtx(t)
	snd, err := mustSession(t, c).NewSender(ctx, "q", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	if snd.MaxMessageSize() != 1000 {
		t.Fatalf("client sees max-message-size %d; want 1000", snd.MaxMessageSize())
	}
	// go-amqp checks max-message-size itself, so write around it: the
	// check on our side is exercised by the raw-peer tests.
	if err := snd.Send(ctx, amqp.NewMessage(make([]byte, 2000)), nil); err == nil {
		t.Fatal("Send of an oversized message succeeded")
	}
	_ = l
}

func TestServerSendsToClientReceiver(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	enq := time.UnixMilli(1700000001000).UTC()
	rcv, err := mustSession(t, c).NewReceiver(ctx, "hub/ConsumerGroups/$Default/Partitions/0", &amqp.ReceiverOptions{
		Credit:              10,
		Filters:             []amqp.LinkFilter{amqp.NewSelectorFilter("amqp.annotation.x-opt-offset > '123'")},
		Properties:          map[string]any{"com.microsoft:epoch": int64(3)},
		DesiredCapabilities: []string{"com.microsoft:enable-receiver-runtime-metric"},
	})
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	l := rec.nextLink(t)
	if l.Role() != RoleSender || l.Address() != "hub/ConsumerGroups/$Default/Partitions/0" {
		t.Fatalf("role, address = %v, %q", l.Role(), l.Address())
	}
	if sel, ok := l.Source().Selector(); !ok || sel != "amqp.annotation.x-opt-offset > '123'" {
		t.Errorf("Selector() = %q, %v", sel, ok)
	}
	if f, ok := l.Source().Filter[SelectorFilterName].(Described); !ok || f.Descriptor != SelectorFilterCode {
		t.Errorf("Filter = %#v; want a described selector", l.Source().Filter)
	}
	if l.Properties()["com.microsoft:epoch"] != int64(3) {
		t.Errorf("Properties = %v", l.Properties())
	}
	if !reflect.DeepEqual(l.DesiredCapabilities(), []string{"com.microsoft:enable-receiver-runtime-metric"}) {
		t.Errorf("DesiredCapabilities = %v", l.DesiredCapabilities())
	}
	big := bytes.Repeat([]byte{0xab}, 150_000)
	msgs := []*amqp.Message{
		{
			Annotations: amqp.Annotations{"x-opt-sequence-number": int64(42), "x-opt-offset": "4096",
				"x-opt-enqueued-time": enq, "iothub-connection-device-id": "dev1"},
			Properties:            &amqp.MessageProperties{MessageID: "m1", ContentType: ptr("application/json")},
			ApplicationProperties: map[string]any{"temp": 21.5},
			Data:                  [][]byte{[]byte(`{"t":21.5}`)},
		},
		{Annotations: amqp.Annotations{"x-opt-sequence-number": int64(43)}, Data: [][]byte{big}},
	}
	errs := make(chan error, len(msgs))
	go func() {
		for _, m := range msgs {
			errs <- l.Send(ctx, m)
		}
	}()
	for i, want := range msgs {
		got, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("client Receive: %v", err)
		}
		if !sameAnnotations(got.Annotations, want.Annotations) {
			t.Errorf("message %d annotations = %v; want %v", i, got.Annotations, want.Annotations)
		}
		if !reflect.DeepEqual(got.Data, want.Data) || !reflect.DeepEqual(got.ApplicationProperties, want.ApplicationProperties) {
			t.Errorf("message %d body or application properties differ", i)
		}
		if err := rcv.AcceptMessage(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := <-errs; err != nil {
			t.Fatalf("server Send %d = %v; want nil (accepted)", i, err)
		}
	}
}

func TestServerSendOutcomes(t *testing.T) {
	tests := []struct {
		name   string
		settle func(context.Context, *amqp.Receiver, *amqp.Message) error
		check  func(error) bool
	}{
		{"accepted", func(ctx context.Context, r *amqp.Receiver, m *amqp.Message) error { return r.AcceptMessage(ctx, m) },
			func(err error) bool { return err == nil }},
		{"rejected", func(ctx context.Context, r *amqp.Receiver, m *amqp.Message) error {
			return r.RejectMessage(ctx, m, &amqp.Error{Condition: "x:bad", Description: "no"})
		}, func(err error) bool {
			var re *RejectedError
			return errors.As(err, &re) && re.RemoteErr != nil && re.RemoteErr.Condition == "x:bad"
		}},
		{"released", func(ctx context.Context, r *amqp.Receiver, m *amqp.Message) error { return r.ReleaseMessage(ctx, m) },
			func(err error) bool { return errors.Is(err, ErrReleased) }},
		{"modified", func(ctx context.Context, r *amqp.Receiver, m *amqp.Message) error {
			return r.ModifyMessage(ctx, m, &amqp.ModifyMessageOptions{DeliveryFailed: true})
		}, func(err error) bool {
			var me *ModifiedError
			return errors.As(err, &me) && me.DeliveryFailed
		}},
	}
	for _, mode := range []amqp.ReceiverSettleMode{amqp.ReceiverSettleModeFirst, amqp.ReceiverSettleModeSecond} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/mode%d", tt.name, mode), func(t *testing.T) {
				rec := newRecorder()
				c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
				ctx := testCtx(t)
				rcv, err := mustSession(t, c).NewReceiver(ctx, "src", &amqp.ReceiverOptions{SettlementMode: ptr(mode)})
				if err != nil {
					t.Fatal(err)
				}
				l := rec.nextLink(t)
				sent := make(chan error, 1)
				go func() { sent <- l.Send(ctx, amqp.NewMessage([]byte("m"))) }()
				m, err := rcv.Receive(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				// go-amqp reports our settlement of a rejected delivery
				// (receiver settle mode second) as the rejection's error
				if err := tt.settle(ctx, rcv, m); err != nil && !(tt.name == "rejected" && mode == amqp.ReceiverSettleModeSecond) {
					t.Fatalf("client settle: %v", err)
				}
				if err := <-sent; !tt.check(err) {
					t.Fatalf("Send = %v (%T)", err, err)
				}
			})
		}
	}
}

// Start puts several deliveries on the wire before the first outcome:
// the client receives all of them unsettled, then its outcomes reach
// each Outcome, in any order.
func TestServerStartKeepsDeliveriesInFlight(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	rcv, err := mustSession(t, c).NewReceiver(ctx, "src", &amqp.ReceiverOptions{Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	const n = 5
	outs := make([]*Outcome, n)
	for i := range n {
		if outs[i], err = l.Start(ctx, amqp.NewMessage([]byte{byte('a' + i)})); err != nil {
			t.Fatalf("Start %d: %v", i, err)
		}
	}
	var got []*amqp.Message
	for range n {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	for i, m := range got {
		if string(m.GetData()) != string(rune('a'+i)) {
			t.Fatalf("message %d = %q; want %q", i, m.GetData(), string(rune('a'+i)))
		}
	}
	// Settle the last first: each outcome goes to its own delivery.
	if err := rcv.RejectMessage(ctx, got[n-1], nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range got[:n-1] {
		if err := rcv.AcceptMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, o := range outs {
		err := o.Wait(ctx)
		var re *RejectedError
		if i == n-1 && !errors.As(err, &re) {
			t.Fatalf("Wait %d = %v; want a *RejectedError", i, err)
		}
		if i < n-1 && err != nil {
			t.Fatalf("Wait %d = %v; want nil (accepted)", i, err)
		}
	}
}

func TestServerSendSettledMode(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	rcv, err := mustSession(t, c).NewReceiver(ctx, "src", &amqp.ReceiverOptions{
		RequestedSenderSettleMode: ptr(amqp.SenderSettleModeSettled)})
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < 3; i++ {
			if err := l.Send(ctx, amqp.NewMessage([]byte{byte(i)})); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	defer func() {
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}()
	for i := 0; i < 3; i++ {
		m, err := rcv.Receive(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetData()[0] != byte(i) {
			t.Fatalf("message %d = %v", i, m.GetData())
		}
	}
}

func TestCBSRequestReply(t *testing.T) {
	rec := newRecorder()
	// the handler pairs the $cbs receiver (peer sends requests) with the
	// $cbs sender (peer receives replies)
	var mu sync.Mutex
	var replyLink *Link
	replyReady := make(chan struct{})
	rec.attach = func(ctx context.Context, l *Link) error {
		if l.Address() != "$cbs" {
			return &Error{Condition: ErrCondNotFound}
		}
		if l.Role() == RoleSender {
			mu.Lock()
			replyLink = l
			mu.Unlock()
			close(replyReady)
			return nil
		}
		go func() {
			for {
				d, err := l.Receive(ctx)
				if err != nil {
					return
				}
				<-replyReady
				req := d.Message
				status := int32(200)
				if req.ApplicationProperties["operation"] != "put-token" || req.Value != "SharedAccessSignature sr=hub" {
					status = 401
				}
				_ = d.Accept()
				mu.Lock()
				rl := replyLink
				mu.Unlock()
				_ = rl.Send(ctx, &amqp.Message{
					Properties:            &amqp.MessageProperties{CorrelationID: req.Properties.MessageID},
					ApplicationProperties: map[string]any{"status-code": status, "status-description": "OK"},
				})
			}
		}()
		return nil
	}
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	sess := mustSession(t, c)
	snd, err := sess.NewSender(ctx, "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := sess.NewReceiver(ctx, "$cbs", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: "4d7ee0c4-0000-4000-8000-000000000001", To: ptr("$cbs"), ReplyTo: ptr("cbs")},
		ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken",
			"name": "hub"},
		Value: "SharedAccessSignature sr=hub",
	}
	if err := snd.Send(ctx, req, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Properties.CorrelationID != req.Properties.MessageID {
		t.Errorf("correlation-id = %v; want %v", resp.Properties.CorrelationID, req.Properties.MessageID)
	}
	if code, ok := resp.ApplicationProperties["status-code"].(int32); !ok || code != 200 {
		t.Errorf("status-code = %#v; want int32 200", resp.ApplicationProperties["status-code"])
	}
	_ = rcv.AcceptMessage(ctx, resp)
}

var redirectErr = &Error{Condition: ErrCondLinkRedirect, Description: "redirect to event hub",
	Info: map[string]any{"hostname": "ehns.servicebus.windows.net", "network-host": "127.0.0.1", "port": int32(5671),
		"address": "amqps://ehns.servicebus.windows.net:5671/hub/$management"}}

func checkRedirect(t *testing.T, remote *amqp.Error) {
	t.Helper()
	if remote == nil || remote.Condition != amqp.ErrCondLinkRedirect {
		t.Fatalf("remote error = %v; want amqp:link:redirect", remote)
	}
	for k, v := range redirectErr.Info {
		if remote.Info[k] != v {
			t.Errorf("info[%s] = %#v; want %#v", k, remote.Info[k], v)
		}
	}
}

func TestRedirectRefusal(t *testing.T) {
	t.Run("refused attach fails NewReceiver", func(t *testing.T) {
		rec := newRecorder()
		rec.attach = func(context.Context, *Link) error { return redirectErr }
		c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
		_, err := mustSession(t, c).NewReceiver(testCtx(t), "/messages/events/", nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) {
			t.Fatalf("NewReceiver = %v (%T); want *amqp.Error", err, err)
		}
		checkRedirect(t, ae)
	})
	t.Run("detach after attach fails first Receive", func(t *testing.T) {
		rec := newRecorder()
		rec.attach = func(context.Context, *Link) error { return &DetachAfterAttach{Err: redirectErr} }
		c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
		ctx := testCtx(t)
		rcv, err := mustSession(t, c).NewReceiver(ctx, "/messages/events/", nil)
		if err != nil {
			t.Fatalf("NewReceiver: %v", err)
		}
		_, err = rcv.Receive(ctx, nil)
		var le *amqp.LinkError
		if !errors.As(err, &le) {
			t.Fatalf("Receive = %v (%T); want *amqp.LinkError", err, err)
		}
		checkRedirect(t, le.RemoteErr)
	})
	t.Run("unauthorized sender", func(t *testing.T) {
		rec := newRecorder()
		rec.attach = func(context.Context, *Link) error {
			return &Error{Condition: ErrCondUnauthorizedAccess, Description: "put a token first"}
		}
		c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
		_, err := mustSession(t, c).NewSender(testCtx(t), "/messages/devicebound", nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondUnauthorizedAccess {
			t.Fatalf("NewSender = %v; want amqp:unauthorized-access", err)
		}
	})
	t.Run("default handler refuses", func(t *testing.T) {
		c, _ := mustClient(t, nil, nil)
		_, err := mustSession(t, c).NewSender(testCtx(t), "x", nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondNotFound {
			t.Fatalf("NewSender = %v; want amqp:not-found", err)
		}
	})
}

func TestLinkCloseBothWays(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	sess := mustSession(t, c)

	// client closes: server Receive ends with *LinkError
	snd, err := sess.NewSender(ctx, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	if err := snd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var le *LinkError
	if _, err := l.Receive(ctx); !errors.As(err, &le) || le.RemoteErr != nil {
		t.Fatalf("Receive after client close = %v; want *LinkError without remote error", err)
	}
	<-l.Done()

	// server closes with an error: client sees it
	rcv, err := sess.NewReceiver(ctx, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	l = rec.nextLink(t)
	if err := l.Close(ctx, &Error{Condition: ErrCondStolen, Description: "epoch"}); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var cle *amqp.LinkError
	if _, err := rcv.Receive(ctx, nil); !errors.As(err, &cle) || cle.RemoteErr == nil || cle.RemoteErr.Condition != amqp.ErrCondStolen {
		t.Fatalf("client Receive = %v; want *amqp.LinkError amqp:link:stolen", err)
	}
	if err := l.Send(ctx, amqp.NewMessage(nil)); !errors.As(err, &le) || le.LocalErr == nil {
		t.Fatalf("Send after Close = %v; want *LinkError with LocalErr", err)
	}
	if err := l.Close(ctx, nil); err != nil {
		t.Fatalf("second Close = %v; want nil", err)
	}
}

func TestSessionEndAndConnCloseUnblock(t *testing.T) {
	rec := newRecorder()
	c, s := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	sess := mustSession(t, c)
	if _, err := sess.NewSender(ctx, "a", nil); err != nil {
		t.Fatal(err)
	}
	l1 := rec.nextLink(t)
	recvErr := make(chan error, 1)
	go func() { _, err := l1.Receive(ctx); recvErr <- err }()
	if err := sess.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var se *SessionError
	if err := <-recvErr; !errors.As(err, &se) {
		t.Fatalf("Receive after session end = %v; want *SessionError", err)
	}

	sess2 := mustSession(t, c)
	if _, err := sess2.NewReceiver(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	l2 := rec.nextLink(t)
	sendErr := make(chan error, 1)
	go func() { sendErr <- l2.Send(ctx, amqp.NewMessage([]byte("unacked"))) }()
	closeClient(t, c)
	var ce *ConnError
	if err := <-sendErr; !errors.As(err, &ce) {
		t.Fatalf("Send after client close = %v; want *ConnError", err)
	}
	if err := s.wait(t); err != nil {
		t.Fatalf("Serve = %v; want nil", err)
	}
}

func TestManySessionsAndLinks(t *testing.T) {
	const sessions, links, msgs = 4, 5, 20
	rec := newRecorder()
	var received sync.WaitGroup
	received.Add(sessions * links * msgs)
	rec.attach = func(ctx context.Context, l *Link) error {
		go func() {
			for {
				d, err := l.Receive(ctx)
				if err != nil {
					return
				}
				_ = d.Accept()
				received.Done()
			}
		}()
		return nil
	}
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler, LinkCredit: 3}, nil)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, sessions*links)
	for i := 0; i < sessions; i++ {
		sess := mustSession(t, c)
		for j := 0; j < links; j++ {
			snd, err := sess.NewSender(ctx, fmt.Sprintf("s%d/l%d", i, j), nil)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < msgs; k++ {
					if err := snd.Send(ctx, amqp.NewMessage([]byte{byte(k)}), nil); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	received.Wait()
}

func sameProperties(a, b *amqp.MessageProperties) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	if (x.AbsoluteExpiryTime == nil) != (y.AbsoluteExpiryTime == nil) ||
		(x.AbsoluteExpiryTime != nil && !x.AbsoluteExpiryTime.Equal(*y.AbsoluteExpiryTime)) {
		return false
	}
	x.AbsoluteExpiryTime, y.AbsoluteExpiryTime = nil, nil
	return reflect.DeepEqual(x, y)
}

func sameAnnotations(a, b amqp.Annotations) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if tv, ok := v.(time.Time); ok {
			if got, ok := a[k].(time.Time); !ok || !got.Equal(tv) {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(a[k], v) {
			return false
		}
	}
	return true
}

func TestDrainFromClientReceiver(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	rcv, err := mustSession(t, c).NewReceiver(ctx, "src", &amqp.ReceiverOptions{Credit: -1})
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	if err := rcv.IssueCredit(3); err != nil {
		t.Fatal(err)
	}
	if err := rcv.DrainCredit(ctx, nil); err != nil {
		t.Fatalf("DrainCredit = %v; want nil once the server answers the drain", err)
	}
	// all credit is gone: a Send must wait for new credit
	sent := make(chan error, 1)
	go func() { sent <- l.Send(ctx, amqp.NewMessage([]byte("after drain"))) }()
	if err := rcv.IssueCredit(1); err != nil {
		t.Fatal(err)
	}
	m, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.AcceptMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

func TestClientSenderReceiverSettleModeSecond(t *testing.T) {
	rec := newRecorder()
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	snd, err := mustSession(t, c).NewSender(ctx, "q", &amqp.SenderOptions{
		RequestedReceiverSettleMode: ptr(amqp.ReceiverSettleModeSecond)})
	if err != nil {
		t.Fatal(err)
	}
	l := rec.nextLink(t)
	if l.ReceiverSettleMode() != ReceiverSettleModeSecond {
		t.Fatalf("ReceiverSettleMode = %v; want second", l.ReceiverSettleMode())
	}
	sent := make(chan error, 1)
	go func() { sent <- snd.Send(ctx, amqp.NewMessage([]byte("twice")), nil) }()
	d, err := l.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Accept(); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("client Send = %v", err)
	}
}

func TestCloseDuringAttachDetachesAfterAnswer(t *testing.T) {
	rec := newRecorder()
	rec.attach = func(ctx context.Context, l *Link) error {
		if err := l.Close(ctx, redirectErr); err != nil {
			return err
		}
		return nil
	}
	c, _ := mustClient(t, &ConnOptions{NewHandler: rec.newHandler}, nil)
	ctx := testCtx(t)
	rcv, err := mustSession(t, c).NewReceiver(ctx, "/messages/events/", nil)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	_, err = rcv.Receive(ctx, nil)
	var le *amqp.LinkError
	if !errors.As(err, &le) {
		t.Fatalf("Receive = %v; want *amqp.LinkError", err)
	}
	checkRedirect(t, le.RemoteErr)
}
