package hub

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// monitorLine is one event of `hub monitor -o json`; fields are only
// ever added.
type monitorLine struct {
	Type           string          `json:"type"`
	DeviceID       string          `json:"deviceId"`
	ModuleID       string          `json:"moduleId,omitempty"`
	Partition      string          `json:"partition"`
	SequenceNumber int64           `json:"sequenceNumber"`
	EnqueuedTime   time.Time       `json:"enqueuedTime"`
	Body           json.RawMessage `json:"body,omitempty"`
	BodyBase64     string          `json:"bodyBase64,omitempty"`
	Properties     map[string]any  `json:"properties,omitempty"`
	System         map[string]any  `json:"systemProperties,omitempty"`
	Annotations    map[string]any  `json:"annotations,omitempty"`
}

// monitorOptions are the inputs of `hub monitor`.
type monitorOptions struct {
	f                        *cmdutil.Factory
	EventHubConnectionString string
	DeviceGlob               string
	ConsumerGroup            string
	From                     string
	Count                    int
	Timeout                  time.Duration
	Properties               string

	// Resolved by check: where to start and which properties to show.
	monitor service.MonitorOptions
	show    map[string]bool
}

// newCmdMonitor returns `hub monitor`; runF replaces monitorRun in
// tests of flag parsing (nil: monitorRun).
func newCmdMonitor(f *cmdutil.Factory, runF func(*monitorOptions) error) *cobra.Command {
	opts := &monitorOptions{f: f}
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Stream the telemetry devices send (AMQP, Event Hub-compatible endpoint)",
		Long: `Stream device-to-cloud telemetry from the hub's Event Hub-compatible endpoint, all
partitions at once. iotctl asks the hub where its events are (the hub answers
with a redirect, as Azure IoT Hub does); with --hub-name (or --auth-type login)
it takes the endpoint and a policy's key from Azure Resource Manager instead, as
az iot hub monitor-events does; --event-hub-connection-string names the
endpoint itself.

-o json prints one JSON object per event (type "event", deviceId, moduleId,
partition, sequenceNumber, enqueuedTime, body, and with --properties the
application properties, system properties and annotations). The body is the
JSON itself when it parses, else a string when it is text, else bodyBase64. On a
terminal each event is one readable line.

It exits 0 after --count events or after waiting --timeout (counted once
connected); a lost connection is retried with back-off, and when that fails it
exits 1 with the reason. When stderr is a terminal, it says there what it waits
for before the first event, and how many events it got when it stops.`,
		Example: `  $ iotctl hub monitor
  $ iotctl hub monitor --device-id 'sim-*' --from start --count 100 -o json | jq -c .body
  $ iotctl hub monitor --from 2026-11-26T08:00:00Z --timeout 30s --properties app,sys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return monitorRun(cmd.Context(), opts)
		},
	}
	fl := c.Flags()
	fl.String(cmdutil.KeyConnectionString, "", "service connection string")
	cmdutil.AddServiceAuth(c, `Role: the Event Hub-compatible endpoint takes only shared access keys, not
Microsoft Entra ID tokens, so no IoT Hub data role opens it. With --auth-type login,
--hub-name reads the key of --policy-name from Azure Resource Manager (as az iot hub
monitor-events does), which needs Microsoft.Devices/IotHubs/listkeys/action
(Contributor or Owner); or pass --event-hub-connection-string.`)
	fl.String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addTransportFlags(fl)
	c.Long += "\n\n" + transportHelp + `

With --websocket the redirect to the Event Hub-compatible endpoint is followed
over WebSocket too: to the hub's own endpoint when it names the hub's host (the
local hub), else to wss://NAMESPACE:443/$servicebus/websocket, where Event Hubs
namespaces serve AMQP over WebSocket. --event-hub-connection-string with
--websocket uses that endpoint of its host.`
	c.Example += "\n  $ HTTPS_PROXY=http://proxy.corp:3128 iotctl hub monitor --websocket"
	fl.StringVar(&opts.EventHubConnectionString, "event-hub-connection-string", "", "read this Event Hub-compatible endpoint instead of asking the hub")
	fl.StringVarP(&opts.DeviceGlob, "device-id", "d", "", "only events of devices whose id matches this glob")
	fl.StringVar(&opts.ConsumerGroup, "consumer-group", "$Default", "consumer group")
	fl.StringVar(&opts.From, "from", "now", "where to start: start, now or an RFC 3339 time")
	fl.IntVar(&opts.Count, "count", 0, "stop after this many events (0: no limit)")
	fl.DurationVar(&opts.Timeout, "timeout", 0, "stop after waiting this long once connected (0: no limit)")
	fl.StringVar(&opts.Properties, "properties", "", "also print: app (application properties), sys (system properties), anno (annotations), all")
	return c
}

// check refuses wrong flags and resolves --from, --consumer-group and
// --properties.
func (o *monitorOptions) check() error {
	if o.Count < 0 {
		return cmdutil.Usagef("--count %d: give a positive number, or 0 for no limit", o.Count)
	}
	if o.Timeout < 0 {
		return cmdutil.Usagef("--timeout %s: give a positive duration, or 0 for no limit", o.Timeout)
	}
	o.monitor = service.MonitorOptions{ConsumerGroup: o.ConsumerGroup}
	switch o.From {
	case "start", "now":
		o.monitor.From = o.From
	default:
		t, err := time.Parse(time.RFC3339, o.From)
		if err != nil {
			return cmdutil.Usagef("--from %q: use start, now or an RFC 3339 time", o.From)
		}
		o.monitor.FromTime = t
	}
	if _, err := path.Match(o.DeviceGlob, ""); err != nil {
		return cmdutil.Usagef("--device-id %q is not a valid glob: %v", o.DeviceGlob, err)
	}
	o.show = map[string]bool{}
	for _, p := range strings.Split(o.Properties, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case "app", "sys", "anno", "all":
			o.show[p] = true
		default:
			return cmdutil.Usagef("--properties %q: use app, sys, anno or all, comma-separated", p)
		}
	}
	return nil
}

// monitorRun streams events until --count, --timeout or the end of
// parent (exit 130).
func monitorRun(parent context.Context, opts *monitorOptions) error {
	f, deviceGlob, count, timeout, show := opts.f, opts.DeviceGlob, opts.Count, opts.Timeout, opts.show
	format, err := f.Output(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	// --timeout is the wait for events: it starts once the partitions'
	// receivers are attached, so a slow connection is not taken for a
	// quiet hub (connecting has its own bounds).
	ctx, mo := parent, opts.monitor
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(parent)
		defer cancel()
		var once sync.Once
		mo.OnReady = func() { once.Do(func() { time.AfterFunc(timeout, cancel) }) }
	}
	stream := output.NewStream(f.IO.Out)
	n := 0
	note := newWaitNote(f)
	note.waiting("device telemetry", "consumer group "+cmp.Or(opts.ConsumerGroup, "$Default"), "from "+opts.From,
		ifSet(deviceGlob != "", "devices matching %q", deviceGlob), ifSet(count > 0, "up to %d events", count),
		ifSet(timeout > 0, "at most %s", timeout))
	defer func() { note.stopped("%d event(s) received", n) }()
	errDone := errors.New("done")
	fn := func(ev service.Event) error {
		if deviceGlob != "" {
			if ok, _ := path.Match(deviceGlob, ev.DeviceID); !ok {
				return nil
			}
		}
		line := monitorLine{Type: "event", DeviceID: ev.DeviceID, ModuleID: ev.ModuleID, Partition: ev.Partition,
			SequenceNumber: ev.SequenceNumber, EnqueuedTime: ev.EnqueuedTime}
		line.Body, line.BodyBase64 = renderBody(ev.Body)
		if show["app"] || show["all"] {
			line.Properties = ev.Properties
		}
		if show["sys"] || show["all"] {
			line.System = ev.System
		}
		if show["anno"] || show["all"] {
			line.Annotations = stringKeys(ev.Annotations)
		}
		var err error
		if format == output.FormatJSON {
			err = stream.Write(line)
		} else {
			err = printEventLine(f, line)
		}
		if err != nil {
			return err
		}
		n++
		if count > 0 && n >= count {
			return errDone
		}
		return nil
	}
	if ehCS := opts.EventHubConnectionString; ehCS != "" || f.ResourceManagerEventHub() {
		so, err := f.ServiceOptions()
		if err != nil {
			return err
		}
		var cs *connstr.ConnectionString
		if ehCS != "" {
			if cs, err = connstr.Parse(ehCS); err != nil {
				return err
			}
			if err := cs.Require(connstr.KindEventHub); err != nil {
				return fmt.Errorf("--event-hub-connection-string: %w (the Endpoint=sb://...;EntityPath=... string `iotctl hub serve` prints, or the hub's built-in endpoint in the portal)", err)
			}
		} else if cs, err = f.EventHubFromResourceManager(parent, so); err != nil {
			return err
		}
		err = service.MonitorEventHub(ctx, cs, so, mo, fn)
		return monitorEnd(parent, err, errDone)
	}
	client, err := f.ServiceClient(parent, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	return monitorEnd(parent, client.Monitor(ctx, mo, fn), errDone)
}

// monitorEnd maps the end of a monitor: errDone (--count reached) is
// success, an end without error after parent was cancelled is exit 130.
func monitorEnd(parent context.Context, err, errDone error) error {
	if errors.Is(err, errDone) {
		return nil
	}
	if err == nil && parent.Err() != nil {
		return &cmdutil.ExitError{Code: cmdutil.ExitInterrupted}
	}
	return err
}

// renderBody returns the body as JSON when it parses, as a JSON string
// when it is UTF-8 text, else as base64.
func renderBody(b []byte) (json.RawMessage, string) {
	if len(b) == 0 {
		return nil, ""
	}
	if json.Valid(b) {
		return json.RawMessage(b), ""
	}
	if utf8.Valid(b) {
		s, _ := json.Marshal(string(b))
		return s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

func stringKeys(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		out[k] = v
	}
	return out
}

func printEventLine(f *cmdutil.Factory, l monitorLine) error {
	id := l.DeviceID
	if l.ModuleID != "" {
		id += "/" + l.ModuleID
	}
	body := string(l.Body)
	if l.BodyBase64 != "" {
		body = "base64:" + l.BodyBase64
	}
	var extra []string
	for _, m := range []map[string]any{l.Properties, l.System} {
		for k, v := range m {
			extra = append(extra, fmt.Sprintf("%s=%v", k, v))
		}
	}
	line := fmt.Sprintf("%s  %s  %s", l.EnqueuedTime.Format("15:04:05.000"), id, body)
	if len(extra) > 0 {
		line += "  [" + strings.Join(extra, " ") + "]"
	}
	_, err := fmt.Fprintln(f.IO.Out, line)
	return err
}
