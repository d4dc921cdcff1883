package cmd

import (
	"runtime"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/output"
)

type versionInfo struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// versionOptions are the inputs of `iotctl version`.
type versionOptions struct {
	f *cmdutil.Factory
}

// newCmdVersion returns `iotctl version`; runF replaces versionRun in
// tests (nil: versionRun).
func newCmdVersion(f *cmdutil.Factory, runF func(*versionOptions) error) *cobra.Command {
	opts := &versionOptions{f: f}
	return &cobra.Command{
		Use:     "version",
		Short:   "Print iotctl's version",
		Args:    cobra.NoArgs,
		Example: "  $ iotctl version\n  $ iotctl version -o json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return versionRun(opts)
		},
	}
}

func versionRun(opts *versionOptions) error {
	f := opts.f
	p, err := f.Printer()
	if err != nil {
		return err
	}
	v := versionInfo{Version: cmdutil.Version(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if p.Format == output.FormatTable {
		_, err := f.IO.Out.Write([]byte("iotctl " + v.Version + " (" + v.Go + " " + v.OS + "/" + v.Arch + ")\n"))
		return err
	}
	return p.Print(v, nil)
}
