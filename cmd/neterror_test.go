package cmd

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// A hub that cannot be reached is named, with the phase that failed and
// what to do: start `iotctl hub serve`, or trust its CA with --ca-file.
func TestNetworkErrorsSayWhatToDo(t *testing.T) {
	t.Parallel() // no t.Setenv: see runIsolated
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	hubCS, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"nothing listens", []string{"method", "invoke", "-d", "dev1", "--name", "m", "--connection-string",
			"HostName=" + refused + ";SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"},
			cmdutil.ExitFailure, []string{refused, "TCP connect", "iotctl hub serve"}},
		{"CA not trusted", []string{"hub", "device", "list", "--connection-string", hubCS},
			cmdutil.ExitFailure, []string{h.HostName(), "TLS handshake", "--ca-file", "IOTCTL_CA_FILE"}},
		{"AMQP, nothing listens", []string{"hub", "c2d", "send", "-d", "dev1", "--data", "x", "--connection-string",
			"HostName=" + refused + ";SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"},
			cmdutil.ExitFailure, []string{refused, "TCP connect", "iotctl hub serve"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runIsolated(t, tt.args...)
			if r.code != tt.code {
				t.Errorf("code %d; want %d (stderr %q)", r.code, tt.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}
}

// A second `hub serve` on a data directory in use names the process
// that holds it and the ways out.
func TestServeDataDirInUse(t *testing.T) {
	t.Parallel() // no t.Setenv: see runIsolated
	dir := t.TempDir()
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	r := runIsolated(t, "hub", "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	if r.code != cmdutil.ExitFailure {
		t.Errorf("code %d; want 1", r.code)
	}
	for _, w := range []string{dir, fmt.Sprintf("process %d", os.Getpid()), "--data-dir", "--in-memory"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}
}

// Expired tokens are called expired: hub sas refuses to make one (exit
// 3), and connstr parse says how long ago a string's token expired.
func TestExpiredTokens(t *testing.T) {
	r := run(t, "", "hub", "sas", "--connection-string", deviceCS, "--expiry", "2020-01-01T00:00:00Z")
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "in the past") || !strings.Contains(r.stderr, "ago") || r.stdout != "" {
		t.Errorf("hub sas --expiry in the past: code %d stdout %q stderr %q; want 3 and \"in the past\"", r.code, r.stdout, r.stderr)
	}
	key, _ := sas.DecodeKey("c2VjcmV0")
	tok, err := sas.Sign("myhub.azure-devices.net/devices/dev1", key, &sas.SignOptions{Expiry: time.Now().Add(-3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cs := "HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessSignature=" + tok.Encode()
	r = run(t, "", "hub", "connstr", "parse", cs)
	if r.code != 0 || !strings.Contains(r.stdout, "expired 3h0m") || !strings.Contains(r.stdout, "ago") {
		t.Errorf("connstr parse: code %d stdout %q; want \"expired 3h0m... ago\"", r.code, r.stdout)
	}
	r = run(t, "", "hub", "connstr", "parse", "-o", "json", cs)
	if !strings.Contains(r.stdout, `"tokenExpired": "expired 3h0m`) {
		t.Errorf("connstr parse -o json: stdout %q; want tokenExpired", r.stdout)
	}
}
