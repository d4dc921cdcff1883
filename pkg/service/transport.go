package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/iotctl/iotctl/internal/proxy"
	"github.com/iotctl/iotctl/internal/wsconn"
)

// AMQP over WebSocket, as IoT Hub and Event Hubs serve it.
const (
	// DefaultWebSocketPort is the port of AMQP over WebSocket when
	// HostName names none.
	DefaultWebSocketPort = 443
	// WebSocketPath is IoT Hub's WebSocket endpoint.
	WebSocketPath = "/$iothub/websocket"
	// EventHubWebSocketPath is an Event Hubs namespace's WebSocket
	// endpoint (the Event Hubs SDKs' webSocketEndpointPath).
	EventHubWebSocketPath = "/$servicebus/websocket"
	// WebSocketSubprotocol is the WebSocket subprotocol of AMQP 1.0.
	WebSocketSubprotocol = "AMQPWSB10"
)

// ProxyError is an HTTP proxy the client could not tunnel through: it
// could not be reached (Err is set), or it answered CONNECT with a
// status other than 2xx (StatusCode is set). The proxy URL in it has
// its password redacted. It is the same type as device.ProxyError.
type ProxyError = proxy.Error

// endpoint is where an AMQP connection goes.
type endpoint struct {
	addr       string // host:port of the TCP connection
	serverName string // TLS server name
	wsURL      string // AMQP over this WebSocket; "" for AMQP over TLS
}

func (e endpoint) String() string {
	if e.wsURL != "" {
		return e.wsURL
	}
	return e.addr
}

// webSocketEndpoint is wss://host:port/path ("wss://host/path" for port
// 443, as the SDKs write it).
func webSocketEndpoint(host string, port int, path string) endpoint {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	u := url.URL{Scheme: "wss", Host: addr, Path: path}
	if port == DefaultWebSocketPort {
		u.Host = host
		if strings.Contains(host, ":") { // an IPv6 address
			u.Host = "[" + host + "]"
		}
	}
	return endpoint{addr: addr, serverName: host, wsURL: u.String()}
}

// hubEndpoint is the hub's AMQP endpoint: HostName's host and port
// (5671 when it names none), or with Options.WebSocket
// wss://{host}[:port]/$iothub/websocket (port 443 when HostName names
// none).
func (c *Client) hubEndpoint() endpoint {
	if c.opts.WebSocket {
		port := c.cs.Port()
		if port == 0 {
			port = DefaultWebSocketPort
		}
		return webSocketEndpoint(c.cs.Host(), port, WebSocketPath)
	}
	return endpoint{addr: amqpAddr(c.cs), serverName: c.cs.Host()}
}

// eventHubEndpoint is an Event Hub-compatible endpoint on host, whose
// AMQP port is port (0: none named). Over TLS it is host:port (5671 by
// default). With Options.WebSocket it is
// wss://{host}:443/$servicebus/websocket, where Event Hubs namespaces
// serve AMQP over WebSocket; a port other than 5671 is kept, as an
// emulator serving every protocol on one port names it.
func (c *Client) eventHubEndpoint(host string, port int) endpoint {
	if !c.opts.WebSocket {
		if port == 0 {
			port = DefaultAMQPPort
		}
		return endpoint{addr: net.JoinHostPort(host, strconv.Itoa(port)), serverName: host}
	}
	if port == 0 || port == DefaultAMQPPort {
		port = DefaultWebSocketPort
	}
	return webSocketEndpoint(host, port, EventHubWebSocketPath)
}

// dialer connects to the hub (or its Event Hub-compatible endpoint):
// through Options.Proxy when it is set, else for web connections (REST,
// WebSocket) through the environment's proxy, else directly.
func (c *Client) dialer(web bool) *proxy.Dialer {
	d := &proxy.Dialer{
		Proxy:       c.proxy,
		UserAgent:   c.opts.UserAgent,
		TLSConfig:   c.tls.trust.forHost,
		DialContext: c.dialContext,
	}
	if d.Proxy == nil && web {
		d.Proxy = c.envProxy
	}
	return d
}

// dialEndpoint opens the connection AMQP runs on: TLS to ep.addr, or a
// WebSocket with subprotocol AMQPWSB10 over that TLS connection.
// The TCP connection and the TLS handshake together take at most
// Options.ConnectTimeout, and so does the WebSocket upgrade; a failure
// is a *NetError.
func (c *Client) dialEndpoint(ctx context.Context, ep endpoint) (net.Conn, error) {
	d := c.dialer(ep.wsURL != "")
	dialTLS := func(ctx context.Context) (net.Conn, error) {
		cfg := c.tls.Clone()
		cfg.ServerName = ep.serverName
		return proxy.DialWithin(ctx, c.opts.ConnectTimeout, func(ctx context.Context) (net.Conn, error) {
			return d.DialTLS(ctx, ep.addr, cfg)
		})
	}
	if ep.wsURL == "" {
		return dialTLS(ctx)
	}
	start := time.Now()
	nc, err := wsconn.Dial(ctx, ep.wsURL, &wsconn.DialOptions{
		Subprotocol:      WebSocketSubprotocol,
		DialTLS:          dialTLS,
		Header:           http.Header{"User-Agent": {c.opts.UserAgent}},
		HandshakeTimeout: c.opts.ConnectTimeout,
	})
	if err != nil {
		err = proxy.NewNetError(ctx, start, ep.addr, proxy.PhaseWebSocket, err)
		var ne *NetError
		if errors.As(err, &ne) && ne.Timeout == 0 && ne.TimedOut() {
			ne.Timeout = c.opts.ConnectTimeout
		}
		return nil, err
	}
	return nc, nil
}

// setProxy reads Options.Proxy and the environment's proxy settings.
func (c *Client) setProxy() error {
	if c.opts.Proxy != "" {
		u, err := proxy.ParseURL(c.opts.Proxy)
		if err != nil {
			return fmt.Errorf("service: %w", err)
		}
		c.proxy = proxy.Fixed(u)
	}
	c.envProxy = proxy.FromEnvironment()
	return nil
}
