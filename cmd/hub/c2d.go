package hub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

func newCmdC2D(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "c2d",
		Short: "Send cloud-to-device messages (AMQP), or purge a device's queue (HTTPS)",
		Example: `  $ iotctl hub c2d send --device-id MyGoDevice --data '{"led":"on"}' --ack full --wait
  $ iotctl hub c2d purge MyGoDevice`,
	}
	purge := newCmdC2DPurge(f, nil)
	addServiceFlags(purge, cmdutil.LoginNeeds(auth.ActionC2DPurge))
	c.AddCommand(purge)
	send := newCmdC2DSend(f, nil)
	send.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
	cmdutil.AddServiceAuth(send, cmdutil.LoginNeeds(auth.ActionC2DSend)+"\n--wait also needs cloudToDeviceMessages/feedback/action (IoT Hub Data Contributor).")
	send.Flags().String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addTransportFlags(send.Flags())
	send.Long += "\n\n" + transportHelp
	send.Example += "\n  $ HTTPS_PROXY=http://proxy.corp:3128 iotctl hub c2d send -d MyGoDevice --data hi --websocket"
	c.AddCommand(send)
	return c
}

type c2dResult struct {
	MessageID string            `json:"messageId"`
	DeviceID  string            `json:"deviceId"`
	ModuleID  string            `json:"moduleId,omitempty"`
	Ack       string            `json:"ack,omitempty"`
	Feedback  *service.Feedback `json:"feedback,omitempty"`
}

// c2dSendOptions are the inputs of `hub c2d send`.
type c2dSendOptions struct {
	f               *cmdutil.Factory
	DeviceID        string
	ModuleID        string
	Data            string
	DataFile        string
	Properties      []string
	Ack             string
	MessageID       string
	CorrelationID   string
	ContentType     string
	ContentEncoding string
	Expiry          time.Duration
	Wait            bool
	Timeout         time.Duration

	dataSet bool
	// Message is the message to send, built by resolve from the flags.
	Message *message.Message
}

