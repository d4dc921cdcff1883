package simulate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/devicecert"
	"github.com/iotctl/iotctl/pkg/message"
)

// Defaults of Options.
const (
	// DefaultInterval is the quickstart's telemetry interval.
	DefaultInterval = time.Second
	// DefaultContentType and DefaultContentEncoding are the system
	// properties of every message unless set otherwise.
	DefaultContentType     = "application/json"
	DefaultContentEncoding = "utf-8"
	// AzureConnectRate is the fleet's default connections per second
	// against Azure IoT Hub: its connection throttle on an S1 hub
	// (the higher of 100/s and 12/s per unit).
	AzureConnectRate = 100
	// DefaultMaxConnecting is Options.MaxConnecting's default: enough
	// handshakes in flight to keep the cores busy while the network
	// answers, few enough that their state is small next to the
	// fleet's.
	DefaultMaxConnecting = 256
	// closeTimeout bounds each device's clean disconnect at the end.
	closeTimeout = 5 * time.Second
)

// Options configure a simulation. A nil *Options is not valid: Device
// must name the hub.
type Options struct {
	// Device is the client configuration every simulated device starts
	// from: the hub (HostName or ConnectionString), CA, keep-alive, QoS,
	// token TTL, logger. For a single device (DeviceIDs empty) it is
	// that device's identity. For a fleet, HostName (and optionally
	// GatewayHostName) must be set and the simulation fills in DeviceID
	// and SharedAccessKey per device; any ConnectionString is ignored.
	// OnState is set by the simulation.
	Device device.Options

	// DeviceIDs are the fleet's device ids (see FleetIDs). Empty means
	// the single device in Device.
	DeviceIDs []string
	// Keys gives each fleet device its key. Required with DeviceIDs
	// unless Issuer is set.
	Keys Registry
	// Issuer, if set, makes the fleet authenticate with X.509: each
	// device connects with a certificate Issuer signs for it (CN = the
	// device id, see devicecert.Issue), valid from a minute ago for
	// CertValidity or until Issuer expires. The hub must trust Issuer
	// (hub serve --device-ca; on Azure, a verified CA certificate) and
	// the devices must have certificateAuthority authentication: when
	// Keys implements CARegistry, missing devices are created so.
	Issuer *tls.Certificate

	// Provision, if set, makes the fleet register each device with DPS
	// before it connects to the hub DPS assigned it (see Provisioning);
	// Keys and Device.HostName are then not needed.
	Provision *Provisioning

	// Interval is the time between a device's messages.
	// Default: DefaultInterval (1 s). SetTelemetryInterval changes it
	// per device.
	Interval time.Duration
	// Count is how many messages each device sends; 0 means no limit.
	Count int
	// Duration ends the simulation after this long; 0 means no limit.
	Duration time.Duration
	// Template makes the message bodies; nil sends the quickstart's
	// {"temperature": t,"humidity": h} with its temperatureAlert
	// property.
	Template *Template
	// Properties are application properties added to every message.
	Properties map[string]string
	// ContentType and ContentEncoding are $.ct and $.ce.
	// Default: DefaultContentType and DefaultContentEncoding. Set them
	// to "-" to leave them out.
	ContentType, ContentEncoding string
	// Methods are fixed replies; one named SetTelemetryInterval
	// replaces the built-in handler. Methods neither handles are
	// answered 404 {"Response": "Direct method NAME not defined"}.
	Methods []MethodReply
	// Reported, if set, is a JSON object each device reports after it
	// connects.
	Reported json.RawMessage
	// NoEcho turns off echoing desired changes into reported properties.
	NoEcho bool
	// TelemetryOnly makes the devices only send telemetry: they answer
	// no direct method, take no C2D message and neither read nor echo
	// the twin. An AMQP device then attaches its telemetry link only
	// (device.NewAMQPSharedTelemetry). It cannot go with Methods or
	// Reported.
	TelemetryOnly bool
	// ConnectRate limits new connections per second across the fleet;
	// 0 means no limit.
	ConnectRate float64
	// MaxConnecting bounds the devices that are getting their
	// credentials, dialling, in the TLS handshake or subscribing at
	// once: the handshakes' buffers and the goroutine stacks they grow
	// exist for that many devices, not for the whole fleet, which
	// keeps the fleet's peak memory near its steady state. The
	// handshakes use the CPU either way, so a few per core keep it
	// busy. Default: DefaultMaxConnecting.
	MaxConnecting int
	// SourceAddrs, if set, are the local addresses the fleet's
	// connections come from, device i from SourceAddrs[i mod n] (see
	// device.Options.SourceAddr and ParseSourceAddrs): one address
	// gives about 28,000 connections to one hub address. Default: the
	// system's choice.
	SourceAddrs []netip.Addr
	// DevicesPerConnection is how many devices of an AMQP fleet share
	// one connection, each with its own token and links on sessions
	// they share (see device.AMQPShared): 1 gives every device a
	// connection of its own.
	// Default: DefaultAMQPDevicesPerConnection for an AMQP fleet that
	// authenticates with keys; 1 for a single device, a certificate
	// fleet (a certificate is its connection's) and MQTT and HTTPS,
	// where more than 1 is an error.
	DevicesPerConnection int
	// Rate limits messages per second across the fleet; 0 means each
	// device sends every Interval.
	Rate float64
	// StatsInterval, if positive, emits an EventStats this often.
	StatsInterval time.Duration
	// Sink receives every event, from many goroutines at once; it must
	// be safe for concurrent use and quick (an MQTT device's EventSent
	// comes from its connection's reader, which reads nothing else
	// meanwhile). Default: none.
	Sink func(Event)
	// Logger gets debug logs. Default: Device.Logger, or discard.
	Logger *slog.Logger
}

