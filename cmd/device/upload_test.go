package device

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
)

func TestUploadFlagsAndUsageErrors(t *testing.T) {
	t.Parallel()
	var got *uploadOptions
	capture := func(f *cmdutil.Factory) *cobra.Command {
		return newCmdUpload(f, func(o *uploadOptions) error { got = o; return nil })
	}
	code, _, stderr := execute(t, "", capture, "upload", "dir/report.csv", "--connection-string", deviceCS)
	if code != 0 || got.blobName != "report.csv" || got.up.ConnectionString == nil || got.up.ConnectionString.DeviceID != "dev1" {
		t.Fatalf("upload FILE: code %d stderr %q options %+v; want blob name report.csv for dev1", code, stderr, got)
	}
	code, _, stderr = execute(t, "", capture, "upload", "-", "--blob-name", "logs/today.txt", "--connection-string", deviceCS)
	if code != 0 || got.blobName != "logs/today.txt" || got.file != "-" {
		t.Fatalf("upload - --blob-name: code %d stderr %q options %+v", code, stderr, got)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-", "--connection-string", deviceCS}, "--blob-name"},
		{[]string{"f.txt", "--connection-string", deviceCS + ";ModuleId=m1"}, "module"},
		{[]string{"f.txt", "--connection-string", deviceCS, "--websocket"}, "--websocket"},
		{[]string{"f.txt", "--connection-string", "garbage"}, ""},
		{[]string{"--connection-string", deviceCS}, "FILE"},
	} {
		code, _, stderr := execute(t, "", capture, append([]string{"upload"}, c.args...)...)
		if code != cmdutil.ExitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("upload %q: code %d stderr %q; want 3 naming %q", c.args, code, stderr, c.want)
		}
	}
	// Upload is HTTPS whatever the device's transport: its help offers
	// no transport to choose, and keeps the proxy and the credentials.
	code, stdout, stderr := execute(t, "", capture, "upload", "--help")
	if code != 0 || strings.Contains(stdout, "--transport") || strings.Contains(stdout, "--websocket") ||
		!strings.Contains(stdout, "--proxy") || !strings.Contains(stdout, "X.509:") || !strings.Contains(stdout, "HTTPS_PROXY") {
		t.Errorf("upload --help: code %d stderr %q; want help with --proxy, HTTPS_PROXY and X.509 and without --transport or --websocket:\n%s", code, stderr, stdout)
	}
}
