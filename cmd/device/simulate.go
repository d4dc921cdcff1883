package device

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/simulate"
)

type simulateOptions struct {
	f *cmdutil.Factory

	connStr         string
	interval        time.Duration
	count           int
	duration        time.Duration
	data            string
	dataSet         bool
	dataFile        string
	properties      []string
	contentType     string
	contentEncoding string
	qos             string
	c2dSettle       string
	methods         []string
	reported        string
	devices         int
	devicesSet      bool
	connectRateSet  bool
	prefix          string
	keysFile        string
	deviceCA        string
	deviceCAKey     string
	connectRate     float64
	maxConnecting   int
	perConnection   int
	telemetryOnly   bool
	sourceAddrs     []string
	rate            float64
	printMessages   bool
	quiet           bool
	statsInterval   time.Duration
	conn            connectFlags
	dps             dpsFlags
	shards          shardFlags
	metrics         metricsFlags
	k8s             k8sFlags

	// Filled by validation.
	sim *simulate.Options
}

func newCmdSimulate(f *cmdutil.Factory, runF func(*simulateOptions) error) *cobra.Command {
	o := &simulateOptions{f: f}
	c := &cobra.Command{
		Use:   "simulate",
		Short: "Simulate one device or a fleet: telemetry, direct methods, twin, C2D",
		Long: `Simulate a device, or a fleet of them, until --count, --duration or Ctrl-C.

By default the device behaves as the Azure IoT Hub quickstart's simulated device:
every second it sends {"temperature": t,"humidity": h} (t from 20 to 35, h from 60
to 80) with content type application/json, encoding utf-8 and the application
property temperatureAlert ("true" when t > 30). The direct method
SetTelemetryInterval with a number of seconds (10 or "10") changes the interval at
once and answers 200 {"Response": "Executed direct method SetTelemetryInterval"};
a bad value answers 400 {"Response": "Invalid parameter"}; any other method 404
{"Response": "Direct method NAME not defined"}. --method adds fixed replies.
Desired property changes are echoed into the reported properties; C2D messages
are printed, then completed, or rejected or abandoned with --c2d-settle (AMQP
and HTTPS only: over MQTT IoT Hub completes every message the device
acknowledges). Over --transport https there are no methods and no twin.

--data or --data-file replace the body with a template.
` + simulate.TemplateHelp + `

A fleet (--devices N) uses ids {prefix}00001... Their keys come from --keys-file
(lines "deviceId key", or a JSON object {"deviceId": "key"}) or, with
--hub-connection-string (a service policy string; also IOTCTL_HUB_CONNECTION_STRING),
from the hub's registry, creating the devices that do not exist. With
--keys-file and no --devices every device in the file is simulated. With
--device-ca (a CA certificate and its key, --device-ca-key) the fleet uses X.509
instead: each device connects with a certificate signed for it by that CA (CN =
its id, valid 30 days), and --hub-connection-string creates the missing devices
with certificateAuthority authentication. The hub must trust the CA (iotctl hub
serve --device-ca; on Azure IoT Hub, an uploaded and verified CA certificate). The
hub's host comes from --host, else --hub-connection-string, else the device
connection string. Against Azure IoT Hub the fleet connects 100 devices a second
by default (its connection throttle), shared by its shards; against other hubs
as fast as it can (--connect-rate).

Large fleets on one machine: --max-connecting (default 256) bounds the devices
in their TLS handshake at once, so the fleet's peak memory stays near its steady
state; a fleet runs the Go collector at GOGC=25 unless GOGC is set (GOMEMLIMIT
applies too). An MQTT device's message that waits for the hub's acknowledgement
holds no goroutine: the acknowledgement schedules the next one. Each device holds
a connection, an open file: a fleet larger than
the open-files limit (ulimit -n) is refused before it starts, naming the limit to
set. One source address reaches one hub address with about 28,000 connections
(the ephemeral ports): --source-addr 127.0.0.2-127.0.0.9 (or repeated) spreads
the devices over several local addresses, as emqtt-bench's --ifaddr. An AMQP
fleet shares its connections: --devices-per-connection (default 100, at most
995; 1 for a connection each) devices on each, every one with its own token, as
gateways and the C# SDK's connection pool do, and their links on sessions they
share (100 devices a session, as the C SDK puts every device on one); a device
whose token is refused loses its own links only, and a lost connection
reconnects all of its devices. MQTT and HTTPS devices have a
connection each, and so do X.509 devices (the certificate is the connection's).
Shared AMQP connections run on a lean AMQP engine with no goroutine or queue
per device or link: about 10 KB a device that takes methods, C2D and twin at
10,000 devices. --telemetry-only devices only send: no methods, C2D or twin;
over AMQP they attach their telemetry link alone (about 4 KB a device at
100,000).

Beyond one machine: --shards N --shard-index I makes this process simulate only
slice I (0 to N-1) of the fleet; N processes with the same flags and every index
simulate the whole fleet, each device once. The index defaults to
$JOB_COMPLETION_INDEX, which Kubernetes sets in the pods of an Indexed Job.
--k8s-job prints such a Job instead of running (kubectl apply -f -): N pods
running this command, the connection string from the Secret --k8s-secret
(its keys become the pods' environment), the image --image, memory sized for a
shard, and metrics on port 9090 (or --metrics-addr's). --metrics-addr serves
Prometheus metrics on /metrics: devices connected, messages sent and
acknowledged, errors by kind, reconnects, method calls, acknowledgement latency,
labelled with the fleet (the device prefix) and the shard.

What it prints. One device: each message, method call, twin change and C2D
message as one line that starts with its time. A fleet on a terminal: one status
line on stderr, redrawn in place (devices connected, msg/s, messages
acknowledged, errors, reconnects, time), a progress bar while the devices
connect, and above them the method calls, desired-property changes, C2D messages
and the first errors; each message only with --print-messages. With -o json, or
for a fleet whose stdout is not a terminal, every event is one JSON object per
line on stdout with a "type" field (connected, sent, method, twin, c2d,
disconnected, reconnecting, error, stats, summary; types and fields are only ever
added), a fleet's stats every --stats-interval; the status line still shows on
stderr when that is a terminal. --quiet prints only the summary. A lost
connection is retried with back-off. Ctrl-C stops sending,
disconnects, prints the summary and exits 130. Credentials the hub refuses exit 4.

` + connectHelp + `
--cert and --device-id are for one device; a fleet's certificates come from
--device-ca.

` + simulateDPSHelp,
		Example: `  $ iotctl device simulate --connection-string "$DEVICE_CS" --ca-file ~/.local/share/iotctl/hub/tls/ca.pem
  $ iotctl device simulate --count 10 --interval 500ms -o json
  $ iotctl device simulate --data '{"n":{{counter}},"t":{{randFloat 20 35 | printf "%.1f"}},"at":"{{now}}"}'
  $ iotctl device simulate --method reboot=200:'{"rebooting":true}' --reported '{"firmware":"1.0"}'
  $ iotctl device simulate --devices 100 --hub-connection-string "$SERVICE_CS" --connect-rate 50 --duration 1m
  $ iotctl device simulate --devices 1000 --hub-connection-string "$SERVICE_CS" | jq -c 'select(.type=="stats") | .stats'
  $ iotctl device simulate --devices 100 --interval 1m --hub-connection-string "$SERVICE_CS" --source-addr 127.0.0.2-127.0.0.5 --duration 10s
  $ iotctl device simulate --devices 1000 --hub-connection-string "$SERVICE_CS" --device-ca fleet-ca.pem --device-ca-key fleet-ca-key.pem
  $ iotctl device simulate --devices 100 --hub-connection-string "$SERVICE_CS" --shards 4 --shard-index 0 --metrics-addr 127.0.0.1:9090
  $ iotctl device simulate --devices 100000 --shards 20 --interval 1m --hub-connection-string "$SERVICE_CS" --k8s-job --image registry.example/iotctl:1 --k8s-secret iotctl-fleet > fleet-job.yaml
  $ HTTPS_PROXY=http://proxy.corp:3128 iotctl device simulate --websocket
  $ iotctl device simulate --transport amqp --c2d-settle abandon --count 5
  $ iotctl device simulate --transport amqp --devices 1000 --devices-per-connection 500 --interval 1m --hub-connection-string "$SERVICE_CS" --duration 10s
  $ iotctl device simulate --transport amqp --devices 1000 --telemetry-only --interval 1m --hub-connection-string "$SERVICE_CS" --duration 10s
  $ iotctl device simulate --transport https --c2d-settle reject --count 5
  $ iotctl device simulate --host localhost:8443 --device-id cam1 --cert cam1.pem --key cam1-key.pem
  $ iotctl device simulate --devices 10 --count 3 --dps-id-scope 0ne00111111 --dps-group-key "$GROUP_KEY"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.dataSet = cmd.Flags().Changed("data")
			o.devicesSet = cmd.Flags().Changed("devices")
			o.connectRateSet = cmd.Flags().Changed("connect-rate")
			o.shards.indexSet = cmd.Flags().Changed("shard-index")
			if err := o.validate(); err != nil {
				return exitError(err)
			}
			if runF != nil {
				return runF(o)
			}
			if o.k8s.job {
				return o.printJob(cmd.Flags(), cmd.InheritedFlags(), o.f.IO.Out, o.f.IO.ErrOut)
			}
			return o.run(cmd.Context())
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.connStr, cmdutil.KeyConnectionString, "", "device or module connection string (default $IOTCTL_DEVICE_CONNECTION_STRING)")
	fl.DurationVar(&o.interval, "interval", simulate.DefaultInterval, "time between a device's messages")
	fl.IntVar(&o.count, "count", 0, "messages per device, then stop (0: no limit)")
	fl.DurationVar(&o.duration, "duration", 0, "stop after this long (0: no limit)")
	fl.StringVar(&o.data, "data", "", "message body template (default: the quickstart's temperature and humidity)")
	fl.StringVar(&o.dataFile, "data-file", "", "read the body template from a file ('-' for stdin)")
	fl.StringArrayVar(&o.properties, "property", nil, "application property NAME=VALUE (repeatable)")
	fl.StringVar(&o.contentType, "content-type", simulate.DefaultContentType, "content type ($.ct); '-' for none")
	fl.StringVar(&o.contentEncoding, "content-encoding", simulate.DefaultContentEncoding, "content encoding ($.ce); '-' for none")
	fl.StringVar(&o.qos, "qos", "1", "telemetry QoS: 0 or 1 (MQTT; AMQP and HTTPS always wait for the hub)")
	fl.StringVar(&o.c2dSettle, "c2d-settle", "complete", "what to do with each C2D message: complete, reject or abandon (amqp and https; MQTT completes only)")
	fl.StringArrayVar(&o.methods, "method", nil, "fixed direct-method reply NAME=STATUS[:JSON] (repeatable)")
	fl.StringVar(&o.reported, "reported", "", "JSON object to report as reported properties after connecting")
	fl.String(cmdutil.KeyCAFile, "", "PEM file of the CA to trust, e.g. the local hub's (default: system roots)")
	fl.IntVar(&o.devices, "devices", 1, "number of devices in the fleet")
	fl.StringVar(&o.prefix, "device-prefix", "sim-", "device id prefix of the fleet")
	fl.String("hub-connection-string", "", "service connection string, to create fleet devices and fetch their keys")
	fl.StringVar(&o.keysFile, "keys-file", "", "fleet keys: lines \"deviceId key\" or a JSON object {\"deviceId\": \"key\"}")
	fl.StringVar(&o.deviceCA, "device-ca", "", "fleet of X.509 devices: CA certificate (PEM) that signs each device's certificate (CN = device id)")
	fl.StringVar(&o.deviceCAKey, "device-ca-key", "", "private key (PEM) of --device-ca (default: in the --device-ca file)")
	fl.Float64Var(&o.connectRate, "connect-rate", 0, "fleet connections per second, 0 for no limit (default: 100 against Azure IoT Hub, its connection throttle; no limit against other hubs)")
	fl.IntVar(&o.maxConnecting, "max-connecting", simulate.DefaultMaxConnecting, "fleet devices connecting at once (TLS handshake, CONNECT, SUBSCRIBE): bounds the fleet's peak memory")
	fl.IntVar(&o.perConnection, "devices-per-connection", 0, fmt.Sprintf("AMQP fleet devices that share one connection, each with its own token (0: %d for amqp; 1: a connection each; at most %d; mqtt and https: 1 only)",
		simulate.DefaultAMQPDevicesPerConnection, device.MaxDevicesPerAMQPConnection))
	fl.BoolVar(&o.telemetryOnly, "telemetry-only", false, "devices only send telemetry: no direct methods, C2D or twin (over AMQP they then attach their telemetry link alone, the least memory)")
	fl.StringArrayVar(&o.sourceAddrs, "source-addr", nil, "local address a fleet's connections come from, or a range FIRST-LAST (repeatable; devices take them in turn; about 28,000 connections per address and hub address)")
	fl.Float64Var(&o.rate, "rate", 0, "fleet messages per second in total (0: each device every --interval)")
	fl.BoolVar(&o.printMessages, "print-messages", false, "on a terminal, print each message a fleet sends (one device's are always printed)")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but the final summary: no messages, events or status line")
	fl.DurationVar(&o.statsInterval, "stats-interval", defaultStatsInterval, "time between a fleet's stats events (JSON Lines) or stats lines")
	o.conn.add(fl)
	o.dps.add(fl)
	o.shards.add(fl)
	o.metrics.add(fl)
	o.k8s.add(fl)
	return c
}

// validate checks the flags (check), then resolves them into o.sim
// (resolve); it does no network I/O.
func (o *simulateOptions) validate() error {
	if err := o.check(); err != nil {
		return err
	}
	return o.resolve()
}

// fleet is true when the flags ask for a fleet rather than one device.
func (o *simulateOptions) fleet() bool { return o.devicesSet || o.keysFile != "" }

// check refuses flag values and combinations that are wrong whatever
// the configuration and the files say; it reads no file and no input.
func (o *simulateOptions) check() error {
	if o.interval <= 0 {
		return cmdutil.Usagef("--interval must be positive")
	}
	if err := o.metrics.validate(); err != nil {
		return err
	}
	if err := o.k8s.validate(o.shards.indexSet); err != nil {
		return err
	}
	if o.statsInterval <= 0 {
		return cmdutil.Usagef("--stats-interval must be positive, e.g. 5s")
	}
	if o.count < 0 || o.duration < 0 || o.connectRate < 0 || o.rate < 0 {
		return cmdutil.Usagef("--count, --duration, --connect-rate and --rate must not be negative")
	}
	if o.maxConnecting < 0 {
		return cmdutil.Usagef("--max-connecting must not be negative (0: the default, %d)", simulate.DefaultMaxConnecting)
	}
	if _, err := simulate.ParseSourceAddrs(o.sourceAddrs); err != nil {
		return cmdutil.Usagef("--source-addr: %v", err)
	}
	if o.devicesSet && o.devices < 1 {
		return cmdutil.Usagef("--devices must be at least 1")
	}
	if _, err := device.ParseQoS(o.qos); err != nil {
		return cmdutil.Usagef("--qos %q: use 0 or 1", o.qos)
	}
	if _, err := parseProperties(o.properties); err != nil {
		return err
	}
	if err := o.checkTransport(); err != nil {
		return err
	}
	for _, m := range o.methods {
		if _, err := simulate.ParseMethodReply(m); err != nil {
			return err
		}
	}
	if o.reported != "" {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(o.reported), &obj); err != nil {
			return cmdutil.Usagef("--reported: not a JSON object: %v", err)
		}
	}
	if o.k8s.job && !o.fleet() {
		return cmdutil.Usagef("--k8s-job runs a fleet in pods: give --devices N (or --keys-file) too")
	}
	if o.deviceCA != "" && !o.devicesSet {
		return cmdutil.Usagef("--device-ca is for a fleet: give --devices N too")
	}
	if o.deviceCAKey != "" && o.deviceCA == "" {
		return cmdutil.Usagef("--device-ca-key needs --device-ca")
	}
	if !o.fleet() {
		return nil
	}
	if o.conn.certFile != "" || o.conn.deviceID != "" {
		return cmdutil.Usagef("a fleet (--devices, --keys-file) has its own identities: --cert and --device-id are for one device (--device-ca signs a certificate for each fleet device)")
	}
	if o.deviceCA != "" && o.keysFile != "" {
		return cmdutil.Usagef("--device-ca and --keys-file: a fleet authenticates with certificates or with keys, not both")
	}
	return nil
}

// checkTransport refuses what the transport cannot do: settling C2D
// other than by completing over MQTT, methods and twin over HTTPS.
func (o *simulateOptions) checkTransport() error {
	tr, err := device.ParseTransport(o.conn.transportName)
	if err != nil {
		return cmdutil.Usagef("--transport %q: use mqtt, amqp or https", o.conn.transportName)
	}
	settle, err := device.ParseSettle(o.c2dSettle)
	if err != nil {
		return cmdutil.Usagef("--c2d-settle %q: use complete, reject or abandon", o.c2dSettle)
	}
	if o.telemetryOnly && (len(o.methods) > 0 || o.reported != "") {
		return cmdutil.Usagef("--telemetry-only devices answer no method and report nothing: leave out --method and --reported, or --telemetry-only")
	}
	switch per := o.perConnection; {
	case per < 0 || per > device.MaxDevicesPerAMQPConnection:
		return cmdutil.Usagef("--devices-per-connection %d: use 1 to %d (IoT Hub takes at most %d devices on an AMQP connection), or 0 for the default",
			per, device.MaxDevicesPerAMQPConnection, device.MaxDevicesPerAMQPConnection)
	case per > 1 && tr != device.TransportAMQP:
		return cmdutil.Usagef("--devices-per-connection %d needs --transport amqp: over %s each device has a connection of its own", per, tr)
	case per > 1 && !o.fleet():
		return cmdutil.Usagef("--devices-per-connection %d is for a fleet: give --devices N (or --keys-file) too", per)
	case per > 1 && o.deviceCA != "":
		return cmdutil.Usagef("--devices-per-connection %d and --device-ca: an X.509 device authenticates in its own connection's TLS handshake, so it cannot share one; leave --devices-per-connection out", per)
	}
	switch {
	case tr == device.TransportMQTT && settle != device.SettleComplete:
		return cmdutil.Usagef("--c2d-settle %s needs --transport amqp or https: over MQTT IoT Hub completes every C2D message the device acknowledges", settle)
	case tr == device.TransportHTTPS && (len(o.methods) > 0 || o.reported != ""):
		return cmdutil.Usagef("--method and --reported need direct methods and the twin, which IoT Hub does not offer over HTTPS: use --transport mqtt or amqp")
	}
	return nil
}

// resolve builds o.sim from checked flags, the configuration and the
// files they name (body template, CA, keys file).
func (o *simulateOptions) resolve() error {
	if err := o.shards.resolve(o.fleet(), o.k8s.job); err != nil {
		return err
	}
	s, err := o.messageOptions()
	if err != nil {
		return err
	}
	if o.dps.set() {
		// A fleet through DPS: its identities and hubs come from DPS.
		return o.validateDPS(s)
	}
	if !o.fleet() {
		if err := o.conn.options(o.f, o.connStr, &s.Device); err != nil {
			return err
		}
		o.sim = s
		return nil
	}
	if err := o.resolveFleet(s); err != nil {
		return err
	}
	o.sim = s
	return nil
}

// messageOptions are what every simulated device sends and answers:
// the simulate.Options of the message and behaviour flags.
func (o *simulateOptions) messageOptions() (*simulate.Options, error) {
	qos, _ := device.ParseQoS(o.qos)             // checked
	props, _ := parseProperties(o.properties)    // checked
	settle, _ := device.ParseSettle(o.c2dSettle) // checked
	s := &simulate.Options{
		Interval: o.interval, Count: o.count, Duration: o.duration, Properties: props,
		ContentType: o.contentType, ContentEncoding: o.contentEncoding,
		ConnectRate: o.connectRate, Rate: o.rate, MaxConnecting: o.maxConnecting, DevicesPerConnection: o.perConnection,
		TelemetryOnly: o.telemetryOnly,
		Device:        device.Options{QoS: qos, C2DSettle: settle},
	}
	addrs, _ := simulate.ParseSourceAddrs(o.sourceAddrs) // checked
	if len(addrs) == 1 {
		s.Device.SourceAddr = addrs[0]
	} else {
		s.SourceAddrs = addrs
	}
	if s.ContentType == "" {
		s.ContentType = "-"
	}
	if s.ContentEncoding == "" {
		s.ContentEncoding = "-"
	}
	text, hasTemplate, err := readData(o.f.IO.In, o.data, o.dataFile, o.dataSet)
	if err != nil {
		return nil, err
	}
	if hasTemplate {
		if s.Template, err = simulate.ParseTemplate(text); err != nil {
			return nil, err
		}
	}
	for _, m := range o.methods {
		r, _ := simulate.ParseMethodReply(m) // checked
		s.Methods = append(s.Methods, r)
	}
	if o.reported != "" {
		s.Reported = json.RawMessage(o.reported)
	}
	return s, nil
}

// resolveFleet fills in a fleet's certificate issuer, transport, hub
// host, connection rate, device ids and source of credentials.
func (o *simulateOptions) resolveFleet(s *simulate.Options) error {
	if o.deviceCA != "" {
		issuer, err := loadIssuer("--device-ca", o.deviceCA, o.deviceCAKey)
		if err != nil {
			return err
		}
		s.Issuer = issuer
	}
	// The fleet shares the transport flags; identities come below.
	if err := o.conn.transport(o.f, &s.Device); err != nil {
		return err
	}
	svc, err := o.fleetHost(s)
	if err != nil {
		return err
	}
	if !o.connectRateSet && connstr.IsAzureHost(s.Device.HostName) {
		// The hub's throttle is the fleet's, shared by its shards.
		s.ConnectRate = simulate.AzureConnectRate / float64(o.shards.count)
	}
	return o.fleetIdentities(s, svc)
}

// fleetHost sets the fleet's hub host from --host, else
// --hub-connection-string, else a device connection string, and
// returns the parsed --hub-connection-string (nil without one).
func (o *simulateOptions) fleetHost(s *simulate.Options) (*connstr.ConnectionString, error) {
	var devCS *connstr.ConnectionString
	if o.connStr != "" || o.f.V.GetString(cmdutil.KeyDeviceConnectionString) != "" {
		var err error
		devCS, err = o.f.DeviceConnectionString(o.connStr)
		if err != nil && o.connStr != "" {
			return nil, err
		}
	}
	var svc *connstr.ConnectionString
	if hubCS := o.f.V.GetString("hub-connection-string"); hubCS != "" {
		var err error
		if svc, err = connstr.Parse(hubCS); err != nil {
			return nil, err
		}
		if err := svc.Require(connstr.KindService); err != nil {
			return nil, cmdutil.Usagef("--hub-connection-string: %v", err)
		}
		s.Device.HostName = svc.HostName
	} else if devCS != nil {
		s.Device.HostName, s.Device.GatewayHostName = devCS.HostName, devCS.GatewayHostName
	} else if o.conn.host == "" {
		return nil, cmdutil.Usagef("a fleet needs the hub's host name: pass --hub-connection-string (a service policy string), --connection-string (any device string of the hub) or --host")
	}
	if o.conn.host != "" {
		s.Device.HostName = o.conn.host
	}
	return svc, nil
}

// fleetIdentities sets the fleet's device ids and where their
// credentials come from: certificates signed by --device-ca, the keys
// file, or the hub's registry through svc.
func (o *simulateOptions) fleetIdentities(s *simulate.Options, svc *connstr.ConnectionString) error {
	var reg *serviceRegistry
	var err error
	if svc != nil && o.keysFile == "" {
		sopts, err := o.f.ServiceOptions()
		if err != nil {
			return err
		}
		if reg, err = newServiceRegistry(svc, sopts); err != nil {
			return err
		}
	}
	switch {
	case s.Issuer != nil:
		s.DeviceIDs, err = o.shards.fleetIDs(o.prefix, o.devices)
		if reg != nil {
			s.Keys = reg // creates the devices as certificateAuthority ones
		}
	case o.keysFile != "":
		fh, err := os.Open(o.keysFile)
		if err != nil {
			return cmdutil.Usagef("--keys-file: %v", err)
		}
		keys, err := simulate.ReadKeys(fh)
		fh.Close()
		if err != nil {
			return err
		}
		s.Keys = keys
		if o.devicesSet {
			s.DeviceIDs, err = o.shards.fleetIDs(o.prefix, o.devices)
		} else {
			s.DeviceIDs, err = o.shards.of(keys.IDs())
		}
		if err != nil {
			return err
		}
	case reg != nil:
		s.Keys = reg
		s.DeviceIDs, err = o.shards.fleetIDs(o.prefix, o.devices)
	default:
		return cmdutil.Usagef("a fleet needs device credentials: pass --keys-file, --hub-connection-string to create SAS devices, or --device-ca to sign a certificate for each device")
	}
	return err
}

func (o *simulateOptions) run(ctx context.Context) error {
	format, err := o.f.Output(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	logger, err := o.f.Logger()
	if err != nil {
		return err
	}
	s := o.sim
	s.Device.Logger = logger
	s.Logger = logger
	fleet := len(s.DeviceIDs) > 0
	io := o.f.IO
	d := chooseDisplay(format, io, fleet, o.printMessages, o.quiet)
	p := newPrinter(io, d, fleet)
	s.Sink = p.print
	if fleet && (d.json && !d.quiet || d.statsLines) {
		s.StatsInterval = o.statsInterval
	}
	sim, err := simulate.New(s)
	if err != nil {
		return err
	}
	if fleet {
		defer fleetGC(os.Getenv)()
	}
	msrv, err := o.metrics.serve(sim, fleet, o.prefix, o.shards.shard)
	if err != nil {
		return err
	}
	if msrv != nil {
		defer msrv.Close()
	}
	if !d.json && !d.quiet {
		p.status("IoT Hub device simulator: %d device(s), press Ctrl-C to exit", sim.Devices())
	}
	if msrv != nil && !d.quiet {
		p.status("Prometheus metrics on %s", msrv.URL())
	}
	if d.live {
		l, err := newLiveStatus(io.ErrOut, sim.Devices(), sim.Stats)
		if err != nil {
			return err
		}
		p.setLive(l)
	}
	_, err = sim.Run(ctx)
	p.stopLive() // if Run ended without its summary
	if ctx.Err() != nil {
		return &cmdutil.ExitError{Code: cmdutil.ExitInterrupted}
	}
	return o.conn.exitError(dpsExitError(err))
}

// FleetGOGC is the garbage collector's target (GOGC) a fleet runs with
// unless the environment sets GOGC: memory is what limits a fleet, and
// an idle device makes little garbage, so collecting when the heap has
// grown by a quarter rather than doubled costs little CPU and saves
// about a quarter of the memory per device (see bench/fleet).
// GOMEMLIMIT applies either way.
const FleetGOGC = 25

// fleetGC sets the collector's target for a fleet, FleetGOGC unless
// GOGC is in the environment; the function it returns restores the
// previous target.
func fleetGC(getenv func(string) string) (restore func()) {
	if getenv("GOGC") != "" {
		return func() {}
	}
	prev := debug.SetGCPercent(FleetGOGC)
	return func() { debug.SetGCPercent(prev) }
}

// defaultStatsInterval is the time between a fleet's stats events.
const defaultStatsInterval = 5 * time.Second
