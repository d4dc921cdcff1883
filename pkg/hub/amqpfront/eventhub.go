package amqpfront

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/iotctl/iotctl/pkg/amqp1"
)

// DefaultConsumerGroup is the consumer group every Event
// Hub-compatible endpoint has (matched case-insensitively).
const DefaultConsumerGroup = "$Default"

// ValidConsumerGroup checks a consumer group name against the Event
// Hubs naming rules: 1 to 50 letters, digits, '.', '-' and '_',
// starting and ending with a letter or digit.
func ValidConsumerGroup(name string) error {
	if name == "" || len(name) > 50 {
		return fmt.Errorf("consumer group %q: a name has 1 to 50 characters", name)
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !alnum(c) && c != '.' && c != '-' && c != '_' {
			return fmt.Errorf("consumer group %q: only letters, digits, '.', '-' and '_' are allowed", name)
		}
	}
	if !alnum(name[0]) || !alnum(name[len(name)-1]) {
		return fmt.Errorf("consumer group %q: a name starts and ends with a letter or digit", name)
	}
	return nil
}

// consumerGroups returns the groups of an endpoint with extra besides
// DefaultConsumerGroup, keyed by lower-cased name.
func consumerGroups(extra []string) map[string]string {
	g := map[string]string{strings.ToLower(DefaultConsumerGroup): DefaultConsumerGroup}
	for _, n := range extra {
		g[strings.ToLower(n)] = n
	}
	return g
}