// newCmdC2DSend returns `hub c2d send`; runF replaces c2dSendRun in
// tests of flag parsing (nil: c2dSendRun).
func newCmdC2DSend(f *cmdutil.Factory, runF func(*c2dSendOptions) error) *cobra.Command {
	opts := &c2dSendOptions{f: f}
	c := &cobra.Command{
		Use:   "send",
		Short: "Send a cloud-to-device message and, with --wait, wait for its delivery feedback",
		Long: `Send a cloud-to-device message to a device (or module) over AMQP. The hub queues
it (at most 50 per device, 64 KB each) and delivers it when the device is
connected.

--ack asks the hub for delivery feedback: positive (completed), negative (expired,
rejected, too many deliveries), full (both). With --wait iotctl waits for the
feedback record of this message (--ack full is implied when --ack is not given)
and exits 0 when the device completed it, 8 when it was rejected, expired,
purged or delivered too often without completion, and 7 when no feedback came
within --timeout (0: wait until interrupted). When stderr is a terminal, it says
there which message it waits for and, when it stops, whether the feedback came.
Feedback is a queue shared by every back end of the hub: the records iotctl
reads are taken from it.

Exit codes: 3 for a message over 64 KB (body, system and application
properties; checked before connecting), 5 for an unknown device or module, 1
when the device's queue is full (50 messages waiting: the device has to receive
some, or they have to expire, before the hub takes more).`,
		Example: `  $ iotctl hub c2d send -d MyGoDevice --data 'hello'
  $ iotctl hub c2d send -d MyGoDevice --data '{"led":"on"}' --content-type application/json --property priority=high
  $ iotctl hub c2d send -d MyGoDevice --data-file cmd.json --ack full --wait --timeout 2m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.dataSet = cmd.Flags().Changed("data")
			if err := opts.check(); err != nil {
				return err
			}
			if err := opts.resolve(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return c2dSendRun(cmd.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&opts.DeviceID, "device-id", "d", "", "device to send to")
	fl.StringVarP(&opts.ModuleID, "module-id", "m", "", "module of the device to send to")
	fl.StringVar(&opts.Data, "data", "", "message body")
	fl.StringVar(&opts.DataFile, "data-file", "", "read the message body from a file")
	fl.StringArrayVar(&opts.Properties, "property", nil, "application property k=v (repeatable)")
	fl.StringVar(&opts.Ack, "ack", "", "feedback to ask for: none, positive, negative or full")
	fl.StringVar(&opts.MessageID, "message-id", "", "message id (default: a new UUID)")
	fl.StringVar(&opts.CorrelationID, "correlation-id", "", "correlation id")
	fl.StringVar(&opts.ContentType, "content-type", "", "content type, e.g. application/json")
	fl.StringVar(&opts.ContentEncoding, "content-encoding", "", "content encoding, e.g. utf-8")
	fl.DurationVar(&opts.Expiry, "expiry", 0, "expire the message after this long (default: the hub's, 1h)")
	fl.BoolVar(&opts.Wait, "wait", false, "wait for the message's delivery feedback")
	fl.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "with --wait: how long to wait for feedback (0: until interrupted)")
	return c
}

// check refuses wrong flags and combinations; with --wait and no --ack
// it asks for full feedback.
func (o *c2dSendOptions) check() error {
	if o.DeviceID == "" {
		return cmdutil.Usagef("no device id: pass --device-id")
	}
	if o.dataSet == (o.DataFile != "") {
		return cmdutil.Usagef("give the body with exactly one of --data and --data-file")
	}
	if o.Expiry < 0 {
		return cmdutil.Usagef("--expiry %s: give a positive duration", o.Expiry)
	}
	if o.Timeout < 0 {
		return cmdutil.Usagef("--timeout %s: give a positive duration, or 0 to wait until interrupted", o.Timeout)
	}
	switch o.Ack {
	case "":
		if o.Wait {
			o.Ack = message.AckFull
		}
	case message.AckNone, message.AckPositive, message.AckNegative, message.AckFull:
	default:
		return cmdutil.Usagef("--ack %q: use none, positive, negative or full", o.Ack)
	}
	if o.Wait && o.Ack == message.AckNone {
		return cmdutil.Usagef("--wait needs feedback: use --ack positive, negative or full")
	}
	return nil
}

// resolve reads the body and builds o.Message, refusing a message over
// IoT Hub's size limit.
func (o *c2dSendOptions) resolve() error {
	body := []byte(o.Data)
	if o.DataFile != "" {
		b, err := os.ReadFile(o.DataFile)
		if err != nil {
			return cmdutil.Usagef("--data-file: %v", err)
		}
		body = b
	}
	m := &message.Message{Body: body, MessageID: o.MessageID, CorrelationID: o.CorrelationID, ContentType: o.ContentType,
		ContentEncoding: o.ContentEncoding, Ack: o.Ack}
	var err error
	if m.Properties, err = parseProperties(o.Properties); err != nil {
		return err
	}
	if o.Expiry > 0 {
		m.ExpiryTime = o.f.Now().Add(o.Expiry)
	}
	if m.MessageID == "" {
		m.MessageID = uuid.NewString()
	}
	// IoT Hub counts the body, the system properties (the "to" the
	// service client adds included) and the application properties
	// against the limit.
	sized := *m
	sized.To = c2dTo(o.DeviceID, o.ModuleID)
	if n := sized.Size(); n > message.MaxC2DSize {
		return cmdutil.Usagef("the message is %d bytes (body %d, properties %d); IoT Hub takes cloud-to-device messages up to %d bytes", n, len(body), n-len(body), message.MaxC2DSize)
	}
	o.Message = m
	return nil
}

func c2dSendRun(ctx context.Context, opts *c2dSendOptions) error {
	f, m, deviceID, moduleID := opts.f, opts.Message, opts.DeviceID, opts.ModuleID
	p, client, err := printerClient(ctx, f)
	if err != nil {
		return err
	}
	defer client.Close()
	var fb *service.FeedbackReceiver
	if opts.Wait {
		if fb, err = client.FeedbackReceiver(ctx); err != nil {
			return err
		}
	}
	if err := client.SendC2D(ctx, deviceID, moduleID, m); err != nil {
		return c2dSendError(err, deviceID, moduleID)
	}
	res := c2dResult{MessageID: m.MessageID, DeviceID: deviceID, ModuleID: moduleID, Ack: opts.Ack}
	if opts.Wait {
		note := newWaitNote(f)
		note.waiting(fmt.Sprintf("the delivery feedback of message %s to %s", m.MessageID, c2dTarget(deviceID, moduleID)),
			ifSet(opts.Timeout > 0, "at most %s", opts.Timeout))
		rec, others, err := waitFeedback(ctx, fb, m.MessageID, opts.Timeout)
		if rec != nil {
			note.stopped("feedback %s received, and %d record(s) of other messages", rec.StatusCode, others)
		} else {
			note.stopped("no feedback for message %s; %d record(s) of other messages received", m.MessageID, others)
		}
		if err != nil {
			return err
		}
		res.Feedback = rec
	}
	if err := p.Print(res, func(t *output.Table) {
		t.Header("FIELD", "VALUE")
		t.Row("message id", res.MessageID)
		t.Row("device", deviceID)
		if res.Feedback != nil {
			t.Row("feedback", res.Feedback.StatusCode)
			t.Row("feedback time", res.Feedback.EnqueuedTime.Format(time.RFC3339))
		}
	}); err != nil {
		return err
	}
	if res.Feedback != nil && !strings.EqualFold(res.Feedback.StatusCode, "Success") {
		return &cmdutil.ExitError{Code: cmdutil.ExitDeviceError, Err: fmt.Errorf("message %s: %s", res.MessageID, res.Feedback.Description)}
	}
	return nil
}

// c2dTo is the "to" of a C2D message, as the service client writes it.
func c2dTo(deviceID, moduleID string) string {
	if moduleID != "" {
		return "/devices/" + url.PathEscape(deviceID) + "/modules/" + url.PathEscape(moduleID) + "/messages/devicebound"
	}
	return "/devices/" + url.PathEscape(deviceID) + "/messages/devicebound"
}

// c2dTarget is DEVICE or DEVICE/MODULE.
func c2dTarget(deviceID, moduleID string) string {
	if moduleID != "" {
		return deviceID + "/" + moduleID
	}
	return deviceID
}

// c2dSendError explains the hub's refusals that have no exit code of
// their own: a message the hub finds too large is a usage error (3);
// a full queue stays a failure (1) with a message that says what to do.
func c2dSendError(err error, deviceID, moduleID string) error {
	target := c2dTarget(deviceID, moduleID)
	switch {
	case errors.Is(err, service.ErrTooLarge):
		return &cmdutil.UsageError{Err: fmt.Errorf("the hub refused the message as too large (over %d bytes with its properties): %w", message.MaxC2DSize, err)}
	case errors.Is(err, service.ErrQueueFull):
		return fmt.Errorf("the cloud-to-device queue of %s is full (IoT Hub keeps at most 50 messages per device): "+
			"the device has to receive some, or they have to expire, before the hub takes more: %w", target, err)
	}
	return err
}

// closeTimeout bounds the detach of a receiver link when a command
// ends.
const closeTimeout = 5 * time.Second

// waitFeedback reads feedback until the record of messageID arrives,
// for at most timeout (0: until ctx ends). others counts the records of
// other messages it read (and took from the hub's queue).
func waitFeedback(ctx context.Context, fb *service.FeedbackReceiver, messageID string, timeout time.Duration) (rec *service.Feedback, others int, err error) {
	defer closeFeedback(fb)
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, timeout)
	}
	defer cancel()
	for {
		recs, err := fb.Receive(wctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return nil, others, &cmdutil.ExitError{Code: cmdutil.ExitTimeout, Err: fmt.Errorf("no feedback for message %s within %s", messageID, timeout)}
			}
			return nil, others, err
		}
		for i := range recs {
			if recs[i].OriginalMessageID == messageID {
				return &recs[i], others + len(recs) - 1, nil
			}
		}
		others += len(recs)
	}
}

// closeFeedback detaches a feedback receiver, waiting at most
// closeTimeout for the hub.
func closeFeedback(fb *service.FeedbackReceiver) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = fb.Close(ctx)
}

// parseProperties reads k=v pairs.
func parseProperties(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, cmdutil.Usagef("--property %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}
