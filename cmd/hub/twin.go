package hub

import (
	"context"
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

func newCmdTwin(f *cmdutil.Factory) *cobra.Command {
	c := &cobra.Command{
		Use:   "twin",
		Short: "Show and update device and module twins",
		Example: `  $ iotctl hub twin show MyGoDevice
  $ iotctl hub twin update MyGoDevice --desired '{"interval":5}' --tags '{"site":"lab"}'`,
	}
	show, update := newCmdTwinShow(f, nil), newCmdTwinUpdate(f, nil)
	addServiceFlags(show, cmdutil.LoginNeeds(auth.ActionTwinsRead))
	addServiceFlags(update, cmdutil.LoginNeeds(auth.ActionTwinsWrite))
	c.AddCommand(show, update)
	return c
}

// addServiceFlags adds the flags of a command that uses the service
// client over HTTPS: --connection-string, the sign-in flags (with need
// in its help, see cmdutil.AddServiceAuth), --ca-file and --proxy.
func addServiceFlags(c *cobra.Command, need string) {
	c.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
	cmdutil.AddServiceAuth(c, need)
	c.Flags().String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addProxyFlag(c.Flags())
}

func printTwin(p *output.Printer, t *service.Twin) error {
	if p.Format == output.FormatTable {
		// A twin is a JSON document; on a terminal it is shown as such.
		return output.WriteJSON(p.Out, t)
	}
	return p.Print(t, nil)
}

// twinShowOptions are the inputs of `hub twin show`.
type twinShowOptions struct {
	f        *cmdutil.Factory
	DeviceID string
	ModuleID string
}

// newCmdTwinShow returns `hub twin show`; runF replaces twinShowRun in
// tests of flag parsing (nil: twinShowRun).
func newCmdTwinShow(f *cmdutil.Factory, runF func(*twinShowOptions) error) *cobra.Command {
	opts := &twinShowOptions{f: f}
	c := &cobra.Command{
		Use:     "show [DEVICE_ID]",
		Short:   "Show a device's or module's twin (JSON)",
		Example: "  $ iotctl hub twin show MyGoDevice\n  $ iotctl hub twin show MyGoDevice -o json | jq .properties.reported",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, opts.DeviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			if runF != nil {
				return runF(opts)
			}
			return twinShowRun(cmd.Context(), opts)
		},
	}
	c.Flags().StringVarP(&opts.DeviceID, "device-id", "d", "", "device id")
	c.Flags().StringVarP(&opts.ModuleID, "module-id", "m", "", "a module of the device")
	return c
}

func twinShowRun(ctx context.Context, opts *twinShowOptions) error {
	p, client, err := printerClient(ctx, opts.f)
	if err != nil {
		return err
	}
	t, err := client.GetTwin(ctx, service.Target{DeviceID: opts.DeviceID, ModuleID: opts.ModuleID})
	if err != nil {
		return err
	}
	return printTwin(p, t)
}

// twinUpdateOptions are the inputs of `hub twin update`.
type twinUpdateOptions struct {
	f        *cmdutil.Factory
	DeviceID string
	ModuleID string
	Desired  string
	Tags     string
	Etag     string
}

// newCmdTwinUpdate returns `hub twin update`; runF replaces
// twinUpdateRun in tests of flag parsing (nil: twinUpdateRun).
func newCmdTwinUpdate(f *cmdutil.Factory, runF func(*twinUpdateOptions) error) *cobra.Command {
	opts := &twinUpdateOptions{f: f}
	c := &cobra.Command{
		Use:   "update [DEVICE_ID]",
		Short: "Update a twin's desired properties and tags",
		Long: `Patch a twin: --desired and --tags are JSON objects merged into the twin; a null
member deletes it. --etag makes the update conditional. The updated twin is printed.`,
		Example: `  $ iotctl hub twin update MyGoDevice --desired '{"telemetryInterval":5}'
  $ iotctl hub twin update MyGoDevice --tags '{"site":null}' --etag AAAAAAAAAAE=`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, opts.DeviceID)
			if err != nil {
				return err
			}
			opts.DeviceID = id
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return twinUpdateRun(cmd.Context(), opts)
		},
	}
	c.Flags().StringVarP(&opts.DeviceID, "device-id", "d", "", "device id")
	c.Flags().StringVarP(&opts.ModuleID, "module-id", "m", "", "a module of the device")
	c.Flags().StringVar(&opts.Desired, "desired", "", "desired properties to merge (JSON object)")
	c.Flags().StringVar(&opts.Tags, "tags", "", "tags to merge (JSON object)")
	c.Flags().StringVar(&opts.Etag, "etag", "", "update only if the twin's etag matches")
	return c
}

// check requires something to update, and JSON objects.
func (o *twinUpdateOptions) check() error {
	if o.Desired == "" && o.Tags == "" {
		return cmdutil.Usagef("nothing to update: give --desired and/or --tags")
	}
	for _, x := range []struct{ name, in string }{{"--desired", o.Desired}, {"--tags", o.Tags}} {
		if x.in == "" {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(x.in), &obj); err != nil || obj == nil {
			return cmdutil.Usagef("%s must be a JSON object such as '{\"key\":1}'", x.name)
		}
	}
	return nil
}

func twinUpdateRun(ctx context.Context, opts *twinUpdateOptions) error {
	var desired, tags json.RawMessage
	if opts.Desired != "" {
		desired = json.RawMessage(opts.Desired)
	}
	if opts.Tags != "" {
		tags = json.RawMessage(opts.Tags)
	}
	p, client, err := printerClient(ctx, opts.f)
	if err != nil {
		return err
	}
	t, err := client.UpdateTwin(ctx, service.Target{DeviceID: opts.DeviceID, ModuleID: opts.ModuleID}, service.NewTwinPatch(tags, desired), opts.Etag)
	if err != nil {
		return err
	}
	return printTwin(p, t)
}
