package examples

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/internal/proxytest"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// proxyHost is the name the hub has in a world with a proxy: it
// resolves nowhere (.test), so only the proxy, which maps it to the
// hub, reaches the hub by it.
const proxyHost = "iothub.proxy.test"

// A world is the state one example runs in: a fresh hub with its
// fixtures, a home and a working directory, and the environment a user
// who followed the README would have.
type world struct {
	dir  string // the working directory
	home string
	hub  *hub.Hub
	// addr is the hub's address, localhost:PORT; host is the host name
	// in its connection strings (addr, or proxyHost:PORT behind a proxy).
	addr, host string
	caFile     string
	serviceCS  string
	deviceCS   string // MyGoDevice's, "" when it does not exist
	idScope    string // the hub's DPS ID scope
	dpsCert    string // cam-1's enrollment certificate (PEM)
	proxy      *proxytest.Proxy
	env        map[string]string

	cancel  context.CancelFunc
	closers []func()
}

// createdBy finds the identities an example creates itself ("cam1",
// "dev1/mod1"), which its world must not hold.
var (
	createDevice = regexp.MustCompile(`hub device create\s+(?:(?:--device-id|-d)[\s=]+)?([A-Za-z0-9._-]+)`)
	createModule = regexp.MustCompile(`hub device create\s.*?(?:--module-id|-m)[\s=]+([A-Za-z0-9._-]+)`)
)

func createdBy(script string) map[string]bool {
	c := map[string]bool{}
	for _, m := range createDevice.FindAllStringSubmatch(script, -1) {
		if mm := createModule.FindStringSubmatch(script); mm != nil {
			c[m[1]+"/"+mm[1]] = true
		} else {
			c[m[1]] = true
		}
	}
	return c
}

