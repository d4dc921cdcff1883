package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/amqpfront"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/seed"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// DefaultAddr is where the hub listens by default.
const DefaultAddr = "localhost:8443"

// Options configure a Hub. A nil *Options means the defaults.
type Options struct {
	// Addr is the TLS address every protocol is served on (MQTT, HTTPS
	// and AMQP, told apart by their first bytes). Port 0 picks a free
	// port; Addrs reports the real one. Default: DefaultAddr.
	Addr string
	// MoreAddrs are further TLS addresses, each serving every protocol
	// as Addr does (port 0 picks a free port; Addrs lists them after
	// Addr's). One client address reaches one hub address with about
	// 28,000 connections (Linux's ephemeral ports): more hub addresses
	// hold more from the same clients. Default: none.
	MoreAddrs []string
	// StandardPorts also binds 8883 (MQTT), 443 (HTTPS, WebSocket) and
	// 5671 (AMQP) on Addr's host; each serves every protocol too.
	// Default: false.
	StandardPorts bool
	// HostName is the host name (with a port if not a standard one) in
	// the connection strings the hub prints and the names in tokens it
	// accepts. Default: Addr's host, with the bound port unless
	// StandardPorts is set.
	HostName string
	// DataDir keeps the registry (bbolt), the telemetry log (in
	// "telemetry", see telemetry.Open) and the TLS material.
	// Default: <user data dir>/iotctl/hub (see DefaultDataDir).
	DataDir string
	// InMemory keeps the registry in a temporary file removed on Close,
	// the telemetry in memory and the TLS material in a temporary
	// directory, for tests and the demo. Default: false.
	InMemory bool
	// CertFile and KeyFile are the server certificate and key (PEM).
	// Default: a certificate made by the hub's own CA, kept in DataDir.
	CertFile, KeyFile string
	// SANs are extra names or IP addresses the generated server
	// certificate covers, besides localhost, 127.0.0.1, ::1 and Addr's
	// host.
	SANs []string
	// DeviceCAFiles are PEM files of CA certificates that sign device
	// certificates: a device or module whose registry authentication
	// is certificateAuthority connects with a client certificate that
	// chains to one of them and whose subject CN is its id ("{deviceId}"
	// or "{deviceId}/{moduleId}"). The TLS port asks every client for
	// a certificate but does not require one. Default: none (such
	// devices are refused; selfSigned devices need no CA).
	DeviceCAFiles []string
	// ConsumerGroups are consumer groups of the Event Hub-compatible
	// endpoint besides $Default (see amqpfront.ValidConsumerGroup for
	// the names allowed). Default: none.
	ConsumerGroups []string
	// Seed is applied to the registry at every Start, before the hub
	// accepts connections (see package seed); its consumer groups are
	// added to ConsumerGroups. A value the registry refuses fails Start
	// with a *seed.Error. Default: nil, nothing is seeded.
	Seed *seed.Seed
	// Partitions is the number of telemetry partitions. A telemetry log
	// on disk keeps the number it was made with: Start refuses another.
	// Default: 4.
	Partitions int
	// MaxEvents bounds the telemetry log; the oldest events are dropped
	// beyond it. 0 means the default: 250,000 with InMemory, no bound
	// on disk; negative means no bound.
	MaxEvents int
	// MaxBytes bounds the bytes of bodies and properties the telemetry
	// log holds; the oldest events are dropped beyond it. 0 means the
	// default: 512 MiB with InMemory, 1,638,400,000 bytes on disk
	// (400,000 messages of 4 KB, what one S1 unit of IoT Hub keeps);
	// negative means no bound.
	MaxBytes int64
	// Retention is how long telemetry is kept, as IoT Hub's built-in
	// endpoint keeps it for its retention time. 0 means one day, IoT
	// Hub's default (telemetry.DefaultRetention); IoT Hub allows at
	// most seven days (telemetry.MaxRetention), and so does Start.
	Retention time.Duration
	// Entra makes the service side accept Microsoft Entra ID bearer
	// tokens (HTTPS Authorization and AMQP put-token) and authorize
	// their principals by role (see auth.NewEntra). Default: nil,
	// only SAS tokens.
	Entra *auth.Entra
	// DisableLocalAuth refuses shared access policy tokens on the
	// service side, as a hub with disableLocalAuth does; devices keep
	// SAS and X.509, the Event Hub-compatible endpoint its keys.
	// Default: false.
	DisableLocalAuth bool
	// Metrics, if set, gets the hub's Prometheus metrics (iotctl_hub_*:
	// connections by protocol, devices connected, messages in, method
	// calls, C2D messages, queue depths), registered by Start; serve it
	// with promhttp. Default: nil, none.
	Metrics prometheus.Registerer
	// C2DSweepInterval is how often the hub drops expired cloud-to-device
	// messages (with their Expired feedback) and hands messages whose lock
	// expired to their devices again. Default: core.ExpirySweep (5 s);
	// tests that wait for an expiry set less.
	C2DSweepInterval time.Duration
	// FileUpload turns on file upload to a storage account (see
	// FileUploadOptions). Default: nil, devices' upload requests are
	// refused with 400014 DefaultStorageEndpointNotConfigured, as by a
	// hub without a storage account.
	FileUpload *FileUploadOptions
	// Logger receives the hub's log. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// DefaultDataDir is <user data dir>/iotctl/hub: $XDG_DATA_HOME or
// ~/.local/share on Linux.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "iotctl", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "iotctl-hub")
	}
	return filepath.Join(home, ".local", "share", "iotctl", "hub")
}

