package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
)

// hub serve -o json prints one JSON object with a working service
// connection string, writes env.sh and stops cleanly on cancel.
func TestServeJSON(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	var errOut bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: bytes.NewReader(nil), Out: pw, ErrOut: &errOut})
	dataDir := t.TempDir()
	cmd := NewCmdHub(f)
	cmd.SetArgs([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "-o", "json"})
	cmd.PersistentFlags().StringP(cmdutil.KeyOutput, "o", "table", "")
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return f.Load(c) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()

	var info struct {
		HostName         string   `json:"hostName"`
		Addresses        []string `json:"addresses"`
		CAFile           string   `json:"caFile"`
		EnvFile          string   `json:"envFile"`
		ConnectionString string   `json:"connectionString"`
		IDScope          string   `json:"idScope"`
		DPS              string   `json:"dpsConnectionString"`
	}
	if err := json.NewDecoder(bufio.NewReader(pr)).Decode(&info); err != nil {
		t.Fatalf("decoding hub serve's JSON: %v (stderr %s)", err, errOut.String())
	}
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