// newWorld makes the world of ex. t only registers cleanups (it may be
// the parent test of many worlds made at once).
func newWorld(t *testing.T, ex *example) (w *world, err error) {
	s := ex.Script
	dir := t.TempDir()
	w = &world{dir: filepath.Join(dir, "work"), home: filepath.Join(dir, "home")}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	for _, d := range []string{w.dir, filepath.Join(w.dir, "certs"), filepath.Join(w.dir, "test"), w.home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	creates := createdBy(s)
	generated := map[string]bool{} // the certificates the example makes
	if strings.Contains(s, "--generate-cert") {
		generated = creates
	}
	cam1Thumb, deviceCAs, err := w.writeFiles(generated, !strings.Contains(s, "device-ca create"))
	if err != nil {
		return nil, err
	}

	opts := &hub.Options{
		Addr:          "localhost:0",
		DataDir:       filepath.Join(w.home, ".local", "share", "iotctl", "hub"),
		DeviceCAFiles: deviceCAs,
	}
	serves := strings.Contains(s, "iotctl hub serve")
	if serves {
		// The hub the example starts keeps its data there.
		opts.DataDir = filepath.Join(dir, "world-hub")
	}
	if strings.Contains(s, "proxy.corp") {
		// The hub's name must be known before it starts (it goes into
		// the redirect to its Event Hub-compatible endpoint), so the
		// port is picked first.
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		opts.Addr = "localhost:" + port
		opts.HostName = proxyHost + ":" + port
		opts.SANs = []string{proxyHost}
		w.proxy = proxytest.New(t)
		w.proxy.Map(proxyHost, "127.0.0.1")
	}
	var azuritePort string
	if needsStorage(s) {
		if opts.FileUpload, azuritePort, err = storageOptions(); err != nil {
			return nil, err
		}
	}
	w.hub = hub.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	if err := w.hub.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the hub: %w", err)
	}
	w.closers = append(w.closers, func() { _ = w.hub.Close() })
	if azuritePort != "" {
		if err := w.startAzurite(azuritePort); err != nil {
			return nil, err
		}
	}
	_, port, _ := net.SplitHostPort(w.hub.Addrs()[0])
	w.addr, w.host, w.caFile = "localhost:"+port, w.hub.HostName(), w.hub.CAFile()
	if w.serviceCS, err = w.hub.ServiceConnectionString("iothubowner"); err != nil {
		return nil, err
	}

	reg := w.hub.Registry()
	for _, id := range []string{"MyGoDevice", "dev1"} {
		if !creates[id] {
			if _, err := reg.CreateDevice(&iothub.Device{DeviceID: id}); err != nil {
				return nil, fmt.Errorf("creating %s: %w", id, err)
			}
		}
	}
	if !creates["dev1/mod1"] {
		if _, err := reg.CreateModule(&iothub.Module{DeviceID: "dev1", ModuleID: "mod1"}); err != nil {
			return nil, fmt.Errorf("creating dev1/mod1: %w", err)
		}
	}
	if !creates["cam1"] {
		auth := &iothub.Authentication{Type: iothub.AuthSelfSigned, X509Thumbprint: &iothub.X509Thumbprint{PrimaryThumbprint: &cam1Thumb}}
		if _, err := reg.CreateDevice(&iothub.Device{DeviceID: "cam1", Authentication: auth}); err != nil {
			return nil, fmt.Errorf("creating cam1: %w", err)
		}
	}
	if !creates["MyGoDevice"] {
		if w.deviceCS, err = w.hub.DeviceConnectionString("MyGoDevice", ""); err != nil {
			return nil, err
		}
	}

	w.idScope = w.hub.DPS().IDScope()
	dpsCS, err := w.hub.DPSConnectionString()
	if err != nil {
		return nil, err
	}
	exports := map[string]string{
		"IOTCTL_CONNECTION_STRING":     w.serviceCS,
		"IOTCTL_CA_FILE":               w.caFile,
		"IOTCTL_DPS_ID_SCOPE":          w.idScope,
		"IOTCTL_DPS_CONNECTION_STRING": dpsCS,
	}
	if err := writeEnvFile(filepath.Join(opts.DataDir, "env.sh"), exports); err != nil {
		return nil, err
	}
	w.env = map[string]string{
		"HOME":       w.home,
		"CS":         w.serviceCS,
		"SERVICE_CS": w.serviceCS,
		"HUB":        w.host,
	}
	maps.Copy(w.env, exports)
	if err := w.enrollDPS(); err != nil {
		return nil, err
	}
	if w.deviceCS != "" {
		w.env["IOTCTL_DEVICE_CONNECTION_STRING"] = w.deviceCS
		w.env["DEVICE_CS"] = w.deviceCS
	}
	if opts.FileUpload != nil {
		w.env["AZURE_STORAGE_CONNECTION_STRING"] = opts.FileUpload.StorageConnectionString
	}
	if serves {
		// A hub an example starts must not take the port of another.
		w.env["IOTCTL_ADDR"] = "127.0.0.1:0"
	}

	// An example that acts as a device itself would take over the
	// connection of the world's simulated device.
	if !strings.Contains(s, "iotctl device ") {
		if err := w.connectDevices(ctx, creates); err != nil {
			return nil, err
		}
	}
	if strings.Contains(s, "sim-") {
		if err := w.runFleet(ctx); err != nil {
			return nil, err
		}
	}
	if strings.Contains(s, "file-notifications") && w.deviceCS != "" {
		if err := w.uploadForNotification(ctx); err != nil {
			return nil, fmt.Errorf("uploading a file for the notification: %w", err)
		}
	}
	if strings.Contains(s, "hub feedback") && !strings.Contains(s, "--wait-on-msg") && w.deviceCS != "" {
		if err := w.sendForFeedback(ctx); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// writeFiles writes the files examples read: cam1.pem and cam1-key.pem
// (cam1's self-signed certificate, whose thumbprint it returns),
// cam2.pem and cam2-key.pem, cam-1.pem and cam-1-key.pem (cam-1's DPS
// enrollment certificate, kept in w.dpsCert) (but not those of an identity in
// generated, whose certificate the example makes), cmd.json, fleet-ca.pem and fleet-ca-key.pem,
// certs/device-ca.pem and certs/device-ca-key.pem (when withDeviceCA),
// devices-root.pem and devices-intermediate.pem. It returns the device
// CAs the hub trusts. It also writes test/hub-seed.yaml, a seed for
// "hub serve --seed", and keys.json, a JSON Web Key Set for "hub serve
// --entra-jwks".
func (w *world) writeFiles(generated map[string]bool, withDeviceCA bool) (cam1Thumb string, deviceCAs []string, err error) {
	now := time.Now()
	files := map[string][]byte{
		"cmd.json":           []byte(`{"led":"on"}` + "\n"),
		"engine.log":         []byte("engine log\n"),
		"test/hub-seed.yaml": []byte("consumerGroups: [dashboards]\ndevices:\n  - deviceId: thermostat-1\n"),
	}
	jwks, err := signingKeySet()
	if err != nil {
		return "", nil, err
	}
	files["keys.json"] = jwks
	for _, cam := range []string{"cam1", "cam2", "cam-1"} {
		cert, key, err := devicecert.New(cam, now.Add(-time.Minute), now.Add(24*time.Hour), nil)
		if err != nil {
			return "", nil, err
		}
		if !generated[cam] {
			files[cam+".pem"], files[cam+"-key.pem"] = cert, key
		}
		switch cam {
		case "cam1":
			b, _ := pem.Decode(cert)
			sum := sha1.Sum(b.Bytes)
			cam1Thumb = strings.ToUpper(hex.EncodeToString(sum[:]))
		case "cam-1":
			w.dpsCert = string(cert)
		}
	}
	cas := []string{"fleet-ca", "devices-root", "devices-intermediate"}
	if withDeviceCA {
		cas = append(cas, filepath.Join("certs", "device-ca"))
	}
	for _, ca := range cas {
		cert, key, err := devicecert.NewCA(filepath.Base(ca), now.Add(-time.Minute), now.Add(24*time.Hour))
		if err != nil {
			return "", nil, err
		}
		files[ca+".pem"] = cert
		if ca != "devices-root" && ca != "devices-intermediate" {
			files[ca+"-key.pem"] = key
			deviceCAs = append(deviceCAs, filepath.Join(w.dir, ca+".pem"))
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), b, 0o600); err != nil {
			return "", nil, err
		}
	}
	return cam1Thumb, deviceCAs, nil
}

// writeEnvFile writes the exports "hub serve" writes to env.sh, for
// examples that source it.
func writeEnvFile(path string, exports map[string]string) error {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(exports)) {
		fmt.Fprintf(&b, "export %s=%s\n", k, output.ShellQuote(exports[k]))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// enrollDPS makes the enrollments the DPS examples name: the symmetric
// key group "examples" with key GROUP_KEY (KEY is dev-1's key derived
// from it, and dev-1 has registered with it), and cam-1 with its
// certificate.
func (w *world) enrollDPS() error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	groupKey := base64.StdEncoding.EncodeToString(key)
	devKey, err := dps.DeriveKey(groupKey, "dev-1")
	if err != nil {
		return err
	}
	w.env["GROUP_KEY"], w.env["KEY"] = groupKey, devKey
	svc := w.hub.DPS()
	if _, err := svc.PutGroup(&dps.EnrollmentGroup{
		EnrollmentGroupID:  "examples",
		ProvisioningStatus: dps.StatusEnabled,
		Attestation: &dps.Attestation{Type: dps.AttestationSymmetricKey,
			SymmetricKey: &dps.SymmetricKeyAttestation{PrimaryKey: groupKey, SecondaryKey: groupKey}},
	}, ""); err != nil {
		return fmt.Errorf("enrollment group: %w", err)
	}
	if _, err := svc.PutEnrollment(&dps.IndividualEnrollment{
		RegistrationID:     "cam-1",
		ProvisioningStatus: dps.StatusEnabled,
		Attestation: &dps.Attestation{Type: dps.AttestationX509, X509: &dps.X509Attestation{
			ClientCertificates: &dps.X509Certificates{Primary: &dps.X509CertificateWithInfo{Certificate: w.dpsCert}}}},
	}, ""); err != nil {
		return fmt.Errorf("enrollment cam-1: %w", err)
	}
	// dev-1 has registered, for the examples of "dps registration".
	k, err := sas.DecodeKey(devKey)
	if err != nil {
		return err
	}
	tok, err := sas.Sign(dps.RegistrationResource(svc.IDScope(), "dev-1"), k, &sas.SignOptions{KeyName: dps.DeviceKeyName})
	if err != nil {
		return err
	}
	if _, err := svc.Register(&dps.RegisterRequest{IDScope: svc.IDScope(), RegistrationID: "dev-1", Credentials: dps.Credentials{Token: tok.Encode()}}); err != nil {
		return fmt.Errorf("registering dev-1: %w", err)
	}
	return nil
}

// localCS is a connection string of the world's hub for the test's own
// clients, which reach it directly even when examples go through the
// proxy.
func (w *world) localCS(cs string) (*connstr.ConnectionString, error) {
	c, err := connstr.Parse(cs)
	if err != nil {
		return nil, err
	}
	c.HostName = w.addr
	return c, nil
}

// connectDevices connects the world's devices: MyGoDevice runs the
// quickstart simulation (telemetry every second, SetTelemetryInterval),
// dev1 answers "echo" with its payload and dev1/mod1 answers "reboot"
// with 200 {"rebooting":true}.
func (w *world) connectDevices(ctx context.Context, creates map[string]bool) error {
	if w.deviceCS != "" {
		cs, err := w.localCS(w.deviceCS)
		if err != nil {
			return err
		}
		connected := make(chan struct{})
		var once sync.Once
		sim, err := simulate.New(&simulate.Options{
			Device: device.Options{ConnectionString: cs.Format(), CAFile: w.caFile},
			Sink: func(e simulate.Event) {
				if e.Type == simulate.EventConnected {
					once.Do(func() { close(connected) })
				}
			},
		})
		if err != nil {
			return err
		}
		simCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := sim.Run(simCtx)
			done <- err
		}()
		w.closers = append(w.closers, func() { stop(); <-done })
		select {
		case <-connected:
		case err := <-done:
			done <- err
			return fmt.Errorf("simulating MyGoDevice: %v", err)
		case <-time.After(30 * time.Second):
			return errors.New("MyGoDevice's simulation did not connect within 30 s")
		}
	}
	type answer struct {
		device, module, method string
		reply                  func(req *device.MethodRequest) device.MethodResponse
	}
	answers := []answer{
		{"dev1", "", "echo", func(r *device.MethodRequest) device.MethodResponse {
			return device.MethodResponse{Status: 200, Payload: r.Payload}
		}},
		{"dev1", "mod1", "reboot", func(*device.MethodRequest) device.MethodResponse {
			return device.MethodResponse{Status: 200, Payload: []byte(`{"rebooting":true}`)}
		}},
	}
	for _, a := range answers {
		id := a.device
		if a.module != "" {
			id += "/" + a.module
		}
		if creates[id] || creates[a.device] {
			continue
		}
		cs, err := w.hub.DeviceConnectionString(a.device, a.module)
		if err != nil {
			return err
		}
		local, err := w.localCS(cs)
		if err != nil {
			return err
		}
		c, err := device.New(&device.Options{ConnectionString: local.Format(), CAFile: w.caFile})
		if err != nil {
			return err
		}
		reply := a.reply
		c.HandleMethod(a.method, func(_ context.Context, r *device.MethodRequest) device.MethodResponse { return reply(r) })
		if err := c.Connect(ctx); err != nil {
			return fmt.Errorf("connecting %s: %w", id, err)
		}
		w.closers = append(w.closers, func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Close(cctx)
		})
	}
	return nil
}

