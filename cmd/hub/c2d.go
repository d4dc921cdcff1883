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
	purge.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
	purge.Flags().String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addProxyFlag(purge.Flags())
	c.AddCommand(purge)
	send := newCmdC2DSend(f)
	send.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
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

func newCmdC2DSend(f *cmdutil.Factory) *cobra.Command {
	var deviceID, moduleID, data, dataFile, ack, messageID, correlationID, contentType, contentEncoding string
	var props []string
	var expiry, timeout time.Duration
	var wait bool
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
			if deviceID == "" {
				return cmdutil.Usagef("no device id: pass --device-id")
			}
			if cmd.Flags().Changed("data") == (dataFile != "") {
				return cmdutil.Usagef("give the body with exactly one of --data and --data-file")
			}
			body := []byte(data)
			if dataFile != "" {
				b, err := os.ReadFile(dataFile)
				if err != nil {
					return cmdutil.Usagef("--data-file: %v", err)
				}
				body = b
			}
			if expiry < 0 {
				return cmdutil.Usagef("--expiry %s: give a positive duration", expiry)
			}
			if timeout < 0 {
				return cmdutil.Usagef("--timeout %s: give a positive duration, or 0 to wait until interrupted", timeout)
			}
			switch ack {
			case "":
				if wait {
					ack = message.AckFull
				}
			case message.AckNone, message.AckPositive, message.AckNegative, message.AckFull:
			default:
				return cmdutil.Usagef("--ack %q: use none, positive, negative or full", ack)
			}
			if wait && ack == message.AckNone {
				return cmdutil.Usagef("--wait needs feedback: use --ack positive, negative or full")
			}
			m := &message.Message{Body: body, MessageID: messageID, CorrelationID: correlationID, ContentType: contentType,
				ContentEncoding: contentEncoding, Ack: ack}
			var err error
			if m.Properties, err = parseProperties(props); err != nil {
				return err
			}
			if expiry > 0 {
				m.ExpiryTime = time.Now().Add(expiry)
			}
			if m.MessageID == "" {
				m.MessageID = uuid.NewString()
			}
			// IoT Hub counts the body, the system properties (the "to"
			// the service client adds included) and the application
			// properties against the limit.
			sized := *m
			sized.To = c2dTo(deviceID, moduleID)
			if n := sized.Size(); n > message.MaxC2DSize {
				return cmdutil.Usagef("the message is %d bytes (body %d, properties %d); IoT Hub takes cloud-to-device messages up to %d bytes", n, len(body), n-len(body), message.MaxC2DSize)
			}
			p, err := f.Printer()
			if err != nil {
				return err
			}
			client, err := f.ServiceClient()
			if err != nil {
				return err
			}
			defer client.Close()
			ctx := cmd.Context()
			var fb *service.FeedbackReceiver
			if wait {
				if fb, err = client.FeedbackReceiver(ctx); err != nil {
					return err
				}
			}
			if err := client.SendC2D(ctx, deviceID, moduleID, m); err != nil {
				return c2dSendError(err, deviceID, moduleID)
			}
			res := c2dResult{MessageID: m.MessageID, DeviceID: deviceID, ModuleID: moduleID, Ack: ack}
			if wait {
				note := newWaitNote(f)
				note.waiting(fmt.Sprintf("the delivery feedback of message %s to %s", m.MessageID, c2dTarget(deviceID, moduleID)),
					ifSet(timeout > 0, "at most %s", timeout))
				rec, others, err := waitFeedback(ctx, fb, m.MessageID, timeout)
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
		},
	}
	fl := c.Flags()
	fl.StringVarP(&deviceID, "device-id", "d", "", "device to send to")
	fl.StringVarP(&moduleID, "module-id", "m", "", "module of the device to send to")
	fl.StringVar(&data, "data", "", "message body")
	fl.StringVar(&dataFile, "data-file", "", "read the message body from a file")
	fl.StringArrayVar(&props, "property", nil, "application property k=v (repeatable)")
	fl.StringVar(&ack, "ack", "", "feedback to ask for: none, positive, negative or full")
	fl.StringVar(&messageID, "message-id", "", "message id (default: a new UUID)")
	fl.StringVar(&correlationID, "correlation-id", "", "correlation id")
	fl.StringVar(&contentType, "content-type", "", "content type, e.g. application/json")
	fl.StringVar(&contentEncoding, "content-encoding", "", "content encoding, e.g. utf-8")
	fl.DurationVar(&expiry, "expiry", 0, "expire the message after this long (default: the hub's, 1h)")
	fl.BoolVar(&wait, "wait", false, "wait for the message's delivery feedback")
	fl.DurationVar(&timeout, "timeout", 5*time.Minute, "with --wait: how long to wait for feedback (0: until interrupted)")
	return c
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
