package amqpfront

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/telemetry"
)

const ehAudience = "sb://myhub.local:5671/myhub"

// mgmt sends one READ request on $management and returns the reply.
func mgmt(t *testing.T, s *amqp.Session, props map[string]any) *amqp.Message {
	t.Helper()
	ctx := testCtx(t)
	snd, err := s.NewSender(ctx, "$management", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close(ctx)
	rcv, err := s.NewReceiver(ctx, "$management", &amqp.ReceiverOptions{TargetAddress: "mgmt-reply"})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close(ctx)
	props["operation"] = "READ"
	props["security_token"] = "ignored"
	if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: "m1", ReplyTo: strp("mgmt-reply")},
		ApplicationProperties: props, Value: []byte("[]")}, nil); err != nil {
		t.Fatal(err)
	}
	res, err := rcv.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = rcv.AcceptMessage(ctx, res)
	if res.Properties == nil || res.Properties.CorrelationID != "m1" {
		t.Fatalf("management reply properties %+v; want correlation-id m1", res.Properties)
	}
	return res
}

// $management answers READ for the event hub and its partitions with
// the keys and AMQP types Event Hubs uses.
func TestManagement(t *testing.T) {
	created := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	now := time.Now().Truncate(time.Millisecond)
	h := newTestHub(t, nil, &Options{CreatedAt: created, Now: func() time.Time { return now }})
	s := h.session("service", ehAudience+"/$management")

	res := mgmt(t, s, map[string]any{"type": "com.microsoft:eventhub", "name": "myhub"})
	body, ok := res.Value.(map[string]any)
	if res.ApplicationProperties["status-code"] != int32(200) || !ok {
		t.Fatalf("eventhub READ = %v %#v", res.ApplicationProperties, res.Value)
	}
	ids, _ := body["partition_ids"].([]string)
	if body["name"] != "myhub" || body["partition_count"] != int32(4) || fmt.Sprint(ids) != "[0 1 2 3]" {
		t.Errorf("eventhub READ body %#v", body)
	}
	if ca, ok := body["created_at"].(time.Time); !ok || !ca.Equal(created) {
		t.Errorf("created_at = %#v; want the timestamp %v", body["created_at"], created)
	}
	// azeventhubs/v2 fails without it; .NET wants an int.
	if body["georeplication_factor"] != int32(1) {
		t.Errorf("georeplication_factor = %#v; want the int 1", body["georeplication_factor"])
	}

	dev := deviceOn(h, 2)
	res = mgmt(t, s, map[string]any{"type": "com.microsoft:partition", "name": "myhub", "partition": "2"})
	body, _ = res.Value.(map[string]any)
	if body["name"] != "myhub" || body["partition"] != "2" || body["begin_sequence_number"] != int64(0) ||
		body["last_enqueued_sequence_number"] != int64(-1) || body["last_enqueued_offset"] != "-1" || body["is_partition_empty"] != true {
		t.Errorf("empty partition READ body %#v", body)
	}
	if lt, ok := body["last_enqueued_time_utc"].(time.Time); !ok || lt.Unix() != 0 {
		t.Errorf("empty partition last_enqueued_time_utc %#v", body["last_enqueued_time_utc"])
	}
	if rt, ok := body["runtime_info_retrieval_time_utc"].(time.Time); !ok || !rt.Equal(now) {
		t.Errorf("runtime_info_retrieval_time_utc %#v; want the timestamp %v", body["runtime_info_retrieval_time_utc"], now)
	}
	evs := h.appendEvents(dev, 3)
	res = mgmt(t, s, map[string]any{"type": "com.microsoft:partition", "name": "MyHub", "partition": "2"})
	body, _ = res.Value.(map[string]any)
	if body["last_enqueued_sequence_number"] != int64(2) || body["last_enqueued_offset"] != "2" || body["is_partition_empty"] != false {
		t.Errorf("partition READ body %#v", body)
	}
	if lt, ok := body["last_enqueued_time_utc"].(time.Time); !ok || !lt.Equal(evs[2].EnqueuedTime.Truncate(time.Millisecond)) {
		t.Errorf("last_enqueued_time_utc %#v; want %v", body["last_enqueued_time_utc"], evs[2].EnqueuedTime)
	}

	for _, tc := range []struct {
		props map[string]any
		want  int32
	}{
		{map[string]any{"type": "com.microsoft:eventhub", "name": "other"}, 404},
		{map[string]any{"type": "com.microsoft:partition", "name": "myhub", "partition": "4"}, 404},
		{map[string]any{"type": "com.microsoft:partition", "name": "myhub", "partition": "01"}, 404},
		{map[string]any{"type": "com.microsoft:consumergroup", "name": "myhub"}, 400},
	} {
		res := mgmt(t, s, tc.props)
		if res.ApplicationProperties["status-code"] != tc.want || res.ApplicationProperties["status-description"] == "" {
			t.Errorf("READ %v = %v; want %d with a description", tc.props, res.ApplicationProperties, tc.want)
		}
	}
}

