package service

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
)

// Event is one telemetry message read from the Event Hub-compatible
// endpoint.
type Event struct {
	DeviceID       string
	ModuleID       string
	Partition      string
	SequenceNumber int64
	Offset         string
	EnqueuedTime   time.Time
	// Properties are the device's application properties.
	Properties map[string]any
	// System holds the AMQP properties that were set: message-id,
	// correlation-id, user-id, content-type, content-encoding.
	System map[string]any
	// Annotations are the message annotations (iothub-*, x-opt-*).
	Annotations map[string]any
	Body        []byte
}

// MonitorOptions say what to read.
type MonitorOptions struct {
	// ConsumerGroup is the consumer group. Default: "$Default".
	ConsumerGroup string
	// From is where to start in each partition: "start" (the oldest
	// event kept), "now" (only new events), or a time. Default: now.
	From string
	// FromTime is used when From is "" and FromTime is not zero.
	FromTime time.Time
	// Retries is how many times a lost connection is re-established
	// (with back-off) before Monitor gives up. Default: 5.
	Retries int
	// OnReady, if set, is called each time the receivers of every
	// partition are attached (again after a reconnection), on the
	// goroutine that called Monitor: a caller that bounds the wait for
	// events, not the connecting, starts its clock there.
	OnReady func()
}

// ErrRedirect means the hub did not redirect the events receiver to an
// Event Hub-compatible endpoint.
var ErrRedirect = errors.New("service: the hub did not redirect to an Event Hub-compatible endpoint")

// ErrEventHubKey means Monitor was asked of a client without a shared
// access key: the Event Hub-compatible endpoint takes only its shared
// keys, not Microsoft Entra ID tokens (articles/iot-hub/
// authenticate-authorize-azure-ad.md); read it with MonitorEventHub and
// its connection string instead.
var ErrEventHubKey = errors.New("service: the Event Hub-compatible endpoint takes only shared access keys, not Microsoft Entra ID tokens: read it with its own connection string")

// eventHub is where and how to read telemetry.
type eventHub struct {
	ep       endpoint
	host     string // AMQP hostname, in the token audience
	name     string // entity path
	keyName  string
	key      []byte
	token    *sas.Token
	audience string
}

// Monitor reads the hub's telemetry from all partitions at once and
// calls fn for each event until ctx ends (nil) or fn returns an error
// (that error). It attaches to the hub's events address and follows
// the amqp:link:redirect answer to the Event Hub-compatible endpoint,
// as IoT Hub's clients do. A lost connection is re-established from
// the last event read, up to opts.Retries times.
func (c *Client) Monitor(ctx context.Context, opts MonitorOptions, fn func(Event) error) error {
	eh, err := c.discoverEventHub(ctx)
	if err != nil {
		return err
	}
	return c.monitor(ctx, eh, opts, fn)
}

// MonitorEventHub is Monitor for an Event Hub-compatible connection
// string (Endpoint=sb://...;EntityPath=...).
func MonitorEventHub(ctx context.Context, cs *connstr.ConnectionString, clientOpts *Options, opts MonitorOptions, fn func(Event) error) error {
	if err := cs.Require(connstr.KindEventHub); err != nil {
		return err
	}
	if cs.EntityPath == "" {
		return fmt.Errorf("service: the Event Hub-compatible connection string has no EntityPath")
	}
	// A Client carries the TLS settings and the clock; its HTTPS side
	// is not used.
	svc := &connstr.ConnectionString{Kind: connstr.KindService, HostName: cs.HostName, SharedAccessKeyName: cs.SharedAccessKeyName,
		SharedAccessKey: cs.SharedAccessKey, SharedAccessSignature: cs.SharedAccessSignature}
	if svc.SharedAccessKeyName == "" && svc.SharedAccessSignature != "" {
		if t, err := svc.Token(); err == nil {
			svc.SharedAccessKeyName = t.KeyName
		}
	}
	c, err := New(svc, clientOpts)
	if err != nil {
		return err
	}
	defer c.Close()
	eh := &eventHub{ep: c.eventHubEndpoint(cs.Host(), cs.Port()), host: cs.Host(), name: cs.EntityPath, keyName: cs.SharedAccessKeyName, key: c.key, token: c.token}
	return c.monitor(ctx, eh, opts, fn)
}