// Conn is what a simulated device needs from its client; every
// device.Conn (MQTT, AMQP, HTTPS) implements it. A Conn that is also an
// AsyncSender sends with it.
type Conn interface {
	Connect(ctx context.Context) error
	SendEvent(ctx context.Context, m *message.Message) error
	UpdateReported(ctx context.Context, patch any) (int64, error)
	HandleMethod(name string, fn device.MethodHandler)
	SetDefaultMethodHandler(fn device.MethodHandler)
	SetDesiredHandler(fn device.DesiredHandler)
	SetC2DHandler(fn device.C2DHandler)
	Close(ctx context.Context) error
}

// AsyncSender is a client that sends without a goroutine waiting for
// the acknowledgement (device.Client, MQTT): done is called once with
// what SendEvent would have returned, unless SendEventAsync returns an
// error; it must not block. A fleet device whose Conn is one keeps no
// goroutine while its message waits for the hub: the acknowledgement
// schedules the next message.
type AsyncSender interface {
	SendEventAsync(ctx context.Context, m *message.Message, done func(error)) error
}

var _ AsyncSender = (*device.Client)(nil)

// Fleet is a simulation of one or many devices. Make one with New and
// start it with Run; Stats may be called at any time from any
// goroutine.
type Fleet struct {
	opts    Options
	ids     []string
	log     *slog.Logger
	connLim *limiter
	sendLim *limiter
	replies map[string]MethodReply
	dial    func(*device.Options) (Conn, error)
	pool    *amqpPool // the shared AMQP connections, nil without
	// releaseMemory runs once every device has had its connect
	// attempt: debug.FreeOSMemory.
	releaseMemory func()

	// props are the application properties of every message, made
	// once and shared (read-only) by all of them: props[0] with a
	// template body, props[1] and props[2] the quickstart's with
	// temperatureAlert false and true.
	props [3]map[string]string

	start     time.Time
	connected atomic.Int64
	sent      atomic.Int64
	acked     atomic.Int64
	errs      atomic.Int64
	errKinds  [numErrorKinds]atomic.Int64
	ackTime   ackLatency
	methods   atomic.Int64
	twin      atomic.Int64
	c2d       atomic.Int64
	reconns   atomic.Int64

	provisioned atomic.Int64
	work        *workers  // sends and reader events, while Run runs
	devs        deviceSet // the started devices, which the end of the run stops

	rmu      sync.Mutex
	lastRate float64
	running  bool
}

