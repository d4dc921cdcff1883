package amqpfront

import (
	"net"
	"net/url"
	"strings"
)

// nodePath returns a link address or token audience without its scheme
// and host ("amqps://h:5671/messages/devicebound" and
// "/messages/devicebound" both give "messages/devicebound") and without
// leading or trailing slashes. Bare node names such as "$cbs" and
// relative paths such as "iothub/ConsumerGroups/$Default/Partitions/0"
// are kept as they are.
func nodePath(addr string) string {
	if i := strings.Index(addr, "://"); i >= 0 {
		rest := addr[i+3:]
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			addr = rest[j:]
		} else {
			addr = ""
		}
	}
	return strings.Trim(addr, "/")
}

// segments splits a node path into its non-empty segments, lower-cased,
// for case-insensitive prefix comparison.
func segments(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.ToLower(p), "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// audiencePath is the resource a CBS audience names, as a node path: the
// audience "sb://h:5671/iothub/$management" gives "iothub/$management",
// and a bare host ("myhub.azure-devices.net", "localhost:8443") gives ""
// (the whole hub).
func audiencePath(audience string) string {
	if strings.Contains(audience, "://") {
		return nodePath(audience)
	}
	_, rest, ok := strings.Cut(audience, "/")
	if !ok {
		return ""
	}
	return strings.Trim(rest, "/")
}

// hasPrefix reports whether the segments of prefix begin the segments
// of p.
func hasPrefix(p, prefix []string) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// EventHubName returns the name of a hub's Event Hub-compatible
// endpoint for its host name: the first DNS label, as IoT Hub names it
// after the hub ("myhub.azure-devices.net" and "myhub.local:8443" give
// "myhub", "localhost" gives "localhost"). An IP address has no hub
// name in it, so it gives "iothub". The port, if any, is ignored.
func EventHubName(hostName string) string {
	host := hostName
	if h, _, err := net.SplitHostPort(hostName); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" || net.ParseIP(host) != nil {
		return "iothub"
	}
	label, _, _ := strings.Cut(host, ".")
	return label
}

// c2dTarget reads the device and module a C2D message is for from its
// "to" property: "/devices/{id}/messages/devicebound" or
// "/devices/{id}/modules/{mid}/messages/devicebound", the fixed segments
// in any case, the ids percent-decoded (the Node SDK encodes them with
// encodeURIComponent). The leading slash is optional.
func c2dTarget(to string) (deviceID, moduleID string, ok bool) {
	s := strings.Split(strings.Trim(nodePath(to), "/"), "/")
	switch {
	case len(s) == 4 && strings.EqualFold(s[0], "devices") && strings.EqualFold(s[2], "messages") &&
		strings.EqualFold(s[3], "devicebound"):
	case len(s) == 6 && strings.EqualFold(s[0], "devices") && strings.EqualFold(s[2], "modules") &&
		strings.EqualFold(s[4], "messages") && strings.EqualFold(s[5], "devicebound"):
		m, err := url.PathUnescape(s[3])
		if err != nil || m == "" {
			return "", "", false
		}
		moduleID = m
	default:
		return "", "", false
	}
	d, err := url.PathUnescape(s[1])
	if err != nil || d == "" {
		return "", "", false
	}
	return d, moduleID, true
}
