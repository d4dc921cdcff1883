package cmd

import (
	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

// completionOptions are the inputs of `iotctl completion`.
type completionOptions struct {
	f     *cmdutil.Factory
	Shell string
	// Root is the command tree to complete.
	Root *cobra.Command
}

// newCmdCompletion returns `iotctl completion`; runF replaces
// completionRun in tests (nil: completionRun).
func newCmdCompletion(f *cmdutil.Factory, runF func(*completionOptions) error) *cobra.Command {
	opts := &completionOptions{f: f}
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print a shell completion script",
		Long: `Print a completion script for your shell.

bash:        source <(iotctl completion bash)
zsh:         iotctl completion zsh > "${fpath[1]}/_iotctl"
fish:        iotctl completion fish > ~/.config/fish/completions/iotctl.fish
powershell:  iotctl completion powershell | Out-String | Invoke-Expression`,
		Example:   "  $ iotctl completion bash > /etc/bash_completion.d/iotctl\n  $ source <(iotctl completion bash)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Shell, opts.Root = args[0], cmd.Root()
			if runF != nil {
				return runF(opts)
			}
			return completionRun(opts)
		},
	}
}

func completionRun(opts *completionOptions) error {
	root, out := opts.Root, opts.f.IO.Out
	switch opts.Shell {
	case "bash":
		return root.GenBashCompletionV2(out, true)
	case "zsh":
		return root.GenZshCompletion(out)
	case "fish":
		return root.GenFishCompletion(out, true)
	case "powershell":
		return root.GenPowerShellCompletionWithDesc(out)
	}
	return cmdutil.Usagef("unknown shell %q: use bash, zsh, fish or powershell", opts.Shell)
}
