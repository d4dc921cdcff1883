package goeventhubs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/hub/telemetry"
)

// consumer is an azeventhubs consumer client of the hub's Event
// Hub-compatible endpoint in $Default, as policy.
func (h *testHub) consumer(policy string) *azeventhubs.ConsumerClient {
	h.t.Helper()
	c, err := azeventhubs.NewConsumerClientFromConnectionString(h.eventHubCS(policy), "", azeventhubs.DefaultConsumerGroup,
		&azeventhubs.ConsumerClientOptions{TLSConfig: h.tls, RetryOptions: azeventhubs.RetryOptions{MaxRetries: 1, RetryDelay: 10 * time.Millisecond}})
	if err != nil {
		h.t.Fatalf("NewConsumerClientFromConnectionString: %v", err)
	}
	h.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// GetEventHubProperties and GetPartitionProperties read every field
// they need from the hub's $management answers.
func TestProperties(t *testing.T) {
	h := startHub(t)
	c := h.consumer("service")
	ctx := testCtx(t)
	props, err := c.GetEventHubProperties(ctx, nil)
	if err != nil {
		t.Fatalf("GetEventHubProperties: %v", err)
	}
	if props.Name != "iothub" || !slices.Equal(props.PartitionIDs, []string{"0", "1", "2", "3"}) || props.GeoReplicationEnabled || props.CreatedOn.IsZero() {
		t.Errorf("GetEventHubProperties = %+v; want iothub with partitions 0-3, created, without geo-replication", props)
	}

	evs := h.send("dev1", 3)
	pid := h.partition("dev1")
	pp, err := c.GetPartitionProperties(ctx, pid, nil)
	if err != nil {
		t.Fatalf("GetPartitionProperties(%s): %v", pid, err)
	}
	last := evs[len(evs)-1]
	if pp.PartitionID != pid || pp.EventHubName != "iothub" || pp.IsEmpty || pp.BeginningSequenceNumber != 0 ||
		pp.LastEnqueuedSequenceNumber != last.SequenceNumber || pp.LastEnqueuedOffset != last.Offset ||
		!pp.LastEnqueuedOn.Equal(last.EnqueuedTime.Truncate(time.Millisecond)) {
		t.Errorf("GetPartitionProperties(%s) = %+v; want the last event %d at %v", pid, pp, last.SequenceNumber, last.EnqueuedTime)
	}
	for _, other := range props.PartitionIDs {
		if other == pid {
			continue
		}
		pp, err := c.GetPartitionProperties(ctx, other, nil)
		if err != nil || !pp.IsEmpty || pp.LastEnqueuedSequenceNumber != -1 {
			t.Errorf("GetPartitionProperties(%s) of an empty partition = %+v, %v", other, pp, err)
		}
	}
}

// receive reads n events from a partition client.
func receive(t *testing.T, pc *azeventhubs.PartitionClient, n int) []int64 {
	t.Helper()
	ctx := testCtx(t)
	var seqs []int64
	for len(seqs) < n {
		evs, err := pc.ReceiveEvents(ctx, n-len(seqs), nil)
		for _, ev := range evs {
			seqs = append(seqs, ev.SequenceNumber)
		}
		if err != nil {
			t.Fatalf("ReceiveEvents after %v: %v", seqs, err)
		}
	}
	return seqs
}

func seqsFrom(evs []telemetry.Event, keep func(telemetry.Event) bool) []int64 {
	var out []int64
	for _, ev := range evs {
		if keep(ev) {
			out = append(out, ev.SequenceNumber)
		}
	}
	return out
}

// Partition clients start at every position the SDK can express.
func TestStartPositions(t *testing.T) {
	h := startHub(t)
	c := h.consumer("service")
	evs := h.send("dev1", 5)
	pid := h.partition("dev1")
	yes := true
	str := func(s string) *string { return &s }
	i64 := func(n int64) *int64 { return &n }
	// The enqueued time of the fourth event, in milliseconds as the
	// SDK sends it.
	at := evs[3].EnqueuedTime.Truncate(time.Millisecond)
	for _, tc := range []struct {
		name string
		pos  azeventhubs.StartPosition
		want []int64
	}{
		{"earliest", azeventhubs.StartPosition{Earliest: &yes}, []int64{0, 1, 2, 3, 4}},
		{"offset, exclusive", azeventhubs.StartPosition{Offset: str(evs[1].Offset)}, []int64{2, 3, 4}},
		{"offset, inclusive", azeventhubs.StartPosition{Offset: str(evs[1].Offset), Inclusive: true}, []int64{1, 2, 3, 4}},
		{"sequence number, exclusive", azeventhubs.StartPosition{SequenceNumber: i64(2)}, []int64{3, 4}},
		{"sequence number, inclusive", azeventhubs.StartPosition{SequenceNumber: i64(2), Inclusive: true}, []int64{2, 3, 4}},
		{"enqueued time, inclusive", azeventhubs.StartPosition{EnqueuedTime: &at, Inclusive: true},
			seqsFrom(evs, func(ev telemetry.Event) bool { return !ev.EnqueuedTime.Truncate(time.Millisecond).Before(at) })},
		{"enqueued time, exclusive", azeventhubs.StartPosition{EnqueuedTime: &at},
			seqsFrom(evs, func(ev telemetry.Event) bool { return ev.EnqueuedTime.Truncate(time.Millisecond).After(at) })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) == 0 {
				t.Fatalf("the events do not have enqueued times of their own (%v): %s selects none", at, tc.name)
			}
			pc, err := c.NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{StartPosition: tc.pos})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close(context.Background())
			if got := receive(t, pc, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Errorf("from %+v: %v; want %v", tc.pos, got, tc.want)
			}
		})
	}

	t.Run("latest", func(t *testing.T) {
		pc, err := c.NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Latest: &yes}})
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(context.Background())
		// The client attaches on its first ReceiveEvents: the events
		// already in the partition are not among what it gets.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		old, err := pc.ReceiveEvents(ctx, 1, nil)
		cancel()
		if len(old) != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReceiveEvents from the latest position before new events = %d events, %v; want none", len(old), err)
		}
		evs := h.send("dev1", 1)
		if got := receive(t, pc, 1); got[0] != evs[len(evs)-1].SequenceNumber {
			t.Errorf("from the latest position: %v; want the new event %d", got, evs[len(evs)-1].SequenceNumber)
		}
	})
}