// Hub is a local Azure IoT Hub emulator. Make one with New, start it
// with Start and stop it with Close.
type Hub struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	ctx    context.Context
	cancel context.CancelFunc

	reg       *registry.Store
	store     hubStore
	closeDB   func() error
	auth      *auth.Authorizer
	front     *amqpfront.Front
	dps       *dps.Service
	mqttHook  *mqttHook
	dpsHook   *dpsMQTTHook
	core      *core.Core
	telemetry *telemetry.Log
	// files is the file upload service; nil without Options.FileUpload.
	files *fileUploads
	// meter counts what the endpoints do; prom is it, for Options.Metrics.
	meter meter
	prom  *hubMetrics

	tlsConf  *tls.Config
	caFile   string
	tmpDir   string
	hostName string
	addrs    []string
	hostSet  []string
	// deviceCAs verify certificateAuthority devices (nil: none).
	deviceCAs *x509.CertPool

	listeners []*muxListener
	httpLn    *chanListener
	httpSrv   *http.Server
	// workers are every goroutine the hub starts; Close waits for them.
	workers workers
	// conns are the connections handed to MQTT.
	conns     connSet
	closeOnce sync.Once
	closeErr  error
	// watchDone is closed when the goroutine that closes the hub at the
	// end of Start's ctx has returned.
	watchDone chan struct{}
	// ready is set when Start has started every endpoint, stopping
	// when Close begins (for HealthPath).
	ready, stopping atomic.Bool
}

// New returns a Hub with opts; it opens nothing until Start.
func New(opts *Options) *Hub {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := newHubMetrics()
	return &Hub{opts: o, log: o.Logger, now: o.Now, meter: m, prom: m}
}

// TelemetryDir is the directory of the telemetry log in a data dir.
func TelemetryDir(dataDir string) string { return filepath.Join(dataDir, "telemetry") }

// openTelemetry opens the telemetry log: in memory with InMemory, else
// in dataDir.
func (h *Hub) openTelemetry(dataDir string) error {
	if h.opts.Retention > telemetry.MaxRetention {
		return fmt.Errorf("hub: telemetry retention %s: IoT Hub keeps events at most 7 days (%s)", h.opts.Retention, telemetry.MaxRetention)
	}
	opts := &telemetry.Options{Partitions: h.opts.Partitions, MaxEvents: h.opts.MaxEvents, MaxBytes: h.opts.MaxBytes,
		Retention: h.opts.Retention, Now: h.now, Logger: h.log.With("component", "telemetry")}
	if h.opts.InMemory {
		h.telemetry = telemetry.NewMemory(opts)
		return nil
	}
	l, err := telemetry.Open(TelemetryDir(dataDir), opts)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	h.telemetry = l
	return nil
}

