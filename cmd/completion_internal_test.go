package cmd

import (
	"testing"

	"github.com/iotctl/iotctl/internal/clitest"
)

// completion takes the shell as its argument and the tree from the
// root; version takes nothing.
func TestCompletionAndVersionFlags(t *testing.T) {
	got, err := clitest.RunF(t, nil, newCmdCompletion, "zsh")
	if err != nil || got == nil || got.Shell != "zsh" || got.Root == nil {
		t.Errorf("completion zsh = %+v, %v", got, err)
	}
	if got, err := clitest.RunF(t, nil, newCmdCompletion); got != nil || err == nil {
		t.Errorf("completion without a shell = %+v, %v; want an error before runF", got, err)
	}
	if got, err := clitest.RunF(t, nil, newCmdVersion); err != nil || got == nil {
		t.Errorf("version = %+v, %v", got, err)
	}
	clitest.CheckUsage(t, nil, newCmdVersion, []clitest.UsageCase{{Args: []string{"--bogus"}, Want: "unknown flag"}})
}
