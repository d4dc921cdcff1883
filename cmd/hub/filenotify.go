package hub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// fileNotificationsOptions are the inputs of `hub file-notifications`.
type fileNotificationsOptions struct {
	f       *cmdutil.Factory
	Count   int
	Timeout time.Duration
}

// newCmdFileNotifications returns `hub file-notifications`; runF
// replaces fileNotificationsRun in tests of flag parsing (nil:
// fileNotificationsRun).
func newCmdFileNotifications(f *cmdutil.Factory, runF func(*fileNotificationsOptions) error) *cobra.Command {
	opts := &fileNotificationsOptions{f: f}
	c := &cobra.Command{
		Use:   "file-notifications",
		Short: "Read file upload notifications (AMQP)",
		Long: `Read the hub's file upload notifications: one for each file a device uploaded
and reported as a success, on a hub with file upload notifications on ("hub
serve --file-upload-notifications", or enableFileUploadNotifications on Azure).
Each is printed as it arrives: one line on a terminal, one JSON object per line
(type "fileNotification", with deviceId, blobUri, blobName, lastUpdatedTime,
blobSizeInBytes and enqueuedTimeUtc) with -o json. Reading takes the
notification from the hub's queue, one at a time: what iotctl has not printed
stays there.

It stops once --count notifications were read or after --timeout, and then
exits 0. When stderr is a terminal, it says there what it waits for, and how
many notifications it got when it stops.`,
		Example: `  $ iotctl hub file-notifications --count 1 --timeout 1m
  $ iotctl hub file-notifications -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkCountTimeout(opts.Count, opts.Timeout); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return fileNotificationsRun(cmd.Context(), opts)
		},
	}
	addQueueReaderFlags(c, auth.ActionFileNotifications)
	c.Flags().IntVar(&opts.Count, "count", 0, "stop after this many notifications (0: no limit)")
	c.Flags().DurationVar(&opts.Timeout, "timeout", 0, "stop after this long (0: no limit)")
	return c
}

// fileNotificationsRun reads notifications until --count, --timeout or
// the end of parent.
func fileNotificationsRun(parent context.Context, opts *fileNotificationsOptions) error {
	f := opts.f
	format, err := f.Output(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	client, err := f.ServiceClient(parent, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := parent
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	r, err := client.FileNotificationReceiver(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = r.Close(cctx)
	}()
	stream := output.NewStream(f.IO.Out)
	n := 0
	note := newWaitNote(f)
	note.waiting("file upload notifications", ifSet(opts.Count > 0, "up to %d", opts.Count), ifSet(opts.Timeout > 0, "at most %s", opts.Timeout))
	defer func() { note.stopped("%d file upload notification(s) received", n) }()
	for opts.Count == 0 || n < opts.Count {
		fn, err := r.Receive(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
				return nil
			}
			return err
		}
		n++
		if format == output.FormatJSON {
			err = stream.Write(fileNotificationLine{Type: "fileNotification", FileNotification: fn})
		} else {
			_, err = fmt.Fprintf(f.IO.Out, "%s  %s  %s  %d bytes  %s\n", fn.EnqueuedTimeUTC.Format(time.RFC3339), fn.DeviceID, fn.BlobName, fn.BlobSizeInBytes, fn.BlobURI)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type fileNotificationLine struct {
	Type string `json:"type"`
	*service.FileNotification
}
