package cmd

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/service"
)

// flagWords are the values of flags that take one of a few words, by
// flag name; a command path ("hub sas key-type") wins over the bare
// name where one name means different things in different commands.
var flagWords = map[string][]string{
	"output":           {"table", "json", "yaml"},
	"hub query output": {"table", "json", "yaml", "ndjson"},
	"log-level":        {"debug", "info", "warn", "error"},
	"log-format":       {"text", "json"},
	"auth":             {"sas", "x509-thumbprint", "x509-ca"},
	"ack":              {"none", "positive", "negative", "full"},
	"from":             {"start", "now"},
	"properties":       {"app", "sys", "anno", "all"},
	"qos":              {"0", "1"},
	"status":           {"enabled", "disabled"},
	"key-type":         {"primary", "secondary", "both", "swap"},
	"hub sas key-type": {"primary"},
	"transport":        device.TransportNames,
	"c2d-settle":       device.SettleNames,
}

// deviceCompletionTimeout bounds the registry query that completes
// device ids, so a hub that does not answer never hangs the shell.
const deviceCompletionTimeout = 2 * time.Second

// registerCompletions gives every command of the tree under root the
// completion of its flags' words and of device ids (--device-id, and a
// DEVICE_ID argument), the latter from the configured hub.
func registerCompletions(f *cmdutil.Factory, root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		register := func(fl *pflag.Flag) {
			words, ok := flagWords[path+" "+fl.Name]
			if !ok {
				words, ok = flagWords[fl.Name]
			}
			switch {
			case c == root && ok:
				// A persistent flag has one completion for every
				// command: it looks up the command it completes for.
				name := fl.Name
				_ = c.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
					w, ok := flagWords[strings.TrimPrefix(cmd.CommandPath(), root.Name()+" ")+" "+name]
					if !ok {
						w = flagWords[name]
					}
					return w, cobra.ShellCompDirectiveNoFileComp
				})
			case ok:
				_ = c.RegisterFlagCompletionFunc(fl.Name, cobra.FixedCompletions(words, cobra.ShellCompDirectiveNoFileComp))
			case fl.Name == "device-id":
				_ = c.RegisterFlagCompletionFunc(fl.Name, deviceIDs(f))
			}
		}
		if c == root {
			c.PersistentFlags().VisitAll(register)
		} else {
			visitOwnFlags(c, register)
		}
		if strings.Contains(c.Use, "DEVICE_ID") && c.ValidArgsFunction == nil {
			complete := deviceIDs(f)
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				if len(args) > 0 {
					return nil, cobra.ShellCompDirectiveNoFileComp
				}
				return complete(cmd, args, toComplete)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// visitOwnFlags calls fn for each flag of c's LocalNonPersistentFlags:
// the flags c defines for itself alone, not persistent ones of its own
// or inherited from its parents. It reads c's flag sets as they are,
// where LocalNonPersistentFlags builds two new sets on every call, a
// cost every command line paid for each command of the tree.
func visitOwnFlags(c *cobra.Command, fn func(*pflag.Flag)) {
	c.Flags().VisitAll(func(fl *pflag.Flag) {
		if c.PersistentFlags().Lookup(fl.Name) != nil {
			return
		}
		for p := c.Parent(); p != nil; p = p.Parent() {
			if p.PersistentFlags().Lookup(fl.Name) == fl {
				return
			}
		}
		fn(fl)
	})
}

// deviceIDs completes device ids from the hub that the service
// connection string (flag, IOTCTL_CONNECTION_STRING or the config
// file) names, within deviceCompletionTimeout; it offers nothing when
// there is no such hub or it does not answer in time.
func deviceIDs(f *cmdutil.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if err := f.Load(cmd); err != nil {
			return nil, none
		}
		cs, err := f.ServiceConnectionString()
		if err != nil {
			return nil, none
		}
		o, err := f.ServiceOptions()
		if err != nil {
			return nil, none
		}
		o.Retries = -1
		client, err := service.New(cs, o)
		if err != nil {
			return nil, none
		}
		ctx, cancel := context.WithTimeout(context.Background(), deviceCompletionTimeout)
		defer cancel()
		var ids []string
		_ = client.QueryPages(ctx, "SELECT * FROM devices", 0, func(page []json.RawMessage) error {
			for _, raw := range page {
				var d struct {
					DeviceID string `json:"deviceId"`
				}
				if json.Unmarshal(raw, &d) == nil && strings.HasPrefix(d.DeviceID, toComplete) {
					ids = append(ids, d.DeviceID)
				}
			}
			return nil
		})
		return ids, none
	}
}