// receiver attaches to a partition with a selector filter.
func receiver(t *testing.T, s *amqp.Session, part int, selector string, opts *amqp.ReceiverOptions) (*amqp.Receiver, error) {
	t.Helper()
	if opts == nil {
		opts = &amqp.ReceiverOptions{Credit: 100}
	}
	if selector != "" {
		opts.Filters = []amqp.LinkFilter{amqp.NewSelectorFilter(selector)}
	}
	return s.NewReceiver(testCtx(t), "myhub/ConsumerGroups/$default/Partitions/"+strconv.Itoa(part), opts)
}

// receiveSeqs receives n events and returns their sequence numbers.
func receiveSeqs(t *testing.T, r *amqp.Receiver, n int) []int64 {
	t.Helper()
	ctx := testCtx(t)
	var out []int64
	for range n {
		m, err := r.Receive(ctx, nil)
		if err != nil {
			t.Fatalf("Receive after %v: %v", out, err)
		}
		_ = r.AcceptMessage(ctx, m)
		seq, ok := m.Annotations["x-opt-sequence-number"].(int64)
		if !ok {
			t.Fatalf("x-opt-sequence-number is %T", m.Annotations["x-opt-sequence-number"])
		}
		out = append(out, seq)
	}
	return out
}

// Receivers start where their selector filter says and carry the
// annotations and properties IoT Hub gives telemetry.
func TestPartitionReceivers(t *testing.T) {
	h := newTestHub(t, nil, nil)
	s := h.session("service", ehAudience)
	dev := deviceOn(h, 1)
	evs := h.appendEvents(dev, 5)

	r, err := receiver(t, s, 1, "amqp.annotation.x-opt-offset > '-1'", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Receive(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = r.AcceptMessage(testCtx(t), m)
	ev := evs[0]
	ann := m.Annotations
	want := map[string]any{
		"iothub-connection-device-id":          dev,
		"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
		"iothub-connection-auth-generation-id": "638000000000000001",
		"iothub-message-source":                "Telemetry",
		"x-opt-sequence-number":                int64(0),
		"x-opt-offset":                         "0",
	}
	for k, v := range want {
		if ann[k] != v {
			t.Errorf("annotation %s = %#v; want %#v", k, ann[k], v)
		}
	}
	for _, k := range []string{"iothub-enqueuedtime", "x-opt-enqueued-time"} {
		if tm, ok := ann[k].(time.Time); !ok || !tm.Equal(ev.EnqueuedTime.Truncate(time.Millisecond)) {
			t.Errorf("annotation %s = %#v; want the timestamp %v", k, ann[k], ev.EnqueuedTime)
		}
	}
	if _, ok := ann["iothub-connection-module-id"]; ok {
		t.Error("a device's event has iothub-connection-module-id")
	}
	p := m.Properties
	if p == nil || p.MessageID != "m-a" || p.CorrelationID != "c-1" || p.ContentType == nil || *p.ContentType != "application/json" ||
		p.ContentEncoding == nil || *p.ContentEncoding != "utf-8" {
		t.Errorf("properties %+v", p)
	}
	if m.ApplicationProperties["temperatureAlert"] != "true" || string(m.GetData()) != `{"n":0}` {
		t.Errorf("application properties %v, body %s", m.ApplicationProperties, m.GetData())
	}
	if got := receiveSeqs(t, r, 4); fmt.Sprint(got) != "[1 2 3 4]" {
		t.Errorf("from the start: %v", got)
	}

	for _, tc := range []struct {
		sel  string
		want string
	}{
		{"", "[0 1 2 3 4]"},
		{"amqp.annotation.x-opt-offset > '2'", "[3 4]"},
		{"amqp.annotation.x-opt-offset >= '2'", "[2 3 4]"},
		{"amqp.annotation.x-opt-sequence-number > '0'", "[1 2 3 4]"},
		{"amqp.annotation.x-opt-sequence-number >= '4'", "[4]"},
		{fmt.Sprintf("amqp.annotation.x-opt-enqueued-time >= '%d'", evs[0].EnqueuedTime.UnixMilli()), "[0 1 2 3 4]"},
		// The legacy annotation name of older Event Hubs clients and
		// Microsoft's AMQP samples, quoted or not.
		{fmt.Sprintf("amqp.annotation.x-opt-enqueuedtimeutc > '%d'", evs[1].EnqueuedTime.UnixMilli()), "[2 3 4]"},
		{fmt.Sprintf("amqp.annotation.x-opt-enqueuedtimeutc > %d", evs[3].EnqueuedTime.UnixMilli()), "[4]"},
	} {
		r, err := receiver(t, s, 1, tc.sel, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.sel, err)
		}
		n := len(tc.want[1:len(tc.want)-1])/2 + 1
		if got := receiveSeqs(t, r, n); fmt.Sprint(got) != tc.want {
			t.Errorf("selector %q: %v; want %s", tc.sel, got, tc.want)
		}
		_ = r.Close(testCtx(t))
	}

	// A time after the last event, and @latest, wait for new events.
	late, err := receiver(t, s, 1, fmt.Sprintf("amqp.annotation.x-opt-enqueued-time > '%d'", evs[4].EnqueuedTime.UnixMilli()), nil)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := receiver(t, s, 1, "amqp.annotation.x-opt-offset > '@latest'", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The attach answer comes after the start position is fixed, so
	// this event is after it (and, with the test clock, a millisecond
	// later than evs[4]).
	h.appendEvents(dev, 1)
	if got := receiveSeqs(t, latest, 1); fmt.Sprint(got) != "[5]" {
		t.Errorf("@latest: %v; want [5]", got)
	}
	if got := receiveSeqs(t, late, 1); fmt.Sprint(got) != "[5]" {
		t.Errorf("after the last event's time: %v; want [5]", got)
	}

	// Bad selectors, groups and partitions are refused.
	for _, tc := range []struct{ addr, sel, cond string }{
		{"myhub/ConsumerGroups/$Default/Partitions/0", "amqp.annotation.x-opt-offset < '1'", "com.microsoft:argument-error"},
		{"myhub/ConsumerGroups/$Default/Partitions/9", "", "com.microsoft:argument-out-of-range"},
		{"myhub/ConsumerGroups/mine/Partitions/0", "", "amqp:not-found"},
		{"other/ConsumerGroups/$Default/Partitions/0", "", "amqp:unauthorized-access"},
	} {
		var opts amqp.ReceiverOptions
		if tc.sel != "" {
			opts.Filters = []amqp.LinkFilter{amqp.NewSelectorFilter(tc.sel)}
		}
		if _, err := s.NewReceiver(testCtx(t), tc.addr, &opts); condition(err) != tc.cond {
			t.Errorf("receiver on %s with %q: %v; want %s", tc.addr, tc.sel, err, tc.cond)
		}
	}
}

// A module's event names the module; runtime metrics come as delivery
// annotations when asked for; presettled receivers get events too.
func TestPartitionModuleAndMetrics(t *testing.T) {
	h := newTestHub(t, nil, nil)
	s := h.session("iothubowner", "sb://myhub.local")
	dev := deviceOn(h, 3)
	h.tel.Append(telemetry.Event{DeviceID: dev, ModuleID: "mod1", AuthMethod: "sas", GenerationID: "1", Message: nil})
	h.appendEvents(dev, 1)
	r, err := receiver(t, s, 3, "", &amqp.ReceiverOptions{Credit: 10, DesiredCapabilities: []string{"com.microsoft:enable-receiver-runtime-metric"},
		SettlementMode: amqp.ReceiverSettleModeFirst.Ptr(), RequestedSenderSettleMode: amqp.SenderSettleModeSettled.Ptr()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	m, err := r.Receive(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["iothub-connection-module-id"] != "mod1" ||
		m.Annotations["iothub-connection-auth-method"] != `{"scope":"module","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}` {
		t.Errorf("module event annotations %v", m.Annotations)
	}
	if m.DeliveryAnnotations["last_enqueued_sequence_number"] != int64(1) || m.DeliveryAnnotations["last_enqueued_offset"] != "1" {
		t.Errorf("delivery annotations %v", m.DeliveryAnnotations)
	}
	if _, err := r.Receive(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// A receiver with a higher epoch takes the partition; lower epochs and
// receivers without one are then refused.
func TestEpochs(t *testing.T) {
	h := newTestHub(t, nil, nil)
	s := h.session("service", ehAudience)
	epoch := func(e int64) *amqp.ReceiverOptions {
		return &amqp.ReceiverOptions{Properties: map[string]any{"com.microsoft:epoch": e}}
	}
	plain, err := receiver(t, s, 0, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := receiver(t, s, 0, "", epoch(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := plain.Receive(ctx, nil); condition(err) != "amqp:link:stolen" {
		t.Errorf("receiver without epoch after epoch 1 attached: %v; want amqp:link:stolen", err)
	}
	r2, err := receiver(t, s, 0, "", epoch(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Receive(ctx, nil); condition(err) != "amqp:link:stolen" {
		t.Errorf("epoch 1 after epoch 2 attached: %v; want amqp:link:stolen", err)
	}
	if _, err := receiver(t, s, 0, "", epoch(1)); condition(err) != "amqp:link:stolen" {
		t.Errorf("attaching epoch 1 while epoch 2 holds the partition: %v; want amqp:link:stolen", err)
	}
	if _, err := receiver(t, s, 0, "", nil); condition(err) != "amqp:link:stolen" {
		t.Errorf("attaching without epoch while epoch 2 holds the partition: %v; want amqp:link:stolen", err)
	}
	if _, err := receiver(t, s, 0, "", epoch(2)); err != nil {
		t.Errorf("a second receiver with the same epoch: %v", err)
	}
	if _, err := receiver(t, s, 1, "", nil); err != nil {
		t.Errorf("another partition: %v", err)
	}
	_ = r2
}

// A receiver at the hub's messages/events is redirected to the Event
// Hub-compatible endpoint.
func TestRedirect(t *testing.T) {
	h := newTestHub(t, nil, &Options{RedirectPort: 8443})
	s := h.session("service", testHost)
	for src, wantAddr := range map[string]string{
		"messages/events/": "amqps://myhub.local:8443/myhub/",
		"amqps://myhub.local/messages/events/$management":       "amqps://myhub.local:8443/myhub/$management",
		"/messages/events/ConsumerGroups/$Default/Partitions/1": "amqps://myhub.local:8443/myhub/ConsumerGroups/$Default/Partitions/1",
	} {
		// go-amqp returns the redirect from NewReceiver only when the
		// attach is answered with no terminus, as IoT Hub answers.
		_, err := s.NewReceiver(testCtx(t), src, nil)
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Condition != amqp.ErrCondLinkRedirect {
			t.Fatalf("NewReceiver(%s) = %v (%T); want *amqp.Error amqp:link:redirect", src, err, err)
		}
		info := ae.Info
		if info["hostname"] != "myhub.local" || info["network-host"] != "myhub.local" || info["port"] != int32(8443) || info["address"] != wantAddr {
			t.Errorf("redirect of %s: info %#v; want address %s", src, info, wantAddr)
		}
	}
}

// groupReceiver attaches to partition part of consumer group group.
func groupReceiver(t *testing.T, s *amqp.Session, group string, part int, opts *amqp.ReceiverOptions) (*amqp.Receiver, error) {
	t.Helper()
	if opts == nil {
		opts = &amqp.ReceiverOptions{Credit: 100}
	}
	opts.Filters = []amqp.LinkFilter{amqp.NewSelectorFilter("amqp.annotation.x-opt-offset > '-1'")}
	return s.NewReceiver(testCtx(t), "myhub/ConsumerGroups/"+group+"/Partitions/"+strconv.Itoa(part), opts)
}

// Configured consumer groups each read every event, case-insensitively
// by name, with epochs of their own; an unknown group is not found.
func TestConsumerGroups(t *testing.T) {
	h := newTestHub(t, nil, &Options{ConsumerGroups: []string{"Dashboards", "archive"}})
	s := h.session("service", ehAudience)
	dev := deviceOn(h, 2)
	h.appendEvents(dev, 3)

	for _, g := range []string{"$Default", "dashboards", "ARCHIVE"} {
		r, err := groupReceiver(t, s, g, 2, nil)
		if err != nil {
			t.Fatalf("group %s: %v", g, err)
		}
		if got := receiveSeqs(t, r, 3); fmt.Sprint(got) != "[0 1 2]" {
			t.Errorf("group %s read %v; want [0 1 2]", g, got)
		}
	}

	_, err := groupReceiver(t, s, "other", 2, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Condition != "amqp:not-found" || !strings.Contains(ae.Description, "$Default, Dashboards, archive") {
		t.Errorf("unknown group: %v; want amqp:not-found naming the groups", err)
	}

	// An epoch receiver in one group leaves the others alone.
	plain, err := groupReceiver(t, s, "archive", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := groupReceiver(t, s, "dashboards", 0, &amqp.ReceiverOptions{Credit: 10,
		Properties: map[string]any{"com.microsoft:epoch": int64(5)}}); err != nil {
		t.Fatal(err)
	}
	h.appendEvents(deviceOn(h, 0), 1)
	if got := receiveSeqs(t, plain, 1); len(got) != 1 {
		t.Errorf("the archive receiver read %v after an epoch receiver attached in another group", got)
	}
}

func TestValidConsumerGroup(t *testing.T) {
	for _, ok := range []string{"a", "dashboards", "Stream.Analytics-1_x", strings.Repeat("a", 50)} {
		if err := ValidConsumerGroup(ok); err != nil {
			t.Errorf("ValidConsumerGroup(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "a b", "a/b", "$Default", strings.Repeat("a", 51), "é"} {
		if err := ValidConsumerGroup(bad); err == nil {
			t.Errorf("ValidConsumerGroup(%q) = nil", bad)
		}
	}
}
