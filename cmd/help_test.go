package cmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// Every command a user can run has a short description and real
// examples, and its --help works.
func TestEveryCommandHasHelpAndExamples(t *testing.T) {
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	root := NewRootCmd(f)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" {
				continue
			}
			walk(sub)
		}
		if c.Short == "" {
			t.Errorf("%q has no Short", c.CommandPath())
		}
		if c.Runnable() && !c.HasSubCommands() && !strings.Contains(c.Example, "$ "+c.CommandPath()) {
			t.Errorf("%q has no example line starting with \"$ %s\"", c.CommandPath(), c.CommandPath())
		}
	}
	walk(root)
	for _, args := range [][]string{{"--help"}, {"hub", "--help"}, {"device", "simulate", "--help"}, {"method", "invoke", "--help"}} {
		r := run(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("iotctl %v: code %d stdout %q", args, r.code, r.stdout)
		}
	}
}