// Start opens the registry, makes or loads the TLS material, binds the
// listeners and starts serving. It returns once the hub accepts
// connections; ctx bounds the hub's life as Close does.
func (h *Hub) Start(ctx context.Context) (err error) {
	h.ctx, h.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	host, port, err := net.SplitHostPort(h.opts.Addr)
	if err != nil {
		return fmt.Errorf("hub: address %q: %w", h.opts.Addr, err)
	}
	if h.opts.Seed != nil {
		h.opts.ConsumerGroups = h.opts.Seed.ConsumerGroupsWith(h.opts.ConsumerGroups)
	}
	for _, g := range h.opts.ConsumerGroups {
		if err := amqpfront.ValidConsumerGroup(g); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
	}
	dataDir := h.opts.DataDir
	if h.opts.InMemory {
		h.tmpDir, err = os.MkdirTemp("", "iotctl-hub-")
		if err != nil {
			return fmt.Errorf("hub: %w", err)
		}
		dataDir = h.tmpDir
	} else if dataDir == "" {
		dataDir = DefaultDataDir()
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("hub: data dir: %w", err)
	}
	if err := h.openStore(dataDir); err != nil {
		return err
	}
	if err := h.applySeed(); err != nil {
		return err
	}
	if err := h.openTelemetry(dataDir); err != nil {
		return err
	}
	if h.opts.Metrics != nil {
		if err := h.registerMetrics(h.opts.Metrics); err != nil {
			return fmt.Errorf("hub: metrics: %w", err)
		}
	}
	h.core = core.New(h.ctx, &core.Options{Registry: h.reg, Telemetry: h.telemetry, Go: h.workers.goFunc,
		Events: coreEvents{h.meter}, Logger: h.log.With("component", "devices"), Now: h.now})
	h.workers.goFunc(func() { h.core.Sweep(h.ctx, h.opts.C2DSweepInterval) })
	if err := h.setupTLS(dataDir, host); err != nil {
		return err
	}
	if fo := h.opts.FileUpload; fo != nil {
		if h.files, err = newFileUploads(*fo, h.caFile); err != nil {
			return err
		}
	}

	bind := []string{net.JoinHostPort(host, port)}
	if h.opts.StandardPorts {
		for _, p := range []string{"8883", "443", "5671"} {
			if p != port {
				bind = append(bind, net.JoinHostPort(host, p))
			}
		}
	}
	for _, a := range h.opts.MoreAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("hub: address %q: %w", a, err)
		}
		bind = append(bind, a)
	}
	h.startMQTT()
	for _, a := range bind {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("hub: listen on %s: %w", a, err)
		}
		m := &muxListener{ln: ln, tlsConf: h.tlsConf, log: h.log, handle: h.handleConn, spawn: h.workers.goFunc}
		h.listeners = append(h.listeners, m)
		h.addrs = append(h.addrs, ln.Addr().String())
	}
	h.hostName = h.opts.HostName
	if h.hostName == "" {
		h.hostName = host
		if !h.opts.StandardPorts {
			_, p, _ := net.SplitHostPort(h.addrs[0])
			h.hostName = net.JoinHostPort(host, p)
		}
	}
	h.hostSet = append([]string{h.hostName, host}, h.addrs...)
	h.hostSet = append(h.hostSet, h.opts.SANs...)
	h.auth = auth.New(h.reg, &auth.Options{HostNames: h.hostSet, Now: h.now, Entra: h.opts.Entra, DisableLocalAuth: h.opts.DisableLocalAuth})
	h.front = h.newAMQPFront()
	if err := h.startDPS(); err != nil {
		return err
	}
	if err := h.applyDPSSeed(); err != nil {
		return err
	}
	if err := h.startHTTP(); err != nil {
		return err
	}
	// Every endpoint is bound and has its handler: the first request
	// HealthPath can get finds the hub ready.
	h.ready.Store(true)
	for _, m := range h.listeners {
		h.workers.goFunc(func() { m.serve(h.ctx) })
	}
	h.watchDone = make(chan struct{})
	go func() {
		defer close(h.watchDone)
		<-h.ctx.Done()
		h.closeOnce.Do(h.shutdown)
	}()
	h.log.Info("hub started", "addrs", h.addrs, "hostName", h.hostName, "ca", h.caFile)
	return nil
}