// groupList names the consumer groups for an error message.
func (f *Front) groupList() string {
	names := make([]string, 0, len(f.groups))
	for _, n := range f.groups {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Link properties and capabilities of Event Hubs receivers.
const (
	propEpoch        = "com.microsoft:epoch"
	capRuntimeMetric = "com.microsoft:enable-receiver-runtime-metric"
	eventReadBatch   = 256
	// eventWindow is how many events a partition receiver may hold
	// unsettled: enough to keep a client that accepts each event (the
	// Event Hubs SDKs) streaming instead of one round trip per event.
	eventWindow = 256
)

// redirect is the amqp:link:redirect error that sends a receiver at
// the hub's messages/events{/rest} to the Event Hub-compatible
// endpoint: info hostname and network-host (the redirect host), port
// (an int) and address "amqps://{host}:{port}/{eventhub}/{rest}", the
// form IoT Hub uses (clients read the Event Hub name from the address).
func (f *Front) redirect(path string) *amqp1.Error {
	// path is "messages/events" or "messages/events/{rest}", in any case.
	rest := ""
	if len(path) > len(nodeEvents) && strings.EqualFold(path[:len(nodeEvents)], nodeEvents) {
		rest = strings.Trim(path[len(nodeEvents):], "/")
	}
	host, port := f.opts.RedirectHost, f.opts.RedirectPort
	return &amqp1.Error{
		Condition:   amqp1.ErrCondLinkRedirect,
		Description: "read telemetry from the Event Hub-compatible endpoint " + f.ehName,
		Info: map[string]any{
			"hostname":     host,
			"network-host": host,
			"port":         int32(port),
			"address":      fmt.Sprintf("amqps://%s:%d/%s/%s", host, port, f.ehName, rest),
		},
	}
}

// partitionKey is one partition as read by one consumer group (the
// group's lower-cased name).
type partitionKey struct {
	group string
	part  int
}

// partitionOf reads a lower-cased node path of the form
// "{eventhub}/consumergroups/{group}/partitions/{id}". ok reports
// whether p has that form; err refuses an unknown event hub, consumer
// group or partition.
func (f *Front) partitionOf(p string) (key partitionKey, ok bool, err *amqp1.Error) {
	s := strings.Split(p, "/")
	if len(s) != 5 || s[1] != "consumergroups" || s[3] != "partitions" {
		return key, false, nil
	}
	if s[0] != strings.ToLower(f.ehName) {
		return key, true, &amqp1.Error{Condition: amqp1.ErrCondNotFound,
			Description: "no event hub " + quote(s[0]) + " here; this hub's is " + quote(f.ehName)}
	}
	if _, known := f.groups[s[2]]; !known {
		return key, true, &amqp1.Error{Condition: amqp1.ErrCondNotFound,
			Description: "no consumer group " + quote(s[2]) + " in event hub " + quote(f.ehName) + "; it has " + f.groupList() +
				" (iotctl hub serve --consumer-group NAME adds one)"}
	}
	n, convErr := strconv.Atoi(s[4])
	if convErr != nil || n < 0 || n >= f.tel.Partitions() || strconv.Itoa(n) != s[4] {
		return key, true, &amqp1.Error{Condition: CondArgumentOutOfRange,
			Description: fmt.Sprintf("the specified partition %q is invalid; it should be between 0 and %d", s[4], f.tel.Partitions()-1)}
	}
	return partitionKey{group: s[2], part: n}, true, nil
}

// attachPartition accepts a receiver on a partition: it reads the
// start position from the selector filter, applies the epoch (owner
// level) rules and starts sending events.
func (f *Front) attachPartition(ctx context.Context, l *amqp1.Link, key partitionKey, log *slog.Logger) error {
	part := key.part
	sel, _ := l.Source().Selector()
	pos, err := parseSelector(sel)
	if err != nil {
		return &amqp1.Error{Condition: CondArgumentError, Description: err.Error()}
	}
	epoch, hasEpoch := epochOf(l.Properties()[propEpoch])
	stolen, refuse := f.epochs.join(key, l, epoch, hasEpoch)
	if refuse != nil {
		return refuse
	}
	for _, o := range stolen {
		go func() {
			cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			_ = o.Close(cctx, &amqp1.Error{Condition: amqp1.ErrCondStolen,
				Description: fmt.Sprintf("a receiver with epoch %d attached to partition %d", epoch, part)})
		}()
	}
	seq := f.startSeq(part, pos)
	metrics := false
	for _, c := range l.DesiredCapabilities() {
		if c == capRuntimeMetric {
			metrics = true
		}
	}
	log.Debug("amqp event hub receiver attached", "partition", part, "selector", sel, "from", pos, "seq", seq)
	go func() {
		defer f.epochs.leave(key, l)
		f.streamPartition(ctx, l, part, seq, metrics)
	}()
	return nil
}

// startSeq is the sequence number a receiver starting at pos reads
// first.
func (f *Front) startSeq(part int, pos position) int64 {
	switch pos.kind {
	case posEnd:
		return f.tel.Info(part).Last + 1
	case posSeq:
		return pos.seq
	case posTime:
		return f.tel.SeqAt(part, pos.t)
	}
	return 0
}

// streamPartition sends the events of a partition from sequence number
// seq on, following the log as it grows, as fast as the peer's credit
// allows, until the link or connection ends. Events are sent as the
// peer's settle mode says, with up to eventWindow of them waiting for
// the peer's outcome at a time; an event the peer rejects or releases
// is not sent again (Event Hubs has no redelivery).
func (f *Front) streamPartition(ctx context.Context, l *amqp1.Link, part int, seq int64, metrics bool) {
	var waiting []*amqp1.Outcome // oldest first
	for {
		evs, changed := f.tel.Read(part, seq, eventReadBatch)
		if len(evs) == 0 {
			select {
			case <-changed:
				continue
			case <-l.Done():
				return
			case <-ctx.Done():
				return
			}
		}
		for i := range evs {
			ev := &evs[i]
			if len(waiting) == eventWindow {
				if err := waiting[0].Wait(ctx); err != nil && !isOutcome(err) {
					return
				}
				waiting = waiting[1:]
			}
			msg := eventMessage(ev)
			if metrics {
				addRuntimeMetrics(msg, f.tel.Info(part), f.now())
			}
			o, err := l.Start(ctx, msg)
			switch {
			case errors.Is(err, amqp1.ErrMessageTooLarge):
				f.log.Debug("amqp event skipped: larger than the receiver accepts", "partition", part, "seq", ev.SequenceNumber)
			case err != nil:
				return
			default:
				waiting = append(waiting, o)
			}
			seq = ev.SequenceNumber + 1
		}
	}
}

// isOutcome reports whether a Send error is only the peer's outcome
// for one message (not the end of the link).
func isOutcome(err error) bool {
	return errors.Is(err, amqp1.ErrReleased) || errors.As(err, new(*amqp1.RejectedError)) || errors.As(err, new(*amqp1.ModifiedError))
}

// epochOf reads the com.microsoft:epoch link property (a long).
func epochOf(v any) (int64, bool) {
	switch e := v.(type) {
	case int64:
		return e, true
	case int32:
		return int64(e), true
	case int:
		return int64(e), true
	case uint32:
		return int64(e), true
	case uint64:
		return int64(e), true
	}
	return 0, false
}

// epochTable keeps the receivers of each partition of each consumer
// group with their epochs (owner levels), shared by all connections,
// to apply Event Hubs' rules within a group: a receiver with an epoch takes the partition from receivers
// with a lower epoch or none (they are closed with amqp:link:stolen),
// and a receiver with a lower epoch, or without one while an epoch
// receiver holds the partition, is refused.
type epochTable struct {
	mu    sync.Mutex
	parts map[partitionKey][]epochReceiver
}

type epochReceiver struct {
	l     *amqp1.Link
	epoch int64
	has   bool
}

func newEpochTable() *epochTable { return &epochTable{parts: map[partitionKey][]epochReceiver{}} }

// join adds l to a partition. It returns the receivers l takes the
// partition from, or the error refusing l.
func (t *epochTable) join(key partitionKey, l *amqp1.Link, epoch int64, has bool) (stolen []*amqp1.Link, refuse *amqp1.Error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var keep []epochReceiver
	for _, r := range t.parts[key] {
		if r.l.Err() != nil {
			continue
		}
		switch {
		case r.has && (!has || r.epoch > epoch):
			return nil, &amqp1.Error{Condition: amqp1.ErrCondStolen, Description: fmt.Sprintf(
				"a receiver with epoch %d holds partition %d; %s", r.epoch, key.part, map[bool]string{true: "this one's epoch " + strconv.FormatInt(epoch, 10) + " is lower", false: "this one has no epoch"}[has])}
		case has && (!r.has || r.epoch < epoch):
			stolen = append(stolen, r.l)
		default:
			keep = append(keep, r)
		}
	}
	t.parts[key] = append(keep, epochReceiver{l: l, epoch: epoch, has: has})
	return stolen, nil
}

// leave removes l from a partition.
func (t *epochTable) leave(key partitionKey, l *amqp1.Link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs := t.parts[key]
	for i, r := range rs {
		if r.l == l {
			t.parts[key] = append(rs[:i:i], rs[i+1:]...)
			break
		}
	}
	if len(t.parts[key]) == 0 {
		delete(t.parts, key)
	}
}