// New checks opts and returns a Fleet. Errors: a missing Keys or host
// for a fleet, a negative Count, Interval or rate.
func New(opts *Options) (*Fleet, error) {
	if opts == nil {
		return nil, errors.New("simulate: no options")
	}
	o := *opts
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Count < 0 || o.Duration < 0 || o.Rate < 0 || o.ConnectRate < 0 || o.MaxConnecting < 0 || o.DevicesPerConnection < 0 {
		return nil, errors.New("simulate: count, duration, rates, MaxConnecting and DevicesPerConnection must not be negative")
	}
	if o.TelemetryOnly && (len(o.Methods) > 0 || len(o.Reported) > 0) {
		return nil, errors.New("simulate: TelemetryOnly devices answer no method and report nothing: leave out Methods and Reported, or TelemetryOnly")
	}
	per, err := devicesPerConnection(&o)
	if err != nil {
		return nil, err
	}
	o.DevicesPerConnection = per
	if o.MaxConnecting == 0 {
		o.MaxConnecting = DefaultMaxConnecting
	}
	o.ContentType = orDash(o.ContentType, DefaultContentType)
	o.ContentEncoding = orDash(o.ContentEncoding, DefaultContentEncoding)
	f := &Fleet{opts: o, ids: o.DeviceIDs, connLim: newLimiter(o.ConnectRate), sendLim: newLimiter(o.Rate),
		replies: map[string]MethodReply{}, ackTime: newAckLatency()}
	f.props = messageProperties(o.Properties)
	if len(f.ids) > 0 && o.Provision != nil {
		if err := o.Provision.check(o.Issuer != nil); err != nil {
			return nil, err
		}
	}
	if len(f.ids) > 0 {
		conns := (len(f.ids) + per - 1) / per
		if err := checkOpenFiles(len(f.ids), conns); err != nil {
			return nil, err
		}
	}
	if len(f.ids) > 0 && o.Provision == nil {
		if o.Keys == nil && o.Issuer == nil {
			return nil, errors.New("simulate: a fleet needs Keys (a registry or a keys file) or an Issuer")
		}
		if o.Device.HostName == "" {
			return nil, errors.New("simulate: a fleet needs Device.HostName")
		}
	}
	if o.Device.CAFile != "" {
		// Read the CA once: one pool for every device, not one each.
		pem, err := os.ReadFile(o.Device.CAFile)
		if err != nil {
			return nil, fmt.Errorf("simulate: CA file: %w", err)
		}
		pool := o.Device.RootCAs
		if pool == nil {
			pool = x509.NewCertPool()
		} else {
			pool = pool.Clone()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("simulate: CA file %s holds no PEM certificate", o.Device.CAFile)
		}
		// f.opts is a copy made above: set it there, or every device
		// reads and parses the file again (about 2 KB each).
		f.opts.Device.RootCAs, f.opts.Device.CAFile = pool, ""
	}
	for _, r := range o.Methods {
		f.replies[r.Name] = r
	}
	f.log = o.Logger
	if f.log == nil {
		f.log = o.Device.Logger
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.dial = func(o *device.Options) (Conn, error) { return device.Open(o) }
	if per > 1 {
		f.pool = newAMQPPool(per, o.TelemetryOnly)
	}
	f.releaseMemory = debug.FreeOSMemory
	return f, nil
}

// devicesPerConnection checks o.DevicesPerConnection and returns it
// with its default filled in.
func devicesPerConnection(o *Options) (int, error) {
	per, tr := o.DevicesPerConnection, o.Device.Transport
	switch {
	case per > 1 && tr != device.TransportAMQP:
		return 0, fmt.Errorf("simulate: %d devices per connection: only AMQP devices share connections; "+
			"over %s each device has its own (leave it out, or use the amqp transport)", per, tr)
	case per > 1 && len(o.DeviceIDs) == 0:
		return 0, fmt.Errorf("simulate: %d devices per connection: a single device has a connection of its own; "+
			"simulate a fleet to share connections", per)
	case per > 1 && o.Issuer != nil:
		return 0, fmt.Errorf("simulate: %d devices per connection: a device with an X.509 certificate "+
			"authenticates in its own connection's TLS handshake; use 1 or keys", per)
	case per > device.MaxDevicesPerAMQPConnection:
		return 0, fmt.Errorf("simulate: %d devices per connection: IoT Hub takes at most %d per AMQP connection",
			per, device.MaxDevicesPerAMQPConnection)
	case per > 0:
		return per, nil
	case tr == device.TransportAMQP && len(o.DeviceIDs) > 1 && o.Issuer == nil:
		return DefaultAMQPDevicesPerConnection, nil
	}
	return 1, nil
}

func orDash(v, def string) string {
	switch v {
	case "":
		return def
	case "-":
		return ""
	}
	return v
}

// Devices returns the number of simulated devices.
func (f *Fleet) Devices() int { return max(1, len(f.ids)) }

// Stats returns the counters now.
func (f *Fleet) Stats() Stats {
	f.rmu.Lock()
	start, rate := f.start, f.lastRate
	f.rmu.Unlock()
	// Acked before Sent: a message is counted sent before it is
	// acknowledged, so read this way Acked never exceeds Sent.
	acked := f.acked.Load()
	s := Stats{
		Devices: f.Devices(), Connected: f.connected.Load(), Sent: f.sent.Load(), Acked: acked,
		Errors: f.errs.Load(), Methods: f.methods.Load(), Twin: f.twin.Load(), C2D: f.c2d.Load(),
		Reconnects: f.reconns.Load(), MsgsPerSecond: rate, Provisioned: f.provisioned.Load(),
	}
	if !start.IsZero() {
		s.ElapsedSeconds = time.Since(start).Seconds()
	}
	return s
}

func (f *Fleet) emit(e Event) {
	if f.opts.Sink == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	f.opts.Sink(e)
}

// emitAsync emits e, stamped now, on a worker, for the events of a
// connection's reader: a Sink that blocks (a full stdout pipe) must
// not stall the reader past its keep-alive, and JSON encoding must not
// grow the reader's stack.
func (f *Fleet) emitAsync(e Event) {
	if f.opts.Sink == nil {
		return
	}
	e.Time = time.Now().UTC()
	f.work.do(func() { f.emit(e) })
}

// Run connects the devices and sends telemetry until every device has
// sent Count messages, Duration has passed, or ctx is done; then it
// disconnects them cleanly and emits EventSummary. It returns the
// final counters and:
//   - ctx.Err() when ctx was cancelled (after the clean shutdown);
//   - the connect error when no device could connect at all (for a
//     single device, a *device.ConnectError wrapping
//     device.ErrUnauthorized when the hub refused its credentials);
//   - nil otherwise; per-device failures are EventError events and
//     counted in Stats.Errors.
//
// Run may be called once.
func (f *Fleet) Run(ctx context.Context) (Stats, error) {
	f.rmu.Lock()
	if f.running {
		f.rmu.Unlock()
		return Stats{}, errors.New("simulate: Run called twice")
	}
	f.running = true
	f.start = time.Now()
	f.rmu.Unlock()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.opts.Duration > 0 {
		var c2 context.CancelFunc
		rctx, c2 = context.WithTimeout(rctx, f.opts.Duration)
		defer c2()
	}
	defer context.AfterFunc(rctx, f.devs.stopAll)()
	// Room for every device's send and event at once: the queue never
	// spills in the steady state.
	f.work = newWorkers(2*f.Devices() + 64)
	statsDone := make(chan struct{})
	if f.opts.StatsInterval > 0 {
		go f.statsLoop(rctx, statsDone)
	} else {
		close(statsDone)
	}

	var wg sync.WaitGroup
	var anyConnected atomic.Bool
	var firstErr error
	var emu sync.Mutex
	run := func(j fleetJob, single bool) {
		// A device that connected calls wg.Done itself when it stops
		// sending; until then no goroutine waits for it.
		ok, err := f.runDevice(rctx, j, single, wg.Done)
		if ok {
			anyConnected.Store(true)
			return
		}
		if err != nil {
			emu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			emu.Unlock()
		}
		wg.Done()
	}
	var released chan struct{} // closed once the connecting is over
	if len(f.ids) == 0 {
		wg.Add(1)
		go run(fleetJob{id: f.opts.Device.DeviceID}, true)
	} else {
		// A few workers connect the fleet, one device after the other
		// each: a device that connected runs on timers and its
		// connection's reader, so the worker moves on at once. The
		// devices come to them from feed, each registered with DPS
		// first when the fleet onboards through it.
		released = make(chan struct{})
		wg.Add(len(f.ids))
		jobs := f.feed(rctx)
		var connecting sync.WaitGroup
		var skipped atomic.Bool // the run ended before some device's turn
		for range min(f.opts.MaxConnecting, len(f.ids)) {
			connecting.Go(func() {
				for j := range jobs {
					if rctx.Err() != nil {
						skipped.Store(true)
						wg.Done() // never started
						continue
					}
					run(j, false)
				}
			})
		}
		go func() {
			defer close(released)
			connecting.Wait()
			// Not rctx.Err(): a short run whose devices are all done is
			// cancelled as it ends, possibly before this goroutine looks.
			if !skipped.Load() {
				// The handshakes' garbage is free now but still
				// resident: the runtime returns it to the system a
				// little at a time. Return it at once, so that the
				// fleet's memory from now on is what its devices hold.
				f.releaseMemory()
			}
		}()
	}
	wg.Wait()
	f.work.close() // no device sends any more: the last events
	cancel()
	if f.pool != nil {
		f.pool.close()
	}
	<-statsDone
	if released != nil {
		<-released
	}

	s := f.Stats()
	if s.ElapsedSeconds > 0 {
		s.MsgsPerSecond = float64(s.Acked) / s.ElapsedSeconds
	}
	f.emit(Event{Type: EventSummary, Stats: &s})
	if ctx.Err() != nil {
		return s, ctx.Err()
	}
	if !anyConnected.Load() && firstErr != nil {
		return s, firstErr
	}
	return s, nil
}

func (f *Fleet) statsLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(f.opts.StatsInterval)
	defer t.Stop()
	lastAcked, lastTime := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			acked := f.acked.Load()
			rate := float64(acked-lastAcked) / now.Sub(lastTime).Seconds()
			lastAcked, lastTime = acked, now
			f.rmu.Lock()
			f.lastRate = rate
			f.rmu.Unlock()
			s := f.Stats()
			f.emit(Event{Type: EventStats, Stats: &s})
		}
	}
}

