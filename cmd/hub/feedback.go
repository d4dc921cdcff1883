package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// feedbackOptions are the inputs of `hub feedback`.
type feedbackOptions struct {
	f         *cmdutil.Factory
	WaitOnMsg string
	Count     int
	Timeout   time.Duration
}

// newCmdFeedback returns `hub feedback`; runF replaces feedbackRun in
// tests of flag parsing (nil: feedbackRun).
func newCmdFeedback(f *cmdutil.Factory, runF func(*feedbackOptions) error) *cobra.Command {
	opts := &feedbackOptions{f: f}
	c := &cobra.Command{
		Use:   "feedback",
		Short: "Read cloud-to-device delivery feedback (AMQP)",
		Long: `Read the hub's delivery-feedback records of cloud-to-device messages sent with
--ack. Each record is printed as it arrives: one line on a terminal, one JSON
object per line with -o json. Reading takes the records from the hub's feedback
queue.

It stops once --count records were read, when the record of --wait-on-msg
arrives, or after waiting --timeout (counted once connected), and then exits 0;
with --wait-on-msg, a timeout exits 7 and a record other than Success exits 8.
The hub hands out feedback in batches (up to 64 records) and reading a batch
takes all of it from the queue, so iotctl prints every record of the last batch
it read: possibly more than --count, and records that follow the one of
--wait-on-msg. When stderr is a terminal, it says there what it waits for, and
how many records it got when it stops.`,
		Example: `  $ iotctl hub feedback --count 1
  $ iotctl hub feedback --wait-on-msg "$(iotctl hub c2d send -d MyGoDevice --data reboot --ack full -o json | jq -r .messageId)" \
      --timeout 2m -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkCountTimeout(opts.Count, opts.Timeout); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return feedbackRun(cmd.Context(), opts)
		},
	}
	addQueueReaderFlags(c, auth.ActionC2DFeedback)
	c.Example += "\n  $ iotctl hub feedback --count 1 --websocket --proxy http://proxy.corp:3128"
	c.Flags().StringVar(&opts.WaitOnMsg, "wait-on-msg", "", "stop at the feedback record of this message id")
	c.Flags().IntVar(&opts.Count, "count", 0, "stop after this many records (0: no limit)")
	c.Flags().DurationVar(&opts.Timeout, "timeout", 0, "stop after waiting this long once connected (0: no limit)")
	return c
}

// feedbackRun reads feedback records until --count, the record of
// --wait-on-msg, --timeout or the end of parent.
func feedbackRun(parent context.Context, opts *feedbackOptions) error {
	f, waitOn, count, timeout := opts.f, opts.WaitOnMsg, opts.Count, opts.Timeout
	format, err := f.Output(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	client, err := f.ServiceClient(parent, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	// --timeout is the wait for records, as c2d send --wait's is: it
	// starts once the receiver is attached, so a slow connection is
	// not taken for an empty queue (connecting has its own bounds).
	fb, err := client.FeedbackReceiver(parent)
	if err != nil {
		return err
	}
	defer closeFeedback(fb)
	ctx := parent
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	stream := output.NewStream(f.IO.Out)
	n := 0
	note := newWaitNote(f)
	note.waiting("delivery feedback records", ifSet(waitOn != "", "until the one of message %s", waitOn),
		ifSet(count > 0, "up to %d records", count), ifSet(timeout > 0, "at most %s", timeout))
	defer func() { note.stopped("%d feedback record(s) received", n) }()
	for {
		recs, err := fb.Receive(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
				if waitOn != "" {
					return &cmdutil.ExitError{Code: cmdutil.ExitTimeout, Err: fmt.Errorf("no feedback for message %s within %s", waitOn, timeout)}
				}
				return nil
			}
			return err
		}
		// The batch is already taken from the hub's queue: print all of
		// it before stopping.
		var found *service.Feedback
		for i, r := range recs {
			if err := printFeedback(f, stream, format, r); err != nil {
				return err
			}
			n++
			if waitOn != "" && found == nil && r.OriginalMessageID == waitOn {
				found = &recs[i]
			}
		}
		if found != nil {
			if !strings.EqualFold(found.StatusCode, "Success") {
				return &cmdutil.ExitError{Code: cmdutil.ExitDeviceError, Err: fmt.Errorf("message %s: %s", waitOn, found.Description)}
			}
			return nil
		}
		if count > 0 && n >= count {
			return nil
		}
	}
}

// checkCountTimeout checks --count and --timeout of a command that
// reads a service-bound queue (hub feedback, hub file-notifications).
func checkCountTimeout(count int, timeout time.Duration) error {
	if count < 0 {
		return cmdutil.Usagef("--count %d: give a positive number, or 0 for no limit", count)
	}
	if timeout < 0 {
		return cmdutil.Usagef("--timeout %s: give a positive duration, or 0 for no limit", timeout)
	}
	return nil
}

// addQueueReaderFlags adds what a command that reads a service-bound
// queue over AMQP needs to reach the hub: the service connection string
// and other credentials (for a sign-in, the data action it needs), a
// CA, and the transport flags (with their help).
func addQueueReaderFlags(c *cobra.Command, action auth.Action) {
	c.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
	cmdutil.AddServiceAuth(c, cmdutil.LoginNeeds(action))
	c.Flags().String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addTransportFlags(c.Flags())
	c.Long += "\n\n" + transportHelp
}

type feedbackLine struct {
	Type string `json:"type"`
	service.Feedback
}

func printFeedback(f *cmdutil.Factory, s *output.Stream, format output.Format, r service.Feedback) error {
	if format == output.FormatJSON {
		return s.Write(feedbackLine{Type: "feedback", Feedback: r})
	}
	_, err := fmt.Fprintf(f.IO.Out, "%s  %-8s %s  message %s  (%s)\n", r.EnqueuedTime.Format(time.RFC3339), r.StatusCode, r.DeviceID, r.OriginalMessageID, r.Description)
	return err
}
