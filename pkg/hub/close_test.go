package hub

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// TestMain fails the package's tests when any goroutine outlives them:
// every hub a test starts is closed, and Close waits for all it began.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goroutineIDs returns the ids of the running goroutines.
func goroutineIDs() map[string]bool {
	ids := map[string]bool{}
	for _, g := range goroutineStacks() {
		ids[goroutineID(g)] = true
	}
	return ids
}

func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func goroutineID(stack string) string {
	head, _, _ := strings.Cut(stack, " [")
	return strings.TrimPrefix(head, "goroutine ")
}

// hubGoroutines returns the stacks of the goroutines not in before that
// run, or were started by, the hub's code (not its tests).
func hubGoroutines(before map[string]bool) []string {
	var out []string
	for _, g := range goroutineStacks()[1:] { // [0] is this goroutine
		if before[goroutineID(g)] {
			continue
		}
		lines := strings.Split(g, "\n")
		for i := 1; i+1 < len(lines); i++ {
			fn := strings.TrimPrefix(lines[i], "created by ")
			file := lines[i+1]
			if strings.HasPrefix(fn, "github.com/iotctl/iotctl/pkg/hub") && strings.HasPrefix(file, "\t") && !strings.Contains(file, "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// serviceRequest is an HTTPS request to the hub's service API as the
// iothubowner policy.
func serviceRequest(t *testing.T, h *Hub, method, path, body string) *http.Request {
	t.Helper()
	owner, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	cs := connstr.MustParse(owner)
	key, _ := cs.Key()
	tok, err := sas.Sign(cs.HostName, key, &sas.SignOptions{KeyName: "iothubowner"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, "https://"+h.Addrs()[0]+path+"?api-version=2021-04-12", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", tok.Encode())
	req.Header.Set("Content-Type", "application/json")
	return req
}

// rawMQTT connects a device over TLS with a hand-written CONNECT
// (CleanSession 0) and subscribes it to filter; it then reads nothing
// more, so what the hub writes to it piles up.
func rawMQTT(t *testing.T, h *Hub, cs *connstr.ConnectionString, filter string) *tls.Conn {
	t.Helper()
	c, _ := rawConnect(t, h, cs, false)
	var buf bytes.Buffer
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}
	if err := sub.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	suback := make([]byte, 5)
	if _, err := io.ReadFull(c, suback); err != nil || suback[0] != 0x90 {
		t.Fatalf("SUBACK % x: %v", suback, err)
	}
	return c
}

// rawConnect connects a device over TLS with a hand-written CONNECT
// and reads its CONNACK, which must accept it; it returns the
// connection and the CONNACK's Session Present flag.
func rawConnect(t *testing.T, h *Hub, cs *connstr.ConnectionString, clean bool) (*tls.Conn, bool) {
	t.Helper()
	c, err := tls.Dial("tcp", h.Addrs()[0], tlsFor(t, h))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, cs.DeviceID), mustKey(t, cs), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: cs.DeviceID, Keepalive: 60, Clean: clean,
			UsernameFlag: true, Username: []byte(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12"),
			PasswordFlag: true, Password: []byte(tok.Encode())}}
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	connack := make([]byte, 4)
	if _, err := io.ReadFull(c, connack); err != nil || connack[0] != 0x20 || connack[3] != 0 {
		t.Fatalf("CONNACK % x: %v", connack, err)
	}
	return c, connack[2]&1 == 1
}

// Close returns only when every goroutine the hub started has ended:
// connections (MQTT over TLS and over WebSocket, one stalled in its
// CONNECT), C2D deliveries blocked on a device that reads nothing, and
// an HTTPS method call waiting for a device that never answers.
func TestCloseWaitsForItsGoroutines(t *testing.T) {
	before := goroutineIDs()
	h := New(&Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })

	// A device that takes C2D messages and never reads them.
	deaf := createDevice(t, h, "deaf")
	rawMQTT(t, h, deaf, message.C2DFilter("deaf"))
	body := bytes.Repeat([]byte("x"), 1024)
	for range 50 {
		if _, err := h.reg.Enqueue("deaf", "", &registry.C2DMessage{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	h.C2DEnqueued("deaf", "")

	// A device over WebSocket that gets a method call and never answers.
	mute := createDevice(t, h, "mute")
	tok, err := sas.Sign(sas.DeviceResource(mute.HostName, "mute"), mustKey(t, mute), nil)
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan struct{}, 1)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("wss://" + h.Addrs()[0] + WebSocketPath).
		SetClientID("mute").SetUsername(mute.HostName + "/mute/?api-version=2021-04-12").SetPassword(tok.Encode()).
		SetTLSConfig(tlsFor(t, h)).SetAutoReconnect(false).SetProtocolVersion(4))
	if ct := c.Connect(); !ct.WaitTimeout(10*time.Second) || ct.Error() != nil {
		t.Fatalf("connect over WebSocket: %v", ct.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	st := c.Subscribe(message.MethodRequestFilter, 0, func(paho.Client, paho.Message) { called <- struct{}{} })
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatalf("subscribe: %v", st.Error())
	}
	req := serviceRequest(t, h, "POST", "/twins/mute/methods", `{"methodName":"m","payload":null,"responseTimeoutInSeconds":120}`)
	httpc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsFor(t, h)}}
	defer httpc.CloseIdleConnections()
	answered := make(chan *http.Response, 1)
	go func() {
		res, err := httpc.Do(req)
		if err != nil {
			answered <- nil
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		answered <- res
	}()
	select {
	case <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("the method call did not reach the device")
	}

	// A client that starts a CONNECT and stalls.
	stalled, err := tls.Dial("tcp", h.Addrs()[0], tlsFor(t, h))
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := stalled.Write([]byte{0x10, 0xff, 0xff, 0x01}); err != nil {
		t.Fatal(err)
	}

	closed := make(chan error, 1)
	go func() { closed <- h.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s")
	}
	if left := hubGoroutines(before); len(left) > 0 {
		t.Fatalf("%d goroutines of the hub still run after Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
	if _, err := os.Stat(h.reg.Path()); !os.IsNotExist(err) {
		t.Errorf("the in-memory registry %s is still there after Close (%v)", h.reg.Path(), err)
	}
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Error("the method call got no answer when the hub closed")
	}
}