// simDevice is the state of one simulated device; it is kept small.
// Once connected, a device has no goroutine of its own: a timer starts
// each message on a goroutine that lives for that send only (see
// send). With an AsyncSender (MQTT) that goroutine ends once the
// message is written, and the acknowledgement, on the connection's
// reader, counts it and arms the timer again; otherwise it waits for
// the acknowledgement. So an idle device, and with an AsyncSender one
// whose message waits for the hub, costs a timer, not a goroutine
// stack.
type simDevice struct {
	f         *Fleet
	id        string
	ctx       context.Context
	conn      Conn
	interval  atomic.Int64 // nanoseconds
	connected atomic.Bool
	been      atomic.Bool // connected at least once

	mu       sync.Mutex
	timer    *time.Timer // runs send
	seq      int64       // number of the next message
	last     time.Time   // when the last message was acknowledged
	sending  bool        // a message is on its way
	stopped  bool        // no more sends
	done     func()      // called once when the device is finished
	doneOnce sync.Once

	prev, next *simDevice // in Fleet.devs, under its lock
	listed     bool       // in Fleet.devs
}

// fleetJob is a fleet device on its way to its connecting worker.
type fleetJob struct {
	i   int
	id  string
	pre *device.Options // a provisioned device's options: DPS's assignment
	err error           // why provisioning failed
}

