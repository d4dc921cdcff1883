package hub

import (
	"context"

	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/output"
	"github.com/iotctl/iotctl/pkg/service"
)

// transportHelp is the part of the AMQP commands' help that explains
// --websocket and --proxy.
const transportHelp = `Transport: AMQP over TLS on port 5671 (or the port in HostName). --websocket
(IOTCTL_WEBSOCKET) uses AMQP over a secure WebSocket instead,
wss://HOST/$iothub/websocket with subprotocol AMQPWSB10 on port 443 (or the port
in HostName), for networks that only let HTTPS out; it goes through the proxy in
HTTPS_PROXY unless NO_PROXY names the host (localhost and loopback addresses are
never proxied). --proxy URL (IOTCTL_PROXY) tunnels every connection, AMQP or
WebSocket and whatever the host, through that HTTP proxy with CONNECT
(http://[user:password@]host:port). A proxy that cannot be reached or refuses
the tunnel exits 1 with a message naming it and its answer.`

// addProxyFlag adds --proxy to a command that talks to the hub.
func addProxyFlag(fl *pflag.FlagSet) {
	fl.String(cmdutil.KeyProxy, "", "HTTP proxy URL to tunnel every connection through with CONNECT (default: HTTPS_PROXY for HTTPS and WebSocket)")
}

// addTransportFlags adds --websocket and --proxy to an AMQP command.
func addTransportFlags(fl *pflag.FlagSet) {
	fl.Bool(cmdutil.KeyWebSocket, false, "AMQP over WebSocket (wss, port 443 or the port in HostName); uses HTTPS_PROXY")
	addProxyFlag(fl)
}

// printerClient returns the printer in the chosen format (one of
// allowed; none: table, json or yaml) and the service client of the
// configuration: how a service command's run begins.
func printerClient(ctx context.Context, f *cmdutil.Factory, allowed ...output.Format) (*output.Printer, *service.Client, error) {
	p, err := f.Printer(allowed...)
	if err != nil {
		return nil, nil, err
	}
	c, err := f.ServiceClient(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	return p, c, nil
}
