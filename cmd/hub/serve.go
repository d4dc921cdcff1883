package hub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/metricsrv"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/amqpfront"
	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/seed"
	"github.com/iotctl/iotctl/pkg/hub/telemetry"
	"github.com/iotctl/iotctl/pkg/output"
)

// EnvFile is the file in the data directory where `hub serve` writes
// the shell exports of its connection string and CA file.
const EnvFile = "env.sh"

type serveInfo struct {
	HostName         string   `json:"hostName"`
	Addresses        []string `json:"addresses"`
	CAFile           string   `json:"caFile,omitempty"`
	DataDir          string   `json:"dataDir,omitempty"`
	EnvFile          string   `json:"envFile,omitempty"`
	ConnectionString string   `json:"connectionString"`
	EventHub         string   `json:"eventHubConnectionString"`
	IDScope          string   `json:"idScope"`
	DPS              string   `json:"dpsConnectionString"`
	PprofAddress     string   `json:"pprofAddress,omitempty"`
	NextSteps        []string `json:"nextSteps"`
	MetricsURL       string   `json:"metricsUrl,omitempty"`
	// LocalAuthDisabled is set with --disable-local-auth: the service
	// side refuses ConnectionString, and takes Entra ID tokens only.
	LocalAuthDisabled bool `json:"localAuthDisabled,omitempty"`
}

// serveOptions are the inputs of `hub serve`: the hub's options,
// resolved from the flags and the configuration.
type serveOptions struct {
	f   *cmdutil.Factory
	Hub *hub.Options
	// MetricsAddr is where to serve Prometheus metrics ("" for none).
	MetricsAddr string
	// PprofAddr is where to serve Go's profiles ("" for none).
	PprofAddr string
}

