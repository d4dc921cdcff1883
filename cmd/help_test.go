package cmd

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub/auth"
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

// Every service command (those with --auth-type) says in its --help how
// it signs in and which role --auth-type login needs for it.
func TestServiceCommandsSayHowTheySignIn(t *testing.T) {
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
	var found []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Flags().Lookup(cmdutil.KeyAuthType) == nil {
			return
		}
		found = append(found, c.CommandPath())
		if !strings.Contains(c.Long, cmdutil.ServiceAuthHelp) {
			t.Errorf("%q --help does not say how it signs in (cmdutil.ServiceAuthHelp)", c.CommandPath())
		}
		_, role, ok := strings.Cut(c.Long, "\nRole: ")
		named := false
		for _, r := range append(auth.Roles, auth.Role{Name: "Contributor"}) {
			named = named || strings.Contains(strings.ReplaceAll(role, "\n", " "), r.Name)
		}
		if !ok || !named {
			t.Errorf("%q --help names no role for --auth-type login: %q", c.CommandPath(), role)
		}
		if strings.HasPrefix(c.Long, "\n") || strings.HasPrefix(c.Long, "Sign-in:") {
			t.Errorf("%q --help says nothing before the sign-in paragraph", c.CommandPath())
		}
	}
	walk(NewRootCmd(f))
	for _, want := range []string{"iotctl method invoke", "iotctl hub device create", "iotctl hub twin update", "iotctl hub query",
		"iotctl hub c2d send", "iotctl hub c2d purge", "iotctl hub feedback", "iotctl hub monitor"} {
		if !slices.Contains(found, want) {
			t.Errorf("%q has no --auth-type; the service commands found are %v", want, found)
		}
	}
}
