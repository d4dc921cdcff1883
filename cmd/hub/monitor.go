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

func newCmdMonitor(f *cmdutil.Factory) *cobra.Command {
	var deviceGlob, group, from, props, ehCS string
	var count int
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "monitor",
		Short: "Stream the telemetry devices send (AMQP, Event Hub-compatible endpoint)",
		Long: `Stream device-to-cloud telemetry from the hub's Event Hub-compatible endpoint, all
partitions at once. iotctl asks the hub where its events are (the hub answers
with a redirect, as Azure IoT Hub does), or reads an Event Hub-compatible
connection string given with --event-hub-connection-string.

-o json prints one JSON object per event (type "event", deviceId, moduleId,
partition, sequenceNumber, enqueuedTime, body, and with --properties the
application properties, system properties and annotations). The body is the
JSON itself when it parses, else a string when it is text, else bodyBase64. On a
terminal each event is one readable line.

It exits 0 after --count events or --timeout; a lost connection is retried with
back-off, and when that fails it exits 1 with the reason. When stderr is a
terminal, it says there what it waits for before the first event, and how many
events it got when it stops.`,
		Example: `  $ iotctl hub monitor
  $ iotctl hub monitor --device-id 'sim-*' --from start --count 100 -o json | jq -c .body
  $ iotctl hub monitor --from 2026-11-26T08:00:00Z --timeout 30s --properties app,sys`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := f.Output(output.FormatTable, output.FormatJSON)
			if err != nil {
				return err
			}
			if count < 0 {
				return cmdutil.Usagef("--count %d: give a positive number, or 0 for no limit", count)
			}
			if timeout < 0 {
				return cmdutil.Usagef("--timeout %s: give a positive duration, or 0 for no limit", timeout)
			}
			opts := service.MonitorOptions{ConsumerGroup: group}
			switch from {
			case "start", "now":
				opts.From = from
			default:
				t, err := time.Parse(time.RFC3339, from)
				if err != nil {
					return cmdutil.Usagef("--from %q: use start, now or an RFC 3339 time", from)
				}
				opts.FromTime = t
			}
			if _, err := path.Match(deviceGlob, ""); err != nil {
				return cmdutil.Usagef("--device-id %q is not a valid glob: %v", deviceGlob, err)
			}
			show := map[string]bool{}
			for _, p := range strings.Split(props, ",") {
				switch p = strings.TrimSpace(p); p {
				case "":
				case "app", "sys", "anno", "all":
					show[p] = true
				default:
					return cmdutil.Usagef("--properties %q: use app, sys, anno or all, comma-separated", p)
				}
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			stream := output.NewStream(f.IO.Out)
			n := 0
			note := newWaitNote(f)
			note.waiting("device telemetry", "consumer group "+cmp.Or(group, "$Default"), "from "+from,
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
			if ehCS != "" {
				// Not "cs, err :=": that err would shadow the one
				// MonitorEventHub's result goes to.
				cs, perr := connstr.Parse(ehCS)
				if perr != nil {
					return perr
				}
				if err := cs.Require(connstr.KindEventHub); err != nil {
					return fmt.Errorf("--event-hub-connection-string: %w (the Endpoint=sb://...;EntityPath=... string `iotctl hub serve` prints, or the hub's built-in endpoint in the portal)", err)
				}
				so, oerr := f.ServiceOptions()
				if oerr != nil {
					return oerr
				}
				err = service.MonitorEventHub(ctx, cs, so, opts, fn)
			} else {
				client, cerr := f.ServiceClient()
				if cerr != nil {
					return cerr
				}
				defer client.Close()
				err = client.Monitor(ctx, opts, fn)
			}
			if errors.Is(err, errDone) {
				return nil
			}
			if err == nil && cmd.Context().Err() != nil {
				return &cmdutil.ExitError{Code: cmdutil.ExitInterrupted}
			}
			return err
		},
	}
	fl := c.Flags()
	fl.String(cmdutil.KeyConnectionString, "", "service connection string")
	fl.String(cmdutil.KeyCAFile, "", "extra CA certificate (PEM) to trust, such as the local hub's")
	addTransportFlags(fl)
	c.Long += "\n\n" + transportHelp + `

With --websocket the redirect to the Event Hub-compatible endpoint is followed
over WebSocket too: to the hub's own endpoint when it names the hub's host (the
local hub), else to wss://NAMESPACE:443/$servicebus/websocket, where Event Hubs
namespaces serve AMQP over WebSocket. --event-hub-connection-string with
--websocket uses that endpoint of its host.`
	c.Example += "\n  $ HTTPS_PROXY=http://proxy.corp:3128 iotctl hub monitor --websocket"
	fl.StringVar(&ehCS, "event-hub-connection-string", "", "read this Event Hub-compatible endpoint instead of asking the hub")
	fl.StringVarP(&deviceGlob, "device-id", "d", "", "only events of devices whose id matches this glob")
	fl.StringVar(&group, "consumer-group", "$Default", "consumer group")
	fl.StringVar(&from, "from", "now", "where to start: start, now or an RFC 3339 time")
	fl.IntVar(&count, "count", 0, "stop after this many events (0: no limit)")
	fl.DurationVar(&timeout, "timeout", 0, "stop after this long (0: no limit)")
	fl.StringVar(&props, "properties", "", "also print: app (application properties), sys (system properties), anno (annotations), all")
	return c
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