// newCmdServe returns `hub serve`; runF replaces serveRun in tests of
// flag parsing (nil: serveRun).
func newCmdServe(f *cmdutil.Factory, runF func(*serveOptions) error) *cobra.Command {
	opts := &serveOptions{f: f}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the local IoT Hub emulator",
		Long: `Run a local IoT hub that speaks the protocols of Azure IoT Hub: MQTT 3.1.1,
AMQP 1.0 and HTTPS for devices and modules (telemetry; over AMQP also methods,
twins and cloud-to-device messages with complete, reject and abandon, SAS tokens
put on $cbs and renewed on the live connection; cloud-to-device polling with
complete, reject and abandon over HTTPS), HTTPS for the service REST API, AMQP 1.0 for cloud-to-device messages,
feedback and the Event Hub-compatible telemetry endpoint, and MQTT and AMQP over
WebSocket at /$iothub/websocket (subprotocol mqtt or AMQPWSB10; AMQP also at
/$servicebus/websocket, MQTT also at /mqtt), all on one TLS port (default localhost:8443). With
--standard-ports it also listens on 8883, 443 and 5671. --addr may be repeated:
each further address serves every protocol too (one client address reaches one
hub address with about 28,000 connections, the ephemeral ports). As on Azure, an MQTT 5
CONNECT is refused (CONNACK 0x01, unacceptable protocol version) and a device's
connection ends when its SAS token expires (devices renew by reconnecting).

On first start it makes a CA and a server certificate in the data directory and
prints the CA file's path: give it to clients with --ca-file (iotctl) or
NODE_EXTRA_CA_CERTS (Node.js). It prints the iothubowner connection string and
the next commands to run, and writes the exports other terminals need to
<data-dir>/env.sh; -o json prints the same as one JSON object. Devices,
twins and queued cloud-to-device messages are kept in the data directory
(bbolt) and survive a restart; --in-memory keeps nothing.

Telemetry is kept in <data-dir>/telemetry: the hub acknowledges a message
(PUBACK) only once it is synced to disk, and after a restart monitors read
every acknowledged event, with sequence numbers that carry on. As IoT Hub's
built-in endpoint, the hub keeps events one day by default (--retention; IoT
Hub allows at most 7 days) and, on disk, up to 1,638,400,000 bytes (400,000
messages of 4 KB, what one S1 unit of IoT Hub keeps; --max-bytes); the oldest
are dropped beyond. With --in-memory telemetry is kept in memory, at most
250,000 events (--max-events) and 512 MiB.

X.509 devices: the TLS port asks clients for a certificate (without requiring
one). A device that connects with a client certificate and no password is
accepted when its registry authentication is selfSigned and the certificate's
SHA-1 or SHA-256 thumbprint is its primary or secondary one, or when it is
certificateAuthority, the certificate chains to a --device-ca and its subject CN
is the device id (DEVICE/MODULE for a module). Expired certificates are refused.

The hub is also a Device Provisioning Service (DPS) over HTTPS, MQTT and AMQP on the same
port(s): it prints its ID scope and the connection string of its
provisioningserviceowner policy (for the DPS service API and "iotctl dps"), and
env.sh exports them as IOTCTL_DPS_ID_SCOPE and IOTCTL_DPS_CONNECTION_STRING.
Devices registered through it are assigned to this hub.

--seed FILE (YAML or JSON) declares devices and modules (keys or certificate
thumbprints, status, tags, desired properties), shared access policies with
their keys, consumer groups, and DPS enrollments and enrollment groups, with the
field names of the IoT Hub and DPS service REST APIs.
The hub applies it at every start, before it accepts connections: what the file
declares is made so (a device whose keys differ is updated to the file's), and
nothing changes when it already is, so a test suite gets the same hub every
time. Identities the file does not name are left alone. An invalid file exits 3
naming the line and the problem. The README shows the schema with an example.

Telemetry is read from the Event Hub-compatible endpoint (AMQP) in consumer
group $Default and in each --consumer-group, as a hub with consumer groups made
by "az iot hub consumer-group create"; each group reads every event.

Microsoft Entra ID on the service side: --entra-jwks FILE|URL (a JSON Web Key
Set) and --entra-issuer make the hub accept bearer tokens (HTTPS) and JWT
put-tokens (AMQP) signed by those keys for the audience https://iothubs.azure.net,
and --entra-role PRINCIPAL=ROLE (repeatable; the token's oid, appid or sub) assigns
"IoT Hub Data Contributor", "IoT Hub Data Reader", "IoT Hub Registry
Contributor" or "IoT Hub Twin Contributor", with their documented data actions.
--disable-local-auth refuses shared access policy tokens on the service side, as
a hub with local authentication disabled does; devices keep SAS and X.509, and
the Event Hub-compatible endpoint its shared keys. The next steps it prints,
and env.sh, then add IOTCTL_AUTH_TYPE=login, so that the service commands sign
in with Entra ID and find the hub by the connection string's HostName.

GET /health on the TLS port needs no authorization and answers 200 with
{"status":"ok","hostName":...,"addresses":[...]} once every endpoint is ready
(503 with "starting" or "stopping" otherwise), for container health checks and
test harnesses that wait for the hub:
  curl -fsS --cacert "$IOTCTL_CA_FILE" https://localhost:8443/health

--pprof-addr serves Go's runtime profiles (net/http/pprof, plain HTTP, no
authorization) on its own address, off by default, to see where the hub spends
its CPU and memory under load:
  go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=10

--metrics-addr serves Prometheus metrics on /metrics (iotctl_hub_*): connections
by protocol, devices connected, messages in, direct-method calls by result,
cloud-to-device messages enqueued, delivered and completed, and the queue
depths (C2D messages queued, telemetry events per partition).

File upload: with --storage-connection-string (an Azure Storage account's, or
Azurite's), devices upload files as to IoT Hub: POST /devices/{id}/files gets a
SAS URI for the blob {deviceId}/{name} in --storage-container (made if missing),
signed with the account key and valid --file-upload-sas-ttl; the device writes
the blob there itself and reports the outcome. With --file-upload-notifications
each success becomes a notification on /messages/serviceBound/filenotifications
("iotctl hub file-notifications"). Device SDKs reach blobs over https only: run
Azurite with --cert/--key (the hub's server.pem and server-key.pem next to its
CA file will do; the hub trusts its own CA when it reads a blob). Without a
storage account, upload requests are refused with 400014
DefaultStorageEndpointNotConfigured, as by IoT Hub.

Ctrl-C stops the hub cleanly.`,
		Example: `  $ iotctl hub serve
  $ iotctl hub serve --addr 127.0.0.1:0 --in-memory -o json
  $ iotctl hub serve --addr 127.0.0.5:8883 --standard-ports --san myhub.local
  $ iotctl hub serve --in-memory --addr 127.0.0.6:8883 --addr 127.0.0.7:8883
  $ iotctl hub serve --device-ca devices-root.pem --device-ca devices-intermediate.pem
  $ iotctl hub serve --consumer-group dashboards --consumer-group archive
  $ iotctl hub serve --in-memory --seed test/hub-seed.yaml
  $ iotctl hub serve --disable-local-auth --entra-jwks keys.json --entra-issuer https://sts.windows.net/TENANT/ \
      --entra-role 11111111-2222-3333-4444-555555555555="IoT Hub Data Contributor"
  $ iotctl hub serve --in-memory --metrics-addr 127.0.0.1:9464
  $ iotctl hub serve --storage-connection-string "$AZURE_STORAGE_CONNECTION_STRING" --file-upload-notifications`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.resolve(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.StringArray("addr", []string{hub.DefaultAddr}, "address of the TLS port that serves every protocol (port 0: any free port); repeatable: each further address serves every protocol too")
	fl.Bool("standard-ports", false, "also listen on 8883 (MQTT), 443 (HTTPS) and 5671 (AMQP) on the same host")
	fl.String("host-name", "", "host name to put in connection strings (default: the address's host and port)")
	fl.String("data-dir", hub.DefaultDataDir(), "directory for the registry, the telemetry and the TLS material")
	fl.Bool("in-memory", false, "keep no state: a throwaway registry and certificates, telemetry in memory")
	fl.String("cert", "", "server certificate (PEM) instead of the generated one")
	fl.String("key", "", "server key (PEM) for --cert")
	fl.StringSlice("san", nil, "extra DNS name or IP address for the generated server certificate (repeatable)")
	fl.StringSlice("device-ca", nil, "CA certificate file (PEM) that signs X.509 device certificates (repeatable)")
	fl.StringSlice("consumer-group", nil, "consumer group of the Event Hub-compatible endpoint besides $Default (repeatable)")
	fl.String("seed", "", "seed file (YAML or JSON) of devices, modules, policies and consumer groups, applied at every start")
	fl.Int("partitions", 4, "telemetry partitions")
	fl.Int("max-events", 0, "telemetry events kept for monitors; the oldest are dropped beyond it (0: 250,000 with --in-memory, no limit on disk)")
	fl.Int64("max-bytes", 0, "bytes of telemetry bodies and properties kept; the oldest are dropped beyond it (0: 512 MiB with --in-memory, 1,638,400,000 on disk)")
	fl.String("pprof-addr", "", "serve Go's profiles at http://ADDR/debug/pprof/ (plain HTTP, no authorization; keep it on loopback)")
	fl.Duration("retention", telemetry.DefaultRetention, "how long telemetry is kept (IoT Hub: 1 day by default, at most 7 days = 168h)")
	fl.Bool("disable-local-auth", false, "refuse shared access policy tokens on the service side (devices keep SAS and X.509)")
	fl.String("entra-jwks", "", "JSON Web Key Set file or URL whose keys sign the Microsoft Entra ID tokens to accept")
	fl.String("entra-issuer", "", "the iss of the Microsoft Entra ID tokens to accept (with --entra-jwks)")
	fl.StringSlice("entra-role", nil, "PRINCIPAL=ROLE: a data-plane role for a principal's tokens (repeatable)")
	fl.String("metrics-addr", "", "serve Prometheus metrics on http://HOST:PORT/metrics (e.g. :9090; default: none)")
	fl.String("storage-connection-string", "", "connection string of the storage account (or Azurite) that devices upload files to (default: none, file upload refused)")
	fl.String("storage-container", hub.DefaultFileUploadContainer, "blob container for file uploads")
	fl.Duration("file-upload-sas-ttl", hub.DefaultFileUploadSASTTL, "how long the SAS URIs handed to devices are valid (1m to 24h)")
	fl.Bool("file-upload-notifications", false, "queue a file upload notification for each successful upload (as IoT Hub, off by default)")
	fl.Duration("file-notification-ttl", registry.DefaultFileNotificationTTL, "how long a file upload notification waits to be received (1m to 48h)")
	fl.Duration("file-notification-lock-duration", registry.DefaultFileNotificationLock, "how long a received notification stays locked before it is delivered again (5s to 5m)")
	fl.Int("file-notification-max-delivery-count", registry.DefaultFileNotificationMaxDeliveries, "deliveries of a file upload notification before it is dropped (1 to 100)")
	return c
}

// serveEntra makes the Entra ID verifier of --entra-jwks,
// --entra-issuer and --entra-role; nil without --entra-jwks.
func serveEntra(v *viper.Viper) (*auth.Entra, error) {
	jwks, issuer, roles := v.GetString("entra-jwks"), v.GetString("entra-issuer"), v.GetStringSlice("entra-role")
	if jwks == "" {
		if issuer != "" || len(roles) > 0 {
			return nil, cmdutil.Usagef("--entra-issuer and --entra-role need --entra-jwks, the keys that sign the tokens")
		}
		return nil, nil
	}
	if issuer == "" {
		return nil, cmdutil.Usagef("--entra-jwks needs --entra-issuer, the iss of the tokens to accept (https://sts.windows.net/TENANT/ for Microsoft Entra ID)")
	}
	assigned, err := auth.ParseRoleAssignments(roles)
	if err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--entra-role: %w", err)}
	}
	e, err := auth.NewEntra(auth.EntraOptions{JWKS: jwks, Issuer: issuer, Roles: assigned})
	if err != nil {
		return nil, &cmdutil.UsageError{Err: fmt.Errorf("--entra-jwks: %w", err)}
	}
	return e, nil
}