func (h *Hub) setupTLS(dataDir, host string) error {
	var cert tls.Certificate
	var err error
	if h.opts.CertFile != "" || h.opts.KeyFile != "" {
		cert, err = tls.LoadX509KeyPair(h.opts.CertFile, h.opts.KeyFile)
		if err != nil {
			return fmt.Errorf("hub: --cert %s / --key %s: %w", h.opts.CertFile, h.opts.KeyFile, err)
		}
	} else {
		sans := slices.Clone(defaultSANs)
		for _, s := range append([]string{host}, h.opts.SANs...) {
			if s != "" && !slices.Contains(sans, s) {
				sans = append(sans, s)
			}
		}
		cert, h.caFile, err = ensureCerts(filepath.Join(dataDir, "tls"), sans, h.now())
		if err != nil {
			return err
		}
	}
	if h.deviceCAs, err = loadDeviceCAs(h.opts.DeviceCAFiles); err != nil {
		return err
	}
	h.tlsConf = &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
		// Ask for a device certificate without verifying it here: a
		// self-signed one would fail, and a refusal must be a CONNACK
		// (return code 5), not a broken handshake. authX509 checks it.
		ClientAuth: tls.RequestClientCert,
	}
	return nil
}

// startMQTT makes the MQTT endpoint's hooks; connections come from the
// listeners (serveMQTT) and run on mqttserve.go's loop.
func (h *Hub) startMQTT() {
	h.mqttHook, h.dpsHook = &mqttHook{h: h}, &dpsMQTTHook{h: h}
}

// handleConn hands a sniffed connection to its protocol.
func (h *Hub) handleConn(p protocol, c net.Conn) {
	switch p {
	case protoMQTT:
		h.serveMQTT(c)
	case protoAMQP:
		h.serveAMQP(c)
	default:
		h.httpLn.push(c)
	}
}