// unauthorized reports whether err is the SDK's unauthorized-access
// error: an *azeventhubs.Error with that code, or (management calls
// return the link's error as it is) the AMQP error
// amqp:unauthorized-access.
func unauthorized(err error) bool {
	var ae *azeventhubs.Error
	if errors.As(err, &ae) {
		return ae.Code == azeventhubs.ErrorCodeUnauthorizedAccess
	}
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Condition == amqp.ErrCondUnauthorizedAccess
}

// A policy without ServiceConnect gets the SDK's unauthorized-access
// error, saying which right is missing, without retrying.
func TestPolicyWithoutRights(t *testing.T) {
	h := startHub(t)
	c := h.consumer("registryRead")
	_, err := c.GetEventHubProperties(testCtx(t), nil)
	if !unauthorized(err) || !strings.Contains(err.Error(), "ServiceConnect") {
		t.Fatalf("GetEventHubProperties as registryRead = %v (%T); want amqp:unauthorized-access naming ServiceConnect", err, err)
	}
	pc, err := c.NewPartitionClient("0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	_, err = pc.ReceiveEvents(testCtx(t), 1, nil)
	var ae *azeventhubs.Error
	if !errors.As(err, &ae) || ae.Code != azeventhubs.ErrorCodeUnauthorizedAccess {
		t.Fatalf("ReceiveEvents as registryRead = %v (%T); want *azeventhubs.Error %s", err, err, azeventhubs.ErrorCodeUnauthorizedAccess)
	}
}
