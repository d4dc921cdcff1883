package connstr

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey=c2VjcmV0",
		"HostName=h.net;DeviceId=my-device;ModuleId=my-module;SharedAccessKey=Zm9vYmFy;GatewayHostName=mygateway",
		"HostName=localhost:8443;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0",
		"HostName=h.net;DeviceId=d;x509=true",
		"HostName=h.net;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=h&sig=a%3D&se=1",
		"Endpoint=sb://e.net/;SharedAccessKeyName=s;SharedAccessKey=c2VjcmV0;EntityPath=x;UseDevelopmentEmulator=true",
		";;=;==",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(c.Format())
		if err != nil {
			t.Fatalf("Parse(%q) ok but Parse(Format()=%q) = %v", s, c.Format(), err)
		}
		if again.Format() != c.Format() || again.Kind != c.Kind {
			t.Fatalf("round trip changed %q into %q", c.Format(), again.Format())
		}
		if c.SharedAccessKey != "" && strings.Contains(c.String(), KeySharedAccessKey+"="+c.SharedAccessKey) {
			t.Fatalf("String() %q leaks the key", c.String())
		}
	})
}