func (h *Hub) serveMQTT(c net.Conn) {
	defer h.meter.conn("mqtt")()
	h.conns.add(c)
	defer h.conns.remove(c)
	err := h.runMQTT(c)
	if err != nil && !errors.Is(err, io.EOF) {
		h.log.Debug("mqtt connection ended", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// Close stops the hub: it stops taking connections and publishes,
// waits for every goroutine it started, MQTT connections included (a
// publish being stored is stored first), then closes the telemetry log
// and the registry. Nothing the hub acknowledged is lost.
func (h *Hub) Close() error {
	h.closeOnce.Do(h.shutdown)
	if h.watchDone != nil {
		<-h.watchDone
	}
	return h.closeErr
}

func (h *Hub) shutdown() {
	h.stopping.Store(true)
	if h.cancel != nil {
		h.cancel()
	}
	for _, m := range h.listeners {
		m.close()
	}
	if h.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = h.httpSrv.Shutdown(ctx)
		cancel()
		// Connections Shutdown did not see idle in time are closed;
		// hijacked ones (WebSocket) end with their protocol below.
		_ = h.httpSrv.Close()
	}
	if h.httpLn != nil {
		_ = h.httpLn.Close()
	}
	if h.mqttHook != nil {
		h.core.CloseAll(core.ErrShutdown)
		// Connections in no session (a client stalled in its CONNECT)
		// are closed too, so that their goroutines end for the workers'
		// wait below.
		h.conns.closeAll()
	}
	h.workers.closeAndWait()
	// No publish can come now. Close stores the ones still waiting for
	// a sync; their PUBACKs go to connections already closed, so their
	// devices send them again.
	if h.telemetry != nil {
		h.closeErr = h.telemetry.Close()
	}
	if h.closeDB != nil {
		h.closeErr = errors.Join(h.closeErr, h.closeDB())
	}
	if h.tmpDir != "" {
		_ = os.RemoveAll(h.tmpDir)
	}
}

// Addrs returns the addresses the hub listens on, the main one first.
func (h *Hub) Addrs() []string { return slices.Clone(h.addrs) }

// HostName is the host name the hub's connection strings carry.
func (h *Hub) HostName() string { return h.hostName }

// CAFile is the path of the CA certificate that signed the server
// certificate ("" when CertFile was given).
func (h *Hub) CAFile() string { return h.caFile }

// Telemetry is the hub's telemetry log (nil before Start).
func (h *Hub) Telemetry() *telemetry.Log { return h.telemetry }

// Connected reports how many devices and modules are connected.
func (h *Hub) Connected() int {
	if h.core == nil {
		return 0
	}
	return h.core.Connected()
}

// knownHost reports whether a host name in a username or token is one
// the hub answers to (case-insensitive; a missing port matches any).
func (h *Hub) knownHost(host string) bool {
	for _, n := range h.hostSet {
		if sas.HostsMatch(n, host) {
			return true
		}
	}
	return false
}

// ServiceConnectionString returns the connection string of a shared
// access policy (e.g. "iothubowner").
func (h *Hub) ServiceConnectionString(policy string) (string, error) {
	key, err := h.store.policyKey(policy)
	if err != nil {
		return "", err
	}
	cs := connstr.ConnectionString{Kind: connstr.KindService, HostName: h.hostName, SharedAccessKeyName: policy, SharedAccessKey: key}
	return cs.Format(), nil
}

// DeviceConnectionString returns the connection string of a device or
// module with its primary key.
func (h *Hub) DeviceConnectionString(deviceID, moduleID string) (string, error) {
	key, err := h.store.identityKey(deviceID, moduleID)
	if err != nil {
		return "", err
	}
	cs := connstr.ConnectionString{Kind: connstr.KindDevice, HostName: h.hostName, DeviceID: deviceID, ModuleID: moduleID, SharedAccessKey: key}
	return cs.Format(), nil
}

// Registry is the hub's identity registry.
func (h *Hub) Registry() *registry.Store { return h.reg }

// CreateDevice registers a device with generated keys.
func (h *Hub) CreateDevice(id string) error {
	_, err := h.reg.CreateDevice(&iothub.Device{DeviceID: id})
	return err
}

// Errors of a direct-method call, as IoT Hub reports them.
var (
	// ErrDeviceNotOnline: the device is not connected or has not
	// subscribed to methods (404103).
	ErrDeviceNotOnline = core.ErrDeviceNotOnline
	// ErrMethodTimeout: the device did not answer in time (504101).
	ErrMethodTimeout = core.ErrMethodTimeout
)

// InvokeMethod calls a direct method on a connected device or module
// and waits for its answer (see core.Core.InvokeMethod): ErrDeviceNotOnline
// when it is not connected and listening within connectTimeout,
// ErrMethodTimeout when it does not answer within responseTimeout.
func (h *Hub) InvokeMethod(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage, connectTimeout, responseTimeout time.Duration) (int, json.RawMessage, error) {
	if h.core == nil {
		return 0, nil, ErrDeviceNotOnline // not started
	}
	return h.core.InvokeMethod(ctx, deviceID, moduleID, name, payload, connectTimeout, responseTimeout)
}

// DesiredChanged sends a desired-properties patch to the device or
// module when it is connected and listens for desired updates.
func (h *Hub) DesiredChanged(deviceID, moduleID string, patch json.RawMessage, version int64) {
	if h.core != nil {
		h.core.DesiredChanged(deviceID, moduleID, patch, version)
	}
}

// C2DEnqueued wakes the delivery of a connected device after a message
// was queued for it.
func (h *Hub) C2DEnqueued(deviceID, moduleID string) {
	if h.core != nil {
		h.core.C2DEnqueued(deviceID, moduleID)
	}
}
