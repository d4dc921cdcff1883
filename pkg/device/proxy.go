package device

import (
	"crypto/tls"
	"net/url"

	"github.com/iotctl/iotctl/internal/proxy"
)

// ProxyError is an HTTP proxy the client could not tunnel through: it
// could not be reached (Err is set), or it answered CONNECT with a
// status other than 2xx (StatusCode is set). The proxy URL in it has
// its password redacted. A 4xx answer other than 408 and 429 is not
// retried. It is the same type as service.ProxyError.
type ProxyError = proxy.Error

// ParseProxyURL checks a proxy URL as Options.Proxy takes it:
// "host:port" or "http://[user:password@]host[:port]" (port 80 by
// default) or "https://..." (TLS to the proxy, port 443 by default,
// its certificate verified with the same CAs as the hub's).
// The error never contains the password.
func ParseProxyURL(s string) (*url.URL, error) { return proxy.ParseURL(s) }

// resolveProxy sets c.proxy from o: the explicit proxy for every
// connection, else the environment's for WebSocket and HTTPS.
func (c *config) resolveProxy(o *Options) error {
	switch {
	case o.Proxy != "":
		u, err := ParseProxyURL(o.Proxy)
		if err != nil {
			return err
		}
		c.proxy = proxy.Fixed(u)
	case o.WebSocket, o.Transport == TransportHTTPS:
		c.proxy = proxy.FromEnvironment()
	}
	return nil
}

// dialer connects to the hub, through the proxy when there is one. An
// https:// proxy is verified with the hub's CAs.
func (c *config) dialer() *proxy.Dialer {
	d := &proxy.Dialer{
		Proxy:     c.proxy,
		UserAgent: "iotctl/" + version(),
		TLSConfig: func(host string) *tls.Config {
			return &tls.Config{ServerName: host, RootCAs: c.tls.RootCAs, MinVersion: tls.VersionTLS12}
		},
	}
	if c.sourceAddr.IsValid() {
		d.DialContext = proxy.SourceDialer(c.sourceAddr)
	}
	return d
}
