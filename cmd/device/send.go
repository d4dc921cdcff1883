package device

import (
	"context"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/simulate"
)

type sendOptions struct {
	f *cmdutil.Factory

	connStr         string
	data            string
	dataSet         bool
	dataFile        string
	properties      []string
	contentType     string
	contentEncoding string
	messageID       string
	qos             string
	count           int
	interval        time.Duration
	conn            connectFlags

	// Filled by validation.
	dev   *device.Options
	body  []byte
	props map[string]string
}

func newCmdSend(f *cmdutil.Factory, runF func(*sendOptions) error) *cobra.Command {
	o := &sendOptions{f: f}
	c := &cobra.Command{
		Use:   "send",
		Short: "Send device-to-cloud message(s) once, as a device",
		Long: `Connect as a device, send --count messages (default 1) with the body --data (or
the contents of --data-file, '-' for stdin) and the given properties, wait for
the hub to acknowledge each (QoS 1 over MQTT; the accepted outcome over AMQP;
204 over HTTPS), disconnect and exit.

On a terminal one line per message is printed; with -o json one "sent" event per
message, as 'iotctl device simulate' writes them. Credentials the hub refuses
exit 4; a bad connection string exits 3.

` + connectHelp,
		Example: `  $ iotctl device send --connection-string "$DEVICE_CS" --data '{"temperature":21.5}'
  $ iotctl device send --data 'hello' --content-type text/plain --property level=info --count 5 --interval 1s
  $ echo '{"batch":1}' | iotctl device send --data-file - -o json
  $ iotctl device send --websocket --proxy http://proxy.corp:3128 --data 'through the proxy'
  $ iotctl device send --transport https --data '{"temperature":21.5}' --property level=info
  $ iotctl device send --transport amqp --websocket --data 'AMQP over wss'
  $ iotctl device send --connection-string "HostName=myhub.azure-devices.net;DeviceId=cam1;x509=true" \
      --cert cam1.pem --key cam1-key.pem --data '{"frame":1}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.dataSet = cmd.Flags().Changed("data")
			if err := o.validate(); err != nil {
				return exitError(err)
			}
			if runF != nil {
				return runF(o)
			}
			return o.conn.exitError(o.run(cmd.Context()))
		},
	}
	fl := c.Flags()
	fl.StringVar(&o.connStr, cmdutil.KeyConnectionString, "", "device or module connection string (default $IOTCTL_DEVICE_CONNECTION_STRING)")
	fl.StringVar(&o.data, "data", "", "message body")
	fl.StringVar(&o.dataFile, "data-file", "", "read the message body from a file ('-' for stdin)")
	fl.StringArrayVar(&o.properties, "property", nil, "application property NAME=VALUE (repeatable)")
	fl.StringVar(&o.contentType, "content-type", simulate.DefaultContentType, "content type ($.ct); '' for none")
	fl.StringVar(&o.contentEncoding, "content-encoding", simulate.DefaultContentEncoding, "content encoding ($.ce); '' for none")
	fl.StringVar(&o.messageID, "message-id", "", "message id ($.mid); with --count > 1 a -N suffix is added")
	fl.StringVar(&o.qos, "qos", "1", "QoS: 0 or 1 (MQTT; AMQP and HTTPS always wait for the hub)")
	fl.IntVar(&o.count, "count", 1, "how many messages to send")
	fl.DurationVar(&o.interval, "interval", 0, "time between messages")
	fl.String(cmdutil.KeyCAFile, "", "PEM file of the CA to trust, e.g. the local hub's (default: system roots)")
	o.conn.add(fl)
	return c
}

func (o *sendOptions) validate() error {
	if o.count < 1 {
		return cmdutil.Usagef("--count must be at least 1")
	}
	if o.interval < 0 {
		return cmdutil.Usagef("--interval must not be negative")
	}
	qos, err := device.ParseQoS(o.qos)
	if err != nil {
		return cmdutil.Usagef("--qos %q: use 0 or 1", o.qos)
	}
	if o.props, err = parseProperties(o.properties); err != nil {
		return err
	}
	text, ok, err := readData(o.f.IO.In, o.data, o.dataFile, o.dataSet)
	if err != nil {
		return err
	}
	if !ok {
		return cmdutil.Usagef("nothing to send: pass --data or --data-file")
	}
	o.body = []byte(text)
	if len(o.body) > message.MaxTelemetrySize {
		return cmdutil.Usagef("the message is %d bytes; IoT Hub takes at most %d", len(o.body), message.MaxTelemetrySize)
	}
	o.dev = &device.Options{QoS: qos}
	return o.conn.options(o.f, o.connStr, o.dev)
}

func (o *sendOptions) run(ctx context.Context) error {
	format, err := o.f.Output(output.FormatTable, output.FormatJSON)
	if err != nil {
		return err
	}
	c, err := o.f.DeviceClient(o.dev)
	if err != nil {
		return err
	}
	if err := c.Connect(ctx); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		c.Close(cctx)
	}()
	p := newPrinter(o.f.IO, display{json: format == output.FormatJSON, messages: true}, false)
	for i := 1; i <= o.count; i++ {
		m := &message.Message{Body: o.body, ContentType: o.contentType, ContentEncoding: o.contentEncoding, Properties: o.props, MessageID: o.messageID}
		if o.messageID != "" && o.count > 1 {
			m.MessageID = o.messageID + "-" + strconv.Itoa(i)
		}
		if err := c.SendEvent(ctx, m); err != nil {
			return err
		}
		if p.json != nil {
			p.print(simulate.Event{Type: simulate.EventSent, Time: o.f.Now().UTC(), DeviceID: c.DeviceID(), Seq: int64(i), Body: simulate.BodyJSON(o.body), Properties: o.props})
		} else {
			p.print(simulate.Event{Type: simulate.EventSent, Body: o.body, Properties: o.props})
		}
		if i < o.count && o.interval > 0 {
			t := time.NewTimer(o.interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	return nil
}