// serveFileUpload makes the file upload settings of
// --storage-connection-string and the file upload flags, checked
// against the ranges IoT Hub allows
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-file-upload);
// nil without a storage connection string.
func serveFileUpload(v *viper.Viper) (*hub.FileUploadOptions, error) {
	cs := v.GetString("storage-connection-string")
	if cs == "" {
		return nil, nil
	}
	o := &hub.FileUploadOptions{
		StorageConnectionString:   cs,
		Container:                 v.GetString("storage-container"),
		SASTTL:                    v.GetDuration("file-upload-sas-ttl"),
		Notifications:             v.GetBool("file-upload-notifications"),
		NotificationTTL:           v.GetDuration("file-notification-ttl"),
		NotificationLock:          v.GetDuration("file-notification-lock-duration"),
		NotificationMaxDeliveries: v.GetInt("file-notification-max-delivery-count"),
	}
	switch {
	case o.SASTTL < time.Minute || o.SASTTL > hub.MaxFileUploadSASTTL:
		return nil, cmdutil.Usagef("--file-upload-sas-ttl %s: give a duration from 1m to 24h, as IoT Hub allows", o.SASTTL)
	case o.NotificationTTL < time.Minute || o.NotificationTTL > 48*time.Hour:
		return nil, cmdutil.Usagef("--file-notification-ttl %s: give a duration from 1m to 48h, as IoT Hub allows", o.NotificationTTL)
	case o.NotificationLock < 5*time.Second || o.NotificationLock > 5*time.Minute:
		return nil, cmdutil.Usagef("--file-notification-lock-duration %s: give a duration from 5s to 5m, as IoT Hub allows", o.NotificationLock)
	case o.NotificationMaxDeliveries < 1 || o.NotificationMaxDeliveries > 100:
		return nil, cmdutil.Usagef("--file-notification-max-delivery-count %d: give a number from 1 to 100, as IoT Hub allows", o.NotificationMaxDeliveries)
	}
	return o, nil
}

