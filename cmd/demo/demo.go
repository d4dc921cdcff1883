// Package demo holds `iotctl demo`: the "control a device" quickstart,
// offline, in one command.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/cmd/method"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// DeviceID is the quickstart's device.
const DeviceID = "MyGoDevice"

// Options are the inputs of `iotctl demo`.
type Options struct {
	F           *cmdutil.Factory
	InvokeAfter time.Duration
	After       int
	Payload     string
	Interval    time.Duration
}

// NewCmdDemo returns `iotctl demo`; runF replaces the run function in
// tests of flag parsing (nil: run).
func NewCmdDemo(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	o := &Options{F: f}
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the \"control a device\" quickstart offline, in one command",
		Long: `Run Microsoft's "control a device" quickstart end to end, offline: start a local
IoT hub in memory on a free loopback port, create the device MyGoDevice over the
hub's HTTPS API, run the quickstart's simulated device over MQTT (telemetry every
second), invoke SetTelemetryInterval with payload 10 from the back end over HTTPS,
and show from the message timestamps that the interval changed. Every step goes
over real sockets with TLS, through the same code as against Azure IoT Hub.

It exits 0 when the device answered 200 and the interval changed.`,
		Example: `  $ iotctl demo
  $ iotctl demo --invoke-after 3s --payload 2 --after 2
  $ iotctl demo -o json | jq -c 'select(.type=="method")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return o.run(cmd.Context())
		},
	}
	fl := c.Flags()
	fl.DurationVar(&o.InvokeAfter, "invoke-after", 5*time.Second, "how long the device sends before the back end invokes the method")
	fl.IntVar(&o.After, "after", 1, "messages to wait for after the method, to show the new interval")
	fl.StringVar(&o.Payload, "payload", "10", "SetTelemetryInterval payload: the new interval in seconds (JSON)")
	fl.DurationVar(&o.Interval, "interval", time.Second, "the device's telemetry interval before the method")
	return c
}

// event is one line of -o json output.
type event struct {
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Elapsed float64         `json:"elapsedSeconds"`
	Body    json.RawMessage `json:"body,omitempty"`
	Alert   string          `json:"temperatureAlert,omitempty"`
	Method  string          `json:"method,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
	Status  int             `json:"status,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Text    string          `json:"text,omitempty"`
	Gap     float64         `json:"gapSeconds,omitempty"`
}

// check refuses flag values the demo cannot run with.
func (o *Options) check() error {
	if o.After < 1 {
		return cmdutil.Usagef("--after must be at least 1")
	}
	if o.InvokeAfter <= 0 || o.Interval <= 0 {
		return cmdutil.Usagef("--invoke-after and --interval must be positive")
	}
	if !json.Valid([]byte(strings.TrimSpace(o.Payload))) {
		return cmdutil.Usagef("--payload %q is not JSON; the quickstart sends 10", o.Payload)
	}
	return nil
}

func (o *Options) run(ctx context.Context) error {
	format, err := o.F.Output(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	payload := json.RawMessage(strings.TrimSpace(o.Payload))
	log, err := o.F.Logger()
	if err != nil {
		return err
	}
	p := &printer{out: o.F.IO.Out, json: format == output.FormatJSON, start: time.Now()}
	if p.json {
		p.stream = output.NewStream(o.F.IO.Out)
	}

	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true, Logger: log.With("component", "hub")})
	if err := h.Start(ctx); err != nil {
		return err
	}
	defer h.Close()
	p.say("Local IoT hub listening on %s (MQTT and HTTPS over TLS)", h.Addrs()[0])

	cs, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		return err
	}
	svc, err := service.New(connstr.MustParse(cs), &service.Options{CAFile: h.CAFile(), Logger: log, UserAgent: cmdutil.UserAgent()})
	if err != nil {
		return err
	}
	dev, err := svc.CreateDevice(ctx, &service.Device{DeviceID: DeviceID})
	if err != nil {
		return fmt.Errorf("creating %s: %w", DeviceID, err)
	}
	devCS := connstr.ConnectionString{Kind: connstr.KindDevice, HostName: h.HostName(), DeviceID: DeviceID,
		SharedAccessKey: dev.Authentication.SymmetricKey.PrimaryKey}
	p.say("Created device %s over HTTPS", DeviceID)
	p.say("")
	p.say("IoT Hub Quickstart #2 - Simulated device")
	p.say("Press Ctrl-C to exit")

	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	var mu sync.Mutex
	var sends []time.Time
	var sendsAtInvoke = -1
	fleet, err := simulate.New(&simulate.Options{
		Device:   device.Options{ConnectionString: devCS.Format(), CAFile: h.CAFile(), Logger: log},
		Interval: o.Interval,
		Sink: func(ev simulate.Event) {
			if ev.Type != simulate.EventSent {
				return
			}
			mu.Lock()
			sends = append(sends, ev.Time)
			n := len(sends)
			done := sendsAtInvoke >= 0 && n >= sendsAtInvoke+o.After
			mu.Unlock()
			p.sent(ev)
			if done {
				stopSim()
			}
		},
	})
	if err != nil {
		return err
	}
	simDone := make(chan error, 1)
	go func() {
		_, err := fleet.Run(simCtx)
		simDone <- err
	}()

	select {
	case <-time.After(o.InvokeAfter):
	case err := <-simDone:
		return fmt.Errorf("the simulated device stopped: %v", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	p.say("")
	p.say("Back end: invoking SetTelemetryInterval with payload %s over HTTPS", payload)
	res, err := svc.InvokeMethod(ctx, service.Target{DeviceID: DeviceID},
		service.MethodCall{Name: "SetTelemetryInterval", Payload: payload})
	if err != nil {
		stopSim()
		<-simDone
		return err
	}
	mu.Lock()
	sendsAtInvoke = len(sends)
	mu.Unlock()
	p.method(payload, res)

	select {
	case err := <-simDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	case <-ctx.Done():
		stopSim()
		<-simDone
		return ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sends) < 2 || sendsAtInvoke < 1 {
		return errors.New("demo: too few messages to compare intervals")
	}
	before := sends[sendsAtInvoke-1].Sub(sends[0]).Seconds() / float64(max(1, sendsAtInvoke-1))
	gap := sends[len(sends)-1].Sub(sends[len(sends)-2]).Seconds()
	p.interval(before, gap)
	if res.Status >= 400 {
		return &cmdutil.ExitError{Code: cmdutil.ExitDeviceError}
	}
	return nil
}

// printer writes the story as text or as JSON Lines.
type printer struct {
	mu     sync.Mutex
	out    io.Writer
	json   bool
	stream *output.Stream
	start  time.Time
}

func (p *printer) elapsed(t time.Time) float64 { return t.Sub(p.start).Seconds() }

func (p *printer) say(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	if p.json {
		if text != "" {
			_ = p.stream.Write(event{Type: "info", Time: time.Now(), Elapsed: p.elapsed(time.Now()), Text: text})
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.out, text)
}

func (p *printer) sent(ev simulate.Event) {
	if p.json {
		_ = p.stream.Write(event{Type: "sent", Time: ev.Time, Elapsed: p.elapsed(ev.Time), Body: ev.Body, Alert: ev.Properties["temperatureAlert"]})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "[%6.1fs] Sending message: %s\n", p.elapsed(ev.Time), ev.Body)
}

func (p *printer) method(payload json.RawMessage, res *service.MethodResult) {
	if p.json {
		_ = p.stream.Write(event{Type: "method", Time: time.Now(), Elapsed: p.elapsed(time.Now()), Method: "SetTelemetryInterval",
			Payload: payload, Status: res.Status, Result: res.Payload})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = method.PrintQuickstart(p.out, "SetTelemetryInterval", payload, res)
	fmt.Fprintln(p.out)
}

func (p *printer) interval(before, gap float64) {
	if p.json {
		_ = p.stream.Write(event{Type: "interval", Time: time.Now(), Elapsed: p.elapsed(time.Now()), Gap: gap,
			Text: fmt.Sprintf("%.1fs apart before", before)})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "\nThe telemetry interval changed: the last messages were %.1fs apart (%.1fs before the method call).\n", gap, before)
}
