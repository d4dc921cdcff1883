package provisioning_test

import (
	"testing"

	"github.com/iotctl/iotctl/pkg/provisioning"
)

func TestDefaultHost(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ cs, want string }{
		// A local hub serves DPS on its own ports: its host, port and all.
		{"HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5", "localhost:8443"},
		{"HostName=127.0.0.1;DeviceId=d1;SharedAccessKey=a2V5", "127.0.0.1"},
		// An Azure hub's devices register with Azure's global endpoint.
		{"HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5", provisioning.GlobalHost},
		{"HostName=MyHub.Azure-Devices.NET;DeviceId=d1;SharedAccessKey=a2V5", provisioning.GlobalHost},
		{"", provisioning.GlobalHost},
		{"not a connection string", provisioning.GlobalHost},
	} {
		if got := provisioning.DefaultHost(c.cs); got != c.want {
			t.Errorf("DefaultHost(%q) = %q; want %q", c.cs, got, c.want)
		}
	}
}

func TestIsAzureHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		provisioning.GlobalHost:                      true,
		"global.azure-devices-provisioning.net:443":  true,
		"mydps.azure-devices-provisioning.net.":      true,
		"MyDPS.Azure-Devices-Provisioning.Net":       true,
		"localhost:8443":                             false,
		"azure-devices-provisioning.net.example.com": false,
		"myhub.azure-devices.net":                    false,
	} {
		if got := provisioning.IsAzureHost(host); got != want {
			t.Errorf("IsAzureHost(%q) = %v; want %v", host, got, want)
		}
	}
}