// hubKeys creates fleet devices in the world's registry.
type hubKeys struct{ w *world }

func (k hubKeys) EnsureDevice(_ context.Context, id string) (string, error) {
	d, err := k.w.hub.Registry().CreateDevice(&iothub.Device{DeviceID: id})
	if err != nil {
		return "", err
	}
	return d.Authentication.SymmetricKey.PrimaryKey, nil
}

// runFleet has the devices sim-00001 to sim-00010 send 10 messages each
// (the events a "sim-*" monitor example reads from the start).
func (w *world) runFleet(ctx context.Context) error {
	sim, err := simulate.New(&simulate.Options{
		Device:    device.Options{HostName: w.addr, CAFile: w.caFile},
		DeviceIDs: simulate.FleetIDs("sim-", 10),
		Keys:      hubKeys{w},
		Count:     10,
		Interval:  10 * time.Millisecond,
	})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := sim.Run(runCtx)
	if err != nil {
		return fmt.Errorf("the sim-* fleet: %w", err)
	}
	if st.Acked < 100 {
		return fmt.Errorf("the sim-* fleet sent %d messages, not 100", st.Acked)
	}
	return nil
}

// sendForFeedback sends MyGoDevice a message with --ack full, whose
// feedback record a "hub feedback" example then reads.
func (w *world) sendForFeedback(ctx context.Context) error {
	cs, err := w.localCS(w.serviceCS)
	if err != nil {
		return err
	}
	c, err := service.New(cs, &service.Options{CAFile: w.caFile})
	if err != nil {
		return err
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.SendC2D(sctx, "MyGoDevice", "", &message.Message{Body: []byte("reboot"), Ack: message.AckFull})
}

func (w *world) close() {
	for i := len(w.closers) - 1; i >= 0; i-- {
		w.closers[i]()
	}
	if w.cancel != nil {
		w.cancel()
	}
}

// freePort returns a port free on 127.0.0.1 at the time of the call.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// signingKeySet returns a JSON Web Key Set holding one new ECDSA P-256
// public key, as an identity provider publishes its token signing keys.
func signingKeySet() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	point := pub.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding.EncodeToString
	return json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "example",
		"x": enc(point[1:33]), "y": enc(point[33:]),
	}}})
}
