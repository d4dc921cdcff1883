package cmd

import (
	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

func newCmdCompletion(f *cmdutil.Factory) *cobra.Command {
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
			root := cmd.Root()
			out := f.IO.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(out)
			}
			return cmdutil.Usagef("unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}