// feed sends the fleet's devices on the channel it returns (in order,
// or nearly, as registrations end) and closes it after the last. When the fleet onboards through DPS,
// up to MaxRegistering devices register at once, ahead of the
// connecting workers: a registration spends most of its time waiting
// for DPS's retry-after, which must not hold one of the few places of
// Options.MaxConnecting. Once the run ends, the devices not registered
// yet are sent without registering.
func (f *Fleet) feed(ctx context.Context) <-chan fleetJob {
	jobs := make(chan fleetJob, f.opts.MaxConnecting)
	feeders := 1
	if f.opts.Provision != nil {
		feeders = min(MaxRegistering, len(f.ids))
	}
	var next atomic.Int64
	var feeding sync.WaitGroup
	for range feeders {
		feeding.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(f.ids)); i = next.Add(1) - 1 {
				j := fleetJob{i: int(i), id: f.ids[i]}
				if f.opts.Provision != nil && ctx.Err() == nil {
					o := f.deviceOptions(j.id)
					j.pre, j.err = &o, f.provision(ctx, j.id, &o)
				}
				jobs <- j
			}
		})
	}
	go func() {
		feeding.Wait()
		close(jobs)
	}()
	return jobs
}

// deviceOptions are the options of fleet device id before its
// credentials are known.
func (f *Fleet) deviceOptions(id string) device.Options {
	o := f.opts.Device
	o.ConnectionString = ""
	o.DeviceID, o.ModuleID, o.SharedAccessSignature = id, "", ""
	return o
}

