package provisioning

import (
	"net"
	"strings"

	"github.com/iotctl/iotctl/pkg/connstr"
)

// IsAzureHost reports whether host (with or without a port) is one of
// Azure DPS's: the global endpoint or an instance's
// {name}.azure-devices-provisioning.net.
func IsAzureHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.HasSuffix(strings.ToLower(strings.TrimSuffix(host, ".")), ".azure-devices-provisioning.net")
}

// DefaultHost is the DPS device endpoint to use when none is given: the
// host of the hub a connection string (a service's or a device's) names
// when that hub is not Azure's (the local hub serves DPS on its own ports), else
// GlobalHost. An empty or unparsable connection string gives GlobalHost.
func DefaultHost(connectionString string) string {
	if connectionString != "" {
		if cs, err := connstr.Parse(connectionString); err == nil && cs.HostName != "" && !connstr.IsAzureHost(cs.HostName) {
			return cs.HostName
		}
	}
	return GlobalHost
}