// discoverEventHub asks the hub where its events are.
func (c *Client) discoverEventHub(ctx context.Context) (*eventHub, error) {
	if c.key == nil && c.token == nil {
		return nil, ErrEventHubKey
	}
	s, err := c.hubAMQP(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.sess.NewReceiver(ctx, "messages/events/", nil)
	if err == nil {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = r.Receive(rctx, nil)
		cancel()
		_ = r.Close(ctx)
	}
	var le *amqp.LinkError
	var ae *amqp.Error
	var info map[string]any
	switch {
	case errors.As(err, &le) && le.RemoteErr != nil && le.RemoteErr.Condition == "amqp:link:redirect":
		info = le.RemoteErr.Info
	case errors.As(err, &ae) && ae.Condition == "amqp:link:redirect":
		info = ae.Info
	case err == nil:
		return nil, ErrRedirect
	default:
		return nil, fmt.Errorf("%w: %w", ErrRedirect, amqpError(err))
	}
	eh := &eventHub{keyName: c.cs.SharedAccessKeyName, key: c.key, token: c.token}
	host, _ := info["hostname"].(string)
	address, _ := info["address"].(string)
	port := fmt.Sprint(info["port"])
	if u, err := url.Parse(address); err == nil && u.Host != "" {
		if host == "" {
			host = u.Hostname()
		}
		if u.Port() != "" && (port == "" || port == "<nil>") {
			port = u.Port()
		}
		eh.name = strings.Trim(u.Path, "/")
	} else {
		eh.name = strings.Trim(address, "/")
	}
	if i := strings.Index(eh.name, "/"); i >= 0 {
		eh.name = eh.name[:i]
	}
	if host == "" || eh.name == "" {
		return nil, fmt.Errorf("%w: the redirect names no host or event hub (%v)", ErrRedirect, info)
	}
	n, _ := strconv.Atoi(port)
	eh.host = host
	if c.opts.WebSocket && strings.EqualFold(host, c.cs.Host()) {
		// The hub serves its events itself (the local hub): over its
		// own WebSocket endpoint.
		eh.ep = c.hubEndpoint()
	} else {
		eh.ep = c.eventHubEndpoint(host, n)
	}
	return eh, nil
}

// source returns the source of the Event Hub's tokens: the policy's
// key signs them for sb://{host}/{name}, or the policy's fixed token
// is used.
func (eh *eventHub) source(c *Client) TokenSource {
	eh.audience = "sb://" + eh.host + "/" + eh.name
	if eh.key == nil {
		return FixedSASSource(eh.token)
	}
	return NewSASSource(eh.audience, eh.keyName, eh.key, c.opts.TokenTTL, c.opts.Now)
}

// position is a selector filter for a partition.
func (o MonitorOptions) position(lastSeq map[string]int64, p string) string {
	if seq, ok := lastSeq[p]; ok {
		return fmt.Sprintf("amqp.annotation.x-opt-sequence-number > '%d'", seq)
	}
	switch {
	case o.From == "start":
		return "amqp.annotation.x-opt-offset > '-1'"
	case o.From == "now" || (o.From == "" && o.FromTime.IsZero()):
		return fmt.Sprintf("amqp.annotation.x-opt-enqueued-time > '%d'", time.Now().UnixMilli())
	}
	return fmt.Sprintf("amqp.annotation.x-opt-enqueued-time >= '%d'", o.FromTime.UnixMilli())
}

func (c *Client) monitor(ctx context.Context, eh *eventHub, opts MonitorOptions, fn func(Event) error) error {
	if opts.ConsumerGroup == "" {
		opts.ConsumerGroup = "$Default"
	}
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.From == "now" || (opts.From == "" && opts.FromTime.IsZero()) {
		opts.From, opts.FromTime = "", time.Now()
	}
	lastSeq := map[string]int64{}
	var lastErr error
	for attempt := 0; ; attempt++ {
		err := c.monitorOnce(ctx, eh, opts, lastSeq, fn)
		var fe fnError
		if errors.As(err, &fe) {
			return fe.err
		}
		if ctx.Err() != nil {
			return nil
		}
		// Refused credentials, an unknown event hub, consumer group or
		// partition, and bad arguments stay as they are on a retry.
		var ae *AMQPError
		if errors.As(err, &ae) && (errors.Is(ae, ErrUnauthorized) || errors.Is(ae, ErrNotFound) || errors.Is(ae, ErrBadRequest)) {
			return err
		}
		var pe *ProxyError
		if errors.As(err, &pe) && pe.Permanent() {
			return err
		}
		lastErr = err
		if attempt >= opts.Retries {
			return fmt.Errorf("service: monitor: connection lost and not restored after %d tries: %w", opts.Retries, lastErr)
		}
		c.log.Info("monitor connection lost; reconnecting", "err", err, "attempt", attempt+1)
		if werr := c.backoff(ctx, attempt, nil); werr != nil {
			return nil
		}
	}
}

// fnError marks an error returned by the caller's fn.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (c *Client) monitorOnce(ctx context.Context, eh *eventHub, opts MonitorOptions, lastSeq map[string]int64, fn func(Event) error) error {
	signer := eh.source(c)
	s, err := c.dialAMQP(ctx, eh.ep, eh.host, eh.audience, signer)
	if err != nil {
		return err
	}
	defer s.close()
	parts, err := partitionIDs(ctx, s, eh, signer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	events := make(chan Event, 256)
	errs := make(chan error, len(parts))
	var wg sync.WaitGroup
	// Stop the partition readers before waiting for them.
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, p := range parts {
		// Reading a log needs no per-event outcome: ask for the events
		// pre-settled, so the hub does not wait for a disposition of
		// each before it sends the next. (Events that still come
		// unsettled are accepted below.)
		r, err := s.sess.NewReceiver(ctx, eh.name+"/ConsumerGroups/"+opts.ConsumerGroup+"/Partitions/"+p, &amqp.ReceiverOptions{
			Credit:                    500,
			Filters:                   []amqp.LinkFilter{amqp.NewSelectorFilter(opts.position(lastSeq, p))},
			SettlementMode:            amqp.ReceiverSettleModeFirst.Ptr(),
			RequestedSenderSettleMode: amqp.SenderSettleModeSettled.Ptr(),
		})
		if err != nil {
			return fmt.Errorf("service: monitor partition %s: %w", p, amqpError(err))
		}
		wg.Add(1)
		go func(p string, r *amqp.Receiver) {
			defer wg.Done()
			for {
				m, err := r.Receive(ctx, nil)
				if err != nil {
					errs <- amqpError(err)
					return
				}
				_ = r.AcceptMessage(ctx, m)
				select {
				case events <- toEvent(p, m):
				case <-ctx.Done():
					return
				}
			}
		}(p, r)
	}
	if opts.OnReady != nil {
		opts.OnReady()
	}
	for {
		select {
		case ev := <-events:
			lastSeq[ev.Partition] = ev.SequenceNumber
			if err := fn(ev); err != nil {
				return fnError{err}
			}
		case err := <-errs:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// partitionIDs asks the $management node for the event hub's
// partitions.
func partitionIDs(ctx context.Context, s *amqpSession, eh *eventHub, src TokenSource) ([]string, error) {
	snd, err := s.sess.NewSender(ctx, "$management", nil)
	if err != nil {
		return nil, fmt.Errorf("service: $management: %w", amqpError(err))
	}
	defer snd.Close(ctx)
	replyTo := "$management-reply-" + uuid.NewString()[:8]
	rcv, err := s.sess.NewReceiver(ctx, "$management", &amqp.ReceiverOptions{TargetAddress: replyTo, Credit: 10})
	if err != nil {
		return nil, fmt.Errorf("service: $management: %w", amqpError(err))
	}
	defer rcv.Close(ctx)
	tok, err := src.Token(ctx)
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	req := &amqp.Message{
		Properties: &amqp.MessageProperties{MessageID: id, ReplyTo: &replyTo},
		ApplicationProperties: map[string]any{
			"operation": "READ",
			"type":      "com.microsoft:eventhub",
			"name":      eh.name,
		},
		Value: map[string]any{},
	}
	req.ApplicationProperties["security_token"] = tok.Value
	if err := snd.Send(ctx, req, nil); err != nil {
		return nil, fmt.Errorf("service: $management READ: %w", amqpError(err))
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		m, err := rcv.Receive(rctx, nil)
		if err != nil {
			return nil, fmt.Errorf("service: $management reply: %w", amqpError(err))
		}
		_ = rcv.AcceptMessage(ctx, m)
		if m.Properties != nil && fmt.Sprint(m.Properties.CorrelationID) != id {
			continue
		}
		if code, ok := m.ApplicationProperties["status-code"].(int32); ok && code != 200 {
			return nil, &AMQPError{Condition: "amqp:unauthorized-access", Description: fmt.Sprintf("$management answered %d %v", code, m.ApplicationProperties["status-description"])}
		}
		v, _ := m.Value.(map[string]any)
		if v == nil {
			if mv, ok := m.Value.(map[any]any); ok {
				v = map[string]any{}
				for k, x := range mv {
					v[fmt.Sprint(k)] = x
				}
			}
		}
		var ids []string
		switch p := v["partition_ids"].(type) {
		case []string:
			ids = p
		case []any:
			for _, x := range p {
				ids = append(ids, fmt.Sprint(x))
			}
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("service: $management named no partitions (%v)", v)
		}
		return ids, nil
	}
}

func toEvent(p string, m *amqp.Message) Event {
	ev := Event{Partition: p, Annotations: map[string]any{}, Properties: m.ApplicationProperties, System: map[string]any{}}
	for k, v := range m.Annotations {
		ks := fmt.Sprint(k)
		ev.Annotations[ks] = v
		switch ks {
		case "iothub-connection-device-id":
			ev.DeviceID, _ = v.(string)
		case "iothub-connection-module-id":
			ev.ModuleID, _ = v.(string)
		case "x-opt-sequence-number":
			ev.SequenceNumber, _ = v.(int64)
		case "x-opt-offset":
			ev.Offset = fmt.Sprint(v)
		case "x-opt-enqueued-time":
			ev.EnqueuedTime, _ = v.(time.Time)
		}
	}
	if pr := m.Properties; pr != nil {
		if pr.MessageID != nil {
			ev.System["message-id"] = fmt.Sprint(pr.MessageID)
		}
		if pr.CorrelationID != nil {
			ev.System["correlation-id"] = fmt.Sprint(pr.CorrelationID)
		}
		if len(pr.UserID) > 0 {
			ev.System["user-id"] = string(pr.UserID)
		}
		if pr.ContentType != nil {
			ev.System["content-type"] = *pr.ContentType
		}
		if pr.ContentEncoding != nil {
			ev.System["content-encoding"] = *pr.ContentEncoding
		}
	}
	ev.Body = m.GetData()
	return ev
}