// runDevice connects one device and starts its sending. ok reports
// whether it connected; only then is done called, once the device has
// stopped sending and closed its connection.
func (f *Fleet) runDevice(ctx context.Context, j fleetJob, single bool, done func()) (ok bool, err error) {
	i, id := j.i, j.id
	d := &simDevice{f: f, id: id, ctx: ctx, seq: 1}
	d.interval.Store(int64(f.opts.Interval))
	fail := func(kind ErrorKind, err error) (bool, error) {
		if ctx.Err() != nil {
			return false, nil
		}
		f.countError(kind)
		if !single {
			// A single device's failure is Run's error; a fleet's are
			// events, and Run returns the first only if all failed.
			f.emit(Event{Type: EventError, DeviceID: d.id, Error: err.Error()})
		}
		return false, err
	}

	o := f.opts.Device
	if !single {
		if j.pre != nil {
			o, err = *j.pre, j.err
		} else {
			o = f.deviceOptions(id)
			err = f.credentials(ctx, id, &o)
		}
		if err != nil {
			return fail(ErrorCredentials, fmt.Errorf("device %s: %w", id, err))
		}
		d.id = o.DeviceID
	}
	if o.Logger == nil {
		o.Logger = f.opts.Logger
	}
	src, dial := f.sourceAddr(i), f.dial
	if f.pool != nil {
		// A connection's devices come from its one source address.
		src = f.sourceAddr(f.pool.group(i))
		dial = func(o *device.Options) (Conn, error) { return f.pool.open(i, o) }
	}
	if src.IsValid() {
		o.SourceAddr = src
	}
	o.OnState = d.onState
	conn, err := dial(&o)
	if err != nil {
		return fail(ErrorConnect, err)
	}
	d.conn = conn
	if single {
		if c, ok := conn.(interface{ DeviceID() string }); ok {
			d.id = c.DeviceID()
		}
	}
	if !f.opts.TelemetryOnly {
		conn.SetDefaultMethodHandler(d.onMethod)
		conn.SetC2DHandler(d.onC2D)
		conn.SetDesiredHandler(d.onDesired)
	}

	if err := f.connLim.Wait(ctx); err != nil {
		f.release(conn)
		return false, nil
	}
	if err := conn.Connect(ctx); err != nil {
		f.release(conn)
		if ctx.Err() != nil {
			return false, nil
		}
		return fail(ErrorConnect, err)
	}
	d.done = done

	if len(f.opts.Reported) > 0 {
		v, err := conn.UpdateReported(ctx, f.opts.Reported)
		if err != nil && ctx.Err() == nil {
			f.countError(ErrorTwin)
			f.emit(Event{Type: EventTwin, DeviceID: d.id, Reported: f.opts.Reported, Error: err.Error()})
		} else if err == nil {
			f.emit(Event{Type: EventTwin, DeviceID: d.id, Reported: f.opts.Reported, ReportedVersion: v})
		}
	}
	d.start()
	return true, nil
}

// release closes the client of a device that never connected when it
// holds a place on a shared connection, so that the place goes back.
func (f *Fleet) release(conn Conn) {
	if f.pool != nil {
		_ = conn.Close(context.Background())
	}
}

// sourceAddr is the source address of the fleet's device number i,
// or the zero Addr when the fleet has none.
func (f *Fleet) sourceAddr(i int) netip.Addr {
	if len(f.opts.SourceAddrs) == 0 {
		return netip.Addr{}
	}
	return f.opts.SourceAddrs[i%len(f.opts.SourceAddrs)]
}

// CertValidity is how long the certificate of a device of a
// certificate fleet is valid (see Options.Issuer).
const CertValidity = 30 * 24 * time.Hour

// credentials gives fleet device id its key, or its certificate when
// the fleet has an Issuer, creating the identity when the registry can.
func (f *Fleet) credentials(ctx context.Context, id string, o *device.Options) error {
	if f.opts.Issuer == nil {
		key, err := f.opts.Keys.EnsureDevice(ctx, id)
		o.SharedAccessKey = key
		return err
	}
	if r, ok := f.opts.Keys.(CARegistry); ok {
		if err := r.EnsureCADevice(ctx, id); err != nil {
			return err
		}
	}
	cert, err := f.issueCert(id)
	if err != nil {
		return err
	}
	o.Certificate, o.SharedAccessKey = cert, ""
	return nil
}

// issueCert is the certificate of fleet device id, signed by Issuer
// (CN = id), valid from a minute ago for CertValidity or until Issuer
// expires.
func (f *Fleet) issueCert(id string) (*tls.Certificate, error) {
	now := time.Now()
	until := now.Add(CertValidity)
	if leaf := f.opts.Issuer.Leaf; leaf != nil && leaf.NotAfter.Before(until) {
		until = leaf.NotAfter
	}
	cert, err := devicecert.Issue(id, now.Add(-time.Minute), until, f.opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuing its certificate: %w", err)
	}
	return cert, nil
}

// start schedules the first message at once and lists the device in
// Fleet.devs, whose stopAll stops it when the run's context ends.
func (d *simDevice) start() {
	d.mu.Lock()
	fire := d.send
	if _, ok := d.conn.(AsyncSender); ok && d.f.sendLim == nil {
		// The send only writes: a worker does it. (One that waits for
		// the rate limit keeps the timer's goroutine.)
		fire = func() { d.f.work.do(d.send) }
	}
	d.timer = time.AfterFunc(0, fire)
	listed := d.f.devs.add(d)
	d.mu.Unlock()
	if !listed {
		d.stop() // the run ended as the device connected
	}
}

