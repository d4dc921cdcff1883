package cmd

import (
	"bytes"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// visitOwnFlags visits, for every command of the tree, what cobra's
// LocalNonPersistentFlags lists, before and after cobra merges the
// inherited flags into the command's set (as parsing does).
func TestVisitOwnFlagsIsLocalNonPersistentFlags(t *testing.T) {
	root := NewRootCmd(cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}))
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c != root {
			var own []string
			visitOwnFlags(c, func(fl *pflag.Flag) { own = append(own, fl.Name) })
			var want []string
			c.LocalNonPersistentFlags().VisitAll(func(fl *pflag.Flag) { want = append(want, fl.Name) })
			if !slices.Equal(own, want) {
				t.Errorf("%s: visitOwnFlags gave %v; LocalNonPersistentFlags %v", c.CommandPath(), own, want)
			}
			n += len(own)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if n < 100 {
		t.Errorf("visited %d flags; the tree has more", n)
	}
	// Once more with every command's flags merged (LocalNonPersistentFlags
	// merged them on the first walk).
	walk(root)
}

// cmdutil.VisitFlags visits, for every command of the tree, what
// cobra's LocalFlags and InheritedFlags list, before and after cobra
// merges the inherited flags into the command's set.
func TestVisitFlagsIsLocalAndInheritedFlags(t *testing.T) {
	root := NewRootCmd(cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}))
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		got := map[*pflag.Flag]bool{}
		cmdutil.VisitFlags(c, func(fl *pflag.Flag) { got[fl] = true })
		want := map[*pflag.Flag]bool{}
		c.LocalFlags().VisitAll(func(fl *pflag.Flag) { want[fl] = true })
		c.InheritedFlags().VisitAll(func(fl *pflag.Flag) { want[fl] = true })
		if !maps.Equal(got, want) {
			t.Errorf("%s: VisitFlags gave %d flags, LocalFlags and InheritedFlags %d", c.CommandPath(), len(got), len(want))
		}
		n += len(got)
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if n < 100 {
		t.Errorf("visited %d flags; the tree has more", n)
	}
	walk(root) // every command's flags merged now
}
