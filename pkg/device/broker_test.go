package device

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotctl/iotctl/internal/testcert"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// testKey is the devices' shared access key in these tests.
const testKey = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="

// waitFor is how long a test waits for an event before failing.
const waitFor = 10 * time.Second

// connectRecord is one CONNECT the broker saw.
type connectRecord struct {
	clientID, username, password string
	clean                        bool
	accepted                     bool
	reason                       string
}

// publishRecord is one PUBLISH a device sent.
type publishRecord struct {
	clientID string
	topic    string
	payload  []byte
	qos      byte
}

// testBroker is a small IoT Hub stand-in on mochi-mqtt: TLS on
// 127.0.0.1:0 with a throwaway certificate, SAS checks on CONNECT, and
// channels of what devices did. The test answers twin requests and
// sends method requests and C2D messages itself.
type testBroker struct {
	t        *testing.T
	srv      *mqtt.Server
	addr     string // 127.0.0.1:port
	hostName string // localhost:port, as in the connection strings
	caFile   string
	pool     *x509.CertPool
	key      []byte

	refuseAll atomic.Bool
	// expectHost, when set, is the host name CONNECTs must carry
	// instead of hostName (for gateway tests).
	expectHost atomic.Pointer[string]
	// gate, when set, holds the acknowledgement of telemetry until it
	// is closed (see holdAcks).
	gate atomic.Pointer[chan struct{}]
	stop sync.Once

	connects   chan connectRecord
	subscribes chan []string
	telemetry  chan publishRecord
	methodRes  chan publishRecord
	twinReqs   chan publishRecord
	gone       chan string // client ids whose connection ended
}

func newTestBroker(t *testing.T) *testBroker {
	t.Helper()
	cert, pool, caPEM := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := sas.DecodeKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	b := &testBroker{
		t: t, caFile: caFile, pool: pool, key: key,
		connects:   make(chan connectRecord, 100),
		subscribes: make(chan []string, 100),
		telemetry:  make(chan publishRecord, 1000),
		methodRes:  make(chan publishRecord, 100),
		twinReqs:   make(chan publishRecord, 100),
		gone:       make(chan string, 100),
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := b.srv.AddHook(&brokerHook{b: b}, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	if err := b.srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b.addr = l.Address()
	_, port, _ := net.SplitHostPort(b.addr)
	b.hostName = "localhost:" + port
	t.Cleanup(b.close)
	return b
}

// close stops the broker (once; mochi's Close panics the second time).
func (b *testBroker) close() { b.stop.Do(func() { b.srv.Close() }) }

// connString is a device connection string for id on this broker.
func (b *testBroker) connString(id string) string {
	return "HostName=" + b.hostName + ";DeviceId=" + id + ";SharedAccessKey=" + testKey
}

// options are client options for id with fast reconnects.
func (b *testBroker) options(id string) *Options {
	return &Options{
		ConnectionString: b.connString(id),
		CAFile:           b.caFile,
		MinRetryDelay:    10 * time.Millisecond,
		MaxRetryDelay:    50 * time.Millisecond,
	}
}

// publish writes a PUBLISH to every subscriber of topic (the tests
// have one device per filter that matters).
func (b *testBroker) publish(topic string, payload []byte, qos byte) {
	b.t.Helper()
	if err := b.srv.Publish(topic, payload, false, qos); err != nil {
		b.t.Fatalf("Publish(%q) = %v", topic, err)
	}
}

// drop closes the connection of clientID from the broker's side.
func (b *testBroker) drop(clientID string) {
	b.t.Helper()
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		b.t.Fatalf("no client %q to drop", clientID)
	}
	cl.Stop(errors.New("dropped by the test"))
}

// checkCredentials verifies a CONNECT as IoT Hub does.
func (b *testBroker) checkCredentials(clientID, username, password string) error {
	host := b.hostName
	if h := b.expectHost.Load(); h != nil {
		host = *h
	}
	wantUser := host + "/" + clientID + "/?api-version=" + APIVersion + "&DeviceClientType="
	if !strings.HasPrefix(username, wantUser) {
		return fmt.Errorf("username %q does not start with %q", username, wantUser)
	}
	tok, err := sas.Parse(password)
	if err != nil {
		return err
	}
	if err := sas.Verify(tok, b.key, time.Now()); err != nil {
		return err
	}
	deviceID, moduleID, _ := strings.Cut(clientID, "/")
	res := sas.DeviceResource(host, deviceID)
	if moduleID != "" {
		res = sas.ModuleResource(host, deviceID, moduleID)
	}
	if !sas.Covers(tok.Scope(), res) {
		return fmt.Errorf("token scope %q does not cover %q", tok.Scope(), res)
	}
	return nil
}

type brokerHook struct {
	mqtt.HookBase
	b *testBroker
}

func (h *brokerHook) ID() string { return "iothub-test" }

func (h *brokerHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSubscribed, mqtt.OnDisconnect}, []byte{b})
}

func (h *brokerHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	r := connectRecord{clientID: cl.ID, username: string(pk.Connect.Username), password: string(pk.Connect.Password), clean: pk.Connect.Clean}
	err := h.b.checkCredentials(cl.ID, r.username, r.password)
	if h.b.refuseAll.Load() {
		err = errors.New("refusing everyone")
	}
	r.accepted = err == nil
	if err != nil {
		r.reason = err.Error()
	}
	h.b.connects <- r
	return r.accepted
}

func (h *brokerHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func (h *brokerHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	var fs []string
	for _, f := range pk.Filters {
		fs = append(fs, f.Filter)
	}
	h.b.subscribes <- fs
}

func (h *brokerHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	select {
	case h.b.gone <- cl.ID:
	default:
	}
}

func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the test's own publishes
	}
	r := publishRecord{clientID: cl.ID, topic: pk.TopicName, payload: append([]byte(nil), pk.Payload...), qos: pk.FixedHeader.Qos}
	t, err := message.ParseDeviceTopic(pk.TopicName)
	if err != nil {
		h.b.t.Errorf("device published to %q: %v", pk.TopicName, err)
		return pk, nil
	}
	switch t.Kind {
	case message.KindTelemetry:
		h.b.telemetry <- r
		if g := h.b.gate.Load(); g != nil {
			<-*g // mochi acknowledges when the hook returned
		}
	case message.KindMethodResponse:
		h.b.methodRes <- r
	case message.KindTwinGet, message.KindTwinPatchReported:
		h.b.twinReqs <- r
	}
	return pk, nil
}

// holdAcks makes the broker hold the PUBACK of every telemetry message
// until release is called (at the latest when the test ends). mochi
// reads a client's packets on one goroutine and runs this hook on it,
// so the client's later packets wait too.
func (b *testBroker) holdAcks() (release func()) {
	g := make(chan struct{})
	b.gate.Store(&g)
	var once atomic.Bool
	release = func() {
		if once.CompareAndSwap(false, true) {
			b.gate.Store(nil)
			close(g)
		}
	}
	b.t.Cleanup(release)
	return release
}

// selfSigned makes a throwaway CA-and-server certificate for
// localhost and 127.0.0.1.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool, []byte) {
	return testcert.Server(t, "iotctl test broker")
}

// recv waits for a value on ch or fails the test.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// eventLog collects a client's state events.
type eventLog struct {
	ch chan Event
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan Event, 1000)} }

func (l *eventLog) on(e Event) { l.ch <- e }

// waitState waits for an event in state s and returns it.
func (l *eventLog) waitState(t *testing.T, s State) Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case e := <-l.ch:
			if e.State == s {
				return e
			}
		case <-deadline:
			t.Fatalf("timed out waiting for state %s", s)
		}
	}
}