// resolve checks the flags (as the configuration sets them) and builds
// o.Hub; it reads the seed file and the Entra ID keys, and starts
// nothing.
func (o *serveOptions) resolve() error {
	v := o.f.V
	if (v.GetString("cert") == "") != (v.GetString("key") == "") {
		return cmdutil.Usagef("--cert and --key go together")
	}
	groups := v.GetStringSlice("consumer-group")
	for _, g := range groups {
		if err := amqpfront.ValidConsumerGroup(g); err != nil {
			return cmdutil.Usagef("--consumer-group: %v", err)
		}
	}
	var sd *seed.Seed
	if path := v.GetString("seed"); path != "" {
		var err error
		if sd, err = seed.Load(path); err != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--seed: %w", err)}
		}
	}
	retention := v.GetDuration("retention")
	if retention <= 0 || retention > telemetry.MaxRetention {
		return cmdutil.Usagef("--retention %s: give a duration from 1s to 168h (IoT Hub keeps telemetry 1 day by default, at most 7 days)", retention)
	}
	if v.GetInt("max-events") < 0 {
		return cmdutil.Usagef("--max-events %d: give a number of events, or 0 for the default", v.GetInt("max-events"))
	}
	if v.GetInt64("max-bytes") < 0 {
		return cmdutil.Usagef("--max-bytes %d: give a number of bytes, or 0 for the default", v.GetInt64("max-bytes"))
	}
	entra, err := serveEntra(v)
	if err != nil {
		return err
	}
	files, err := serveFileUpload(v)
	if err != nil {
		return err
	}
	addrs := v.GetStringSlice("addr")
	if len(addrs) == 0 {
		addrs = []string{hub.DefaultAddr}
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cmdutil.Usagef("--addr %q: want HOST:PORT, e.g. 127.0.0.1:8443 (port 0: any free port)", a)
		}
	}
	o.Hub = &hub.Options{
		Entra:            entra,
		DisableLocalAuth: v.GetBool("disable-local-auth"),
		Addr:             addrs[0],
		MoreAddrs:        addrs[1:],
		StandardPorts:    v.GetBool("standard-ports"),
		HostName:         v.GetString("host-name"),
		DataDir:          v.GetString("data-dir"),
		InMemory:         v.GetBool("in-memory"),
		CertFile:         v.GetString("cert"),
		KeyFile:          v.GetString("key"),
		SANs:             v.GetStringSlice("san"),
		DeviceCAFiles:    v.GetStringSlice("device-ca"),
		ConsumerGroups:   groups,
		Seed:             sd,
		Partitions:       v.GetInt("partitions"),
		MaxEvents:        v.GetInt("max-events"),
		MaxBytes:         v.GetInt64("max-bytes"),
		Retention:        retention,
		FileUpload:       files,
	}
	o.PprofAddr = v.GetString("pprof-addr")
	if addr := v.GetString("metrics-addr"); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return cmdutil.Usagef("--metrics-addr %q: want HOST:PORT, e.g. :9090 or 127.0.0.1:9090", addr)
		}
		o.MetricsAddr = addr
	}
	return nil
}