// send runs on the timer's goroutine: it sends message number d.seq
// and schedules the next one an interval after it was acknowledged,
// or finishes the device after Count, when ctx is done, or after a
// final client failure (see sent). With an AsyncSender it returns once
// the message is written.
func (d *simDevice) send() {
	d.mu.Lock()
	if d.sending || d.stopped {
		// A SetTelemetryInterval re-armed the timer while a send was
		// starting; that send schedules the next one.
		d.mu.Unlock()
		return
	}
	d.sending = true
	seq := d.seq
	d.mu.Unlock()

	a, async := d.conn.(AsyncSender)
	m, ok := d.prepare(seq)
	if !ok {
		d.stop()
		d.end(async)
		return
	}
	d.f.sent.Add(1)
	sentAt := time.Now()
	if async {
		err := a.SendEventAsync(d.ctx, m, func(err error) { d.sent(seq, m, sentAt, err, true) })
		if err != nil {
			d.sent(seq, m, sentAt, err, true)
		}
		return
	}
	d.sent(seq, m, sentAt, d.conn.SendEvent(d.ctx, m), false)
}

// prepare waits for the fleet's rate limit and builds message number
// seq; false means the device stops (ctx done, or a template error,
// counted).
func (d *simDevice) prepare(seq int64) (*message.Message, bool) {
	f := d.f
	if err := f.sendLim.Wait(d.ctx); err != nil {
		return nil, false
	}
	m, err := d.message(seq)
	if err != nil {
		f.countError(ErrorMessage)
		f.emit(Event{Type: EventError, DeviceID: d.id, Error: err.Error()})
		return nil, false
	}
	return m, true
}

// sent takes the outcome of message number seq, sent at sentAt: it
// counts it and schedules the next message, or finishes the device.
// With async it runs as the client's done callback, possibly on the
// connection's reader, or on a worker, so it only counts and arms the
// timer: the event goes to a worker, and the device's finishing (see
// end) to a goroutine of its own.
func (d *simDevice) sent(seq int64, m *message.Message, sentAt time.Time, err error, async bool) {
	emit := d.f.emit
	if async {
		emit = d.f.emitAsync
	}
	last, more := d.outcome(seq, m, sentAt, err, emit)
	if !more {
		d.stop()
		d.end(async)
		return
	}
	d.mu.Lock()
	d.sending = false
	d.seq = seq + 1
	d.last = last
	if d.stopped {
		d.mu.Unlock()
		d.end(async)
		return
	}
	d.timer.Reset(max(0, time.Until(last.Add(time.Duration(d.interval.Load())))))
	d.mu.Unlock()
}

// outcome counts the outcome of message number seq: acknowledged
// (with its latency and EventSent) or failed, its event given to emit.
// It returns when that was and whether the device goes on sending.
func (d *simDevice) outcome(seq int64, m *message.Message, sentAt time.Time, err error, emit func(Event)) (last time.Time, more bool) {
	f, ctx := d.f, d.ctx
	last = time.Now()
	switch {
	case err == nil:
		// Acknowledged, even if ctx ended meanwhile: the hub has it.
		f.acked.Add(1)
		f.ackTime.observe(last.Sub(sentAt))
		emit(Event{Type: EventSent, DeviceID: d.id, Seq: seq, Body: BodyJSON(m.Body), Properties: m.Properties})
	case ctx.Err() != nil:
		return last, false
	default:
		f.countError(ErrorSend)
		emit(Event{Type: EventError, DeviceID: d.id, Seq: seq, Error: err.Error()})
		if errors.Is(err, device.ErrUnauthorized) || errors.Is(err, device.ErrClosed) {
			return last, false
		}
	}
	if ctx.Err() != nil {
		return last, false
	}
	return last, f.opts.Count == 0 || seq < int64(f.opts.Count)
}

// stop ends the sending: no further message is scheduled. A send that
// is running finishes the device when it returns; otherwise stop
// does, on its caller's goroutine (one of deviceSet.stopAll's when the
// run ends).
func (d *simDevice) stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	d.timer.Stop()
	sending := d.sending
	d.mu.Unlock()
	d.f.devs.remove(d)
	if !sending {
		d.finish()
	}
}

// finish closes the connection cleanly and reports the device done,
// once.
func (d *simDevice) finish() {
	d.doneOnce.Do(func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), closeTimeout)
		defer cancel()
		d.conn.Close(cctx)
		d.done()
	})
}

// end finishes the device after its last send; with async on a
// goroutine of its own, since the send ran on a worker or a reader
// that must not wait for the clean disconnect.
func (d *simDevice) end(async bool) {
	if async {
		go d.finish()
		return
	}
	d.finish()
}

