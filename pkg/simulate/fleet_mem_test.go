package simulate

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/pkg/device"
)

// TestFleetMemory measures the client-side memory of a fleet against a
// mochi-mqtt broker in a child process. It is a measurement, not a
// test: it runs only with IOTCTL_FLEET_MEM=N (devices) and prints its
// figures; it asserts nothing about them.
//
//	IOTCTL_FLEET_MEM=10000 go test -run TestFleetMemory -v ./pkg/simulate
func TestFleetMemory(t *testing.T) {
	if os.Getenv("IOTCTL_TEST_BROKER") != "" {
		runBroker()
		return
	}
	n, _ := strconv.Atoi(os.Getenv("IOTCTL_FLEET_MEM"))
	if n <= 0 {
		t.Skip("set IOTCTL_FLEET_MEM=N to measure the memory of N simulated devices")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFleetMemory$")
	cmd.Env = append(os.Environ(), "IOTCTL_TEST_BROKER="+dir)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	_, port, _ := net.SplitHostPort(addr)

	runtime.GC()
	before := rssKB(t)
	keys := KeyMap{}
	ids := FleetIDs("mem-", n)
	for _, id := range ids {
		keys[id] = "c2VjcmV0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f, err := New(&Options{
		Device:      device.Options{HostName: "localhost:" + port, CAFile: filepath.Join(dir, "ca.pem"), KeepAlive: 5 * time.Minute},
		DeviceIDs:   ids,
		Keys:        keys,
		Interval:    10 * time.Second,
		ConnectRate: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	for f.Stats().Connected < int64(n) {
		select {
		case <-done:
			t.Fatalf("Run ended early: %+v", f.Stats())
		case <-time.After(100 * time.Millisecond):
		}
	}
	connectTime := time.Since(start)
	// Let every device send at least once.
	for f.Stats().Acked < int64(n) {
		time.Sleep(100 * time.Millisecond)
	}
	runtime.GC()
	after := rssKB(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d devices connected in %v (%.0f/s); RSS %d KB -> %d KB: %.1f KB per device; heap in use %.1f KB/device, stacks %.1f KB/device, goroutines %d (%.1f/device)",
		n, connectTime.Round(time.Millisecond), float64(n)/connectTime.Seconds(), before, after, float64(after-before)/float64(n),
		float64(ms.HeapInuse)/1024/float64(n), float64(ms.StackInuse)/1024/float64(n), runtime.NumGoroutine(), float64(runtime.NumGoroutine())/float64(n))
	if p := os.Getenv("IOTCTL_FLEET_MEM_PROFILE"); p != "" {
		fh, _ := os.Create(p)
		pprof.Lookup("heap").WriteTo(fh, 0)
		fh.Close()
		fg, _ := os.Create(p + ".goroutines")
		pprof.Lookup("goroutine").WriteTo(fg, 1)
		fg.Close()
	}
	cancel()
	<-done
}

func rssKB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// runBroker runs an accept-all TLS broker and prints its address.
func runBroker() {
	dir := os.Getenv("IOTCTL_TEST_BROKER")
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true, DNSNames: []string{"localhost"}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv.AddHook(new(allowAll), nil)
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}}})
	if err := srv.AddListener(l); err != nil {
		panic(err)
	}
	srv.Serve()
	fmt.Println(l.Address())
	select {}
}

type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }
