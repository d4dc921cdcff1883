package hub

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
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
	for _, sub := range []*cobra.Command{newCmdTwinShow(f), newCmdTwinUpdate(f)} {
		sub.Flags().String(cmdutil.KeyConnectionString, "", "service connection string")
		cmdutil.AddServiceAuthFlags(sub.Flags())
		sub.Flags().String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
		addProxyFlag(sub.Flags())
		c.AddCommand(sub)
	}
	return c
}

func printTwin(p *output.Printer, t *service.Twin) error {
	if p.Format == output.FormatTable {
		// A twin is a JSON document; on a terminal it is shown as such.
		return output.WriteJSON(p.Out, t)
	}
	return p.Print(t, nil)
}

func newCmdTwinShow(f *cmdutil.Factory) *cobra.Command {
	var deviceID, moduleID string
	c := &cobra.Command{
		Use:     "show [DEVICE_ID]",
		Short:   "Show a device's or module's twin (JSON)",
		Example: "  $ iotctl hub twin show MyGoDevice\n  $ iotctl hub twin show MyGoDevice -o json | jq .properties.reported",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, deviceID)
			if err != nil {
				return err
			}
			p, err := f.Printer()
			if err != nil {
				return err
			}
			client, err := serviceClient(f)
			if err != nil {
				return err
			}
			t, err := client.GetTwin(cmd.Context(), service.Target{DeviceID: id, ModuleID: moduleID})
			if err != nil {
				return err
			}
			return printTwin(p, t)
		},
	}
	c.Flags().StringVarP(&deviceID, "device-id", "d", "", "device id")
	c.Flags().StringVarP(&moduleID, "module-id", "m", "", "a module of the device")
	return c
}

func newCmdTwinUpdate(f *cmdutil.Factory) *cobra.Command {
	var deviceID, moduleID, desired, tags, etag string
	c := &cobra.Command{
		Use:   "update [DEVICE_ID]",
		Short: "Update a twin's desired properties and tags",
		Long: `Patch a twin: --desired and --tags are JSON objects merged into the twin; a null
member deletes it. --etag makes the update conditional. The updated twin is printed.`,
		Example: `  $ iotctl hub twin update MyGoDevice --desired '{"telemetryInterval":5}'
  $ iotctl hub twin update MyGoDevice --tags '{"site":null}' --etag AAAAAAAAAAE=`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args, deviceID)
			if err != nil {
				return err
			}
			if desired == "" && tags == "" {
				return cmdutil.Usagef("nothing to update: give --desired and/or --tags")
			}
			var d, tg json.RawMessage
			for _, x := range []struct {
				name string
				in   string
				out  *json.RawMessage
			}{{"--desired", desired, &d}, {"--tags", tags, &tg}} {
				if x.in == "" {
					continue
				}
				var obj map[string]any
				if err := json.Unmarshal([]byte(x.in), &obj); err != nil || obj == nil {
					return cmdutil.Usagef("%s must be a JSON object such as '{\"key\":1}'", x.name)
				}
				*x.out = json.RawMessage(x.in)
			}
			p, err := f.Printer()
			if err != nil {
				return err
			}
			client, err := serviceClient(f)
			if err != nil {
				return err
			}
			t, err := client.UpdateTwin(cmd.Context(), service.Target{DeviceID: id, ModuleID: moduleID}, service.NewTwinPatch(tg, d), etag)
			if err != nil {
				return err
			}
			return printTwin(p, t)
		},
	}
	c.Flags().StringVarP(&deviceID, "device-id", "d", "", "device id")
	c.Flags().StringVarP(&moduleID, "module-id", "m", "", "a module of the device")
	c.Flags().StringVar(&desired, "desired", "", "desired properties to merge (JSON object)")
	c.Flags().StringVar(&tags, "tags", "", "tags to merge (JSON object)")
	c.Flags().StringVar(&etag, "etag", "", "update only if the twin's etag matches")
	return c
}
