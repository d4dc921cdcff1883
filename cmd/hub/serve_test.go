package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/output"
)

// serveJSON runs hub serve -o json with args, decodes the JSON object
// it prints, and returns it with a stop function that cancels the
// command and checks that it ended as interrupted.
func serveJSON(t *testing.T, args ...string) (serveInfo, func()) {
	t.Helper()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: bytes.NewReader(nil), Out: pw, ErrOut: &errOut})
	cmd := NewCmdHub(f)
	cmd.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0", "-o", "json"}, args...))
	cmd.PersistentFlags().StringP(cmdutil.KeyOutput, "o", "table", "")
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return f.Load(c) }
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	var info serveInfo
	if err := json.NewDecoder(bufio.NewReader(pr)).Decode(&info); err != nil {
		cancel()
		t.Fatalf("decoding hub serve's JSON: %v (stderr %s)", err, errOut.String())
	}
	return info, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if cmdutil.ExitCode(err) != cmdutil.ExitInterrupted {
				t.Errorf("serve ended with %v; want the interrupted exit", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("hub serve did not stop after cancel")
		}
	}
}

// hub serve -o json prints one JSON object with a working service
// connection string, writes env.sh and stops cleanly on cancel.
func TestServeJSON(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	info, stop := serveJSON(t, "--data-dir", dataDir)
	defer stop()
	cs, err := connstr.Parse(info.ConnectionString)
	if err != nil || cs.Kind != connstr.KindService || cs.SharedAccessKeyName != "iothubowner" || cs.HostName != info.HostName {
		t.Errorf("connection string %v: %v", cs, err)
	}
	if info.CAFile != filepath.Join(dataDir, "tls", "ca.pem") || len(info.Addresses) != 1 {
		t.Errorf("info = %+v", info)
	}
	env, err := os.ReadFile(info.EnvFile)
	if err != nil || !bytes.Contains(env, []byte("export IOTCTL_CONNECTION_STRING='"+info.ConnectionString+"'")) {
		t.Errorf("env.sh = %q, %v", env, err)
	}
	dps, err := connstr.Parse(info.DPS)
	if err != nil || dps.SharedAccessKeyName != "provisioningserviceowner" || dps.HostName != info.HostName || len(info.IDScope) != 11 {
		t.Errorf("idScope %q, dpsConnectionString %v: %v", info.IDScope, dps, err)
	}
	if !bytes.Contains(env, []byte("export IOTCTL_DPS_ID_SCOPE='"+info.IDScope+"'")) ||
		!bytes.Contains(env, []byte("export IOTCTL_DPS_CONNECTION_STRING='"+info.DPS+"'")) {
		t.Errorf("env.sh = %q; want the DPS exports", env)
	}
	if info.LocalAuthDisabled || bytes.Contains(env, []byte("IOTCTL_AUTH_TYPE")) || slices.Contains(info.NextSteps, "export IOTCTL_AUTH_TYPE=login") {
		t.Errorf("a hub with local authentication says it is disabled or exports IOTCTL_AUTH_TYPE: %+v, env.sh %q", info, env)
	}
}

// With --disable-local-auth the service side refuses the connection
// string's key, so the next steps, and env.sh, sign in with Entra ID.
func TestServeDisableLocalAuthNextSteps(t *testing.T) {
	t.Parallel()
	info, stop := serveJSON(t, "--in-memory", "--disable-local-auth")
	if !info.LocalAuthDisabled || len(info.NextSteps) < 3 || info.NextSteps[2] != "export IOTCTL_AUTH_TYPE=login" ||
		!strings.HasPrefix(info.NextSteps[0], "export IOTCTL_CONNECTION_STRING=") {
		t.Errorf("--in-memory --disable-local-auth: localAuthDisabled %v, next steps %q; want IOTCTL_AUTH_TYPE=login after the exports", info.LocalAuthDisabled, info.NextSteps)
	}
	stop()

	info, stop = serveJSON(t, "--data-dir", t.TempDir(), "--disable-local-auth")
	defer stop()
	env, err := os.ReadFile(info.EnvFile)
	if err != nil || !bytes.Contains(env, []byte("\nexport IOTCTL_AUTH_TYPE=login\n")) || !bytes.Contains(env, []byte("export IOTCTL_CONNECTION_STRING=")) {
		t.Errorf("env.sh with --disable-local-auth = %q, %v; want IOTCTL_AUTH_TYPE=login beside the connection string", env, err)
	}
	if len(info.NextSteps) == 0 || info.NextSteps[0] != ". "+output.ShellQuote(info.EnvFile) || slices.Contains(info.NextSteps, "export IOTCTL_AUTH_TYPE=login") ||
		!slices.Contains(info.NextSteps, "iotctl hub device create --device-id MyGoDevice") {
		t.Errorf("next steps with a data directory = %q; want env.sh sourced once, then the commands", info.NextSteps)
	}
}