// message builds message number seq.
func (d *simDevice) message(seq int64) (*message.Message, error) {
	f := d.f
	m := &message.Message{ContentType: f.opts.ContentType, ContentEncoding: f.opts.ContentEncoding}
	if f.opts.Template == nil {
		body, alert := QuickstartBody()
		m.Body = body
		m.Properties = f.props[1]
		if alert == "true" {
			m.Properties = f.props[2]
		}
	} else {
		body, err := f.opts.Template.Execute(d.id, seq, time.Now())
		if err != nil {
			return nil, err
		}
		m.Body, m.Properties = body, f.props[0]
	}
	return m, nil
}

// messageProperties makes Fleet.props from Options.Properties: a
// fleet sends thousands of messages a second, and a map for each
// was a good part of what a message cost.
func messageProperties(user map[string]string) [3]map[string]string {
	var props [3]map[string]string
	if len(user) > 0 {
		props[0] = maps.Clone(user)
	}
	for i, alert := range []string{"false", "true"} {
		props[i+1] = make(map[string]string, len(user)+1)
		props[i+1]["temperatureAlert"] = alert
		maps.Copy(props[i+1], user)
	}
	return props
}

// setInterval changes the device's telemetry interval at once: the
// next message is due one new interval after the last send (now, if
// that has passed), so a shorter interval cuts the current wait short.
func (d *simDevice) setInterval(iv time.Duration) {
	d.interval.Store(int64(iv))
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer == nil || d.sending || d.stopped {
		return // the running send schedules with the new interval
	}
	d.timer.Reset(max(0, time.Until(d.last.Add(iv))))
}

func (d *simDevice) onMethod(_ context.Context, r *device.MethodRequest) device.MethodResponse {
	f := d.f
	var res device.MethodResponse
	var iv time.Duration
	if rep, ok := f.replies[r.Name]; ok {
		res = device.MethodResponse{Status: rep.Status, Payload: rep.Payload}
	} else if r.Name == SetTelemetryInterval {
		var ok bool
		if iv, ok = ParseInterval(r.Payload); ok {
			d.setInterval(iv)
			res = setIntervalOK
		} else {
			res = setIntervalBad
		}
	} else {
		res = notDefined(r.Name)
	}
	f.methods.Add(1)
	e := Event{Type: EventMethod, DeviceID: d.id, Method: r.Name, Payload: BodyJSON(r.Payload), Status: res.Status, Response: BodyJSON(res.Payload)}
	if iv > 0 {
		e.IntervalSeconds = iv.Seconds()
	}
	f.emit(e)
	return res
}

func (d *simDevice) onC2D(m *message.Message) {
	d.f.c2d.Add(1)
	d.f.emit(Event{Type: EventC2D, DeviceID: d.id, MessageID: m.MessageID, Body: BodyJSON(m.Body), Properties: m.Properties})
}

func (d *simDevice) onDesired(patch json.RawMessage, version int64) {
	f := d.f
	f.twin.Add(1)
	e := Event{Type: EventTwin, DeviceID: d.id, Desired: patch, Version: version}
	if !f.opts.NoEcho {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(patch, &doc); err == nil {
			delete(doc, "$version")
			delete(doc, "$metadata")
			echo, _ := json.Marshal(doc)
			e.Reported = echo
			v, err := d.conn.UpdateReported(d.ctx, json.RawMessage(echo))
			if err != nil {
				if d.ctx.Err() != nil {
					return
				}
				f.countError(ErrorTwin)
				e.Error = err.Error()
			}
			e.ReportedVersion = v
		}
	}
	f.emit(e)
}

func (d *simDevice) onState(e device.Event) {
	f := d.f
	ev := Event{DeviceID: d.id, Reason: e.Reason}
	if e.Err != nil {
		ev.Error = e.Err.Error()
	}
	switch e.State {
	case device.StateConnected:
		if d.connected.CompareAndSwap(false, true) {
			f.connected.Add(1)
		}
		if !d.been.CompareAndSwap(false, true) {
			f.reconns.Add(1)
		}
		ev.Type = EventConnected
	case device.StateDisconnected, device.StateClosed:
		if e.State == device.StateClosed && !d.been.Load() {
			return // closed before it ever connected: nothing to tell
		}
		if d.connected.CompareAndSwap(true, false) {
			f.connected.Add(-1)
		} else if e.State == device.StateDisconnected && e.Reason == device.ReasonConnectFailed {
			return // Run reports it as an error event
		}
		ev.Type = EventDisconnected
	case device.StateReconnecting:
		ev.Type = EventReconnecting
		ev.Attempt = e.Attempt
		ev.DelaySeconds = e.Delay.Seconds()
	default:
		return
	}
	f.emit(ev)
}
