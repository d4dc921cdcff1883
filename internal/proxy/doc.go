// Package proxy tunnels TCP connections through HTTP proxies with
// CONNECT, for every iotctl client that dials the hub itself (MQTT, AMQP,
// WebSocket) or through net/http (REST).
//
// Which proxy a connection takes is a Func: Fixed for a proxy given
// explicitly (every target, loopback included), FromEnvironment for the
// HTTPS_PROXY and NO_PROXY variables (as curl and Go read them: localhost
// and loopback addresses never go through them). A Dialer opens the
// connection, directly or through the tunnel; a proxy that cannot be
// reached or refuses the tunnel is an *Error that names it with its
// password redacted.
//
//	u, err := proxy.ParseURL("http://alice:secret@proxy.corp:3128")
//	if err != nil { ... }
//	d := &proxy.Dialer{Proxy: proxy.Fixed(u), UserAgent: "iotctl/1.0"}
//	conn, err := d.DialContext(ctx, "tcp", "myhub.azure-devices.net:443")
//	var pe *proxy.Error
//	if errors.As(err, &pe) && pe.StatusCode == 407 { ... }
package proxy