// serveRun starts the hub, prints how to reach it and serves until ctx
// is done (exit 130).
func serveRun(ctx context.Context, o *serveOptions) error {
	f, opts := o.f, o.Hub
	p, err := f.Printer()
	if err != nil {
		return err
	}
	log, err := f.Logger()
	if err != nil {
		return err
	}
	opts.Logger = log.With("component", "hub")
	var prof *profileServer
	if o.PprofAddr != "" {
		if prof, err = startProfileServer(o.PprofAddr); err != nil {
			return &cmdutil.UsageError{Err: fmt.Errorf("--pprof-addr %s: %w (give a free host:port, such as 127.0.0.1:6060)", o.PprofAddr, err)}
		}
		defer prof.close()
	}
	var metrics *metricsrv.Server
	if o.MetricsAddr != "" {
		reg := prometheus.NewRegistry()
		if metrics, err = metricsrv.Listen(o.MetricsAddr, reg); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metrics.Close()
		opts.Metrics = reg
	}
	h := hub.New(opts)
	if err := h.Start(ctx); err != nil {
		var ce *hub.DeviceCAError
		if errors.As(err, &ce) {
			return &cmdutil.UsageError{Err: fmt.Errorf("--device-ca: %w", err)}
		}
		var se *seed.Error
		if errors.As(err, &se) {
			return &cmdutil.UsageError{Err: fmt.Errorf("--seed: %w", err)}
		}
		var fe *hub.FileUploadConfigError
		if errors.As(err, &fe) {
			return &cmdutil.UsageError{Err: fmt.Errorf("--storage-connection-string: %w", fe.Err)}
		}
		var pe *telemetry.PartitionsError
		if errors.As(err, &pe) {
			return &cmdutil.UsageError{Err: fmt.Errorf("--partitions %d: %w", pe.Want, err)}
		}
		return err
	}
	defer h.Close()
	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		return err
	}
	eh, err := h.EventHubConnectionString("service")
	if err != nil {
		return err
	}
	dpsCS, err := h.DPSConnectionString()
	if err != nil {
		return err
	}
	info := serveInfo{HostName: h.HostName(), Addresses: h.Addrs(), CAFile: h.CAFile(), ConnectionString: cs, EventHub: eh,
		IDScope: h.DPS().IDScope(), DPS: dpsCS}
	if prof != nil {
		info.PprofAddress = prof.addr
	}
	if !opts.InMemory {
		info.DataDir = opts.DataDir
	}
	if metrics != nil {
		info.MetricsURL = metrics.URL()
	}
	exports := "export IOTCTL_CONNECTION_STRING=" + output.ShellQuote(cs) + "\nexport IOTCTL_CA_FILE=" + output.ShellQuote(info.CAFile) + "\n" +
		"export IOTCTL_DPS_ID_SCOPE=" + output.ShellQuote(info.IDScope) + "\nexport IOTCTL_DPS_CONNECTION_STRING=" + output.ShellQuote(dpsCS) + "\n"
	info.NextSteps = []string{
		"export IOTCTL_CONNECTION_STRING=" + output.ShellQuote(cs),
		"export IOTCTL_CA_FILE=" + output.ShellQuote(info.CAFile),
		"iotctl hub device create --device-id MyGoDevice",
		"iotctl device simulate --connection-string \"$(iotctl hub device show MyGoDevice --show-connection-string)\"",
		"iotctl method invoke --device-id MyGoDevice --name SetTelemetryInterval --payload 10",
	}
	if opts.DisableLocalAuth {
		// The connection string is refused on the service side: the
		// commands of the next steps sign in with Entra ID instead, and
		// find the hub by the connection string's HostName.
		info.LocalAuthDisabled = true
		exports += "export IOTCTL_AUTH_TYPE=login\n"
		info.NextSteps = slices.Insert(info.NextSteps, 2, "export IOTCTL_AUTH_TYPE=login")
	}
	if !opts.InMemory {
		// The exports, for `. <data-dir>/env.sh` in other terminals.
		info.EnvFile = filepath.Join(opts.DataDir, EnvFile)
		if err := os.WriteFile(info.EnvFile, []byte(exports), 0o600); err != nil {
			return fmt.Errorf("hub: writing %s: %w", info.EnvFile, err)
		}
		// One line for the exports.
		n := 2
		if opts.DisableLocalAuth {
			n = 3
		}
		info.NextSteps = append([]string{". " + output.ShellQuote(info.EnvFile)}, info.NextSteps[n:]...)
	}
	if p.Format == output.FormatTable {
		var b strings.Builder
		fmt.Fprintf(&b, "IoT hub listening on %s\n", strings.Join(info.Addresses, ", "))
		fmt.Fprintf(&b, "Host name:          %s\n", info.HostName)
		if info.CAFile != "" {
			fmt.Fprintf(&b, "CA certificate:     %s\n", info.CAFile)
		}
		if info.DataDir != "" {
			fmt.Fprintf(&b, "Data directory:     %s\n", info.DataDir)
		}
		fmt.Fprintf(&b, "Connection string:  %s\n", cs)
		if info.LocalAuthDisabled {
			fmt.Fprintf(&b, "Local auth:         disabled: the service side refuses this connection string's key; sign in with --auth-type login\n")
		}
		fmt.Fprintf(&b, "Event Hub-compatible endpoint: %s\n", eh)
		fmt.Fprintf(&b, "DPS ID scope:       %s\n", info.IDScope)
		if info.MetricsURL != "" {
			fmt.Fprintf(&b, "Prometheus metrics: %s\n", info.MetricsURL)
		}
		if info.PprofAddress != "" {
			fmt.Fprintf(&b, "Profiles:           http://%s/debug/pprof/\n", info.PprofAddress)
		}
		fmt.Fprintf(&b, "DPS connection string: %s\n\nNext, in another terminal:\n", dpsCS)
		for _, s := range info.NextSteps {
			fmt.Fprintf(&b, "  %s\n", s)
		}
		fmt.Fprintf(&b, "\nPress Ctrl-C to stop.\n")
		if _, err := f.IO.Out.Write([]byte(b.String())); err != nil {
			return err
		}
	} else if err := p.Print(info, nil); err != nil {
		return err
	}
	<-ctx.Done()
	if err := h.Close(); err != nil {
		return fmt.Errorf("hub: closing: %w", err)
	}
	return &cmdutil.ExitError{Code: cmdutil.ExitInterrupted}
}
