package amqpfront

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// identityToken signs a token with a device's (moduleID "") or
// module's own primary key for resource, as device SDKs do.
func (h *testHub) identityToken(deviceID, moduleID, resource string, expiry time.Time) *sas.Token {
	h.t.Helper()
	var keys *iothub.SymmetricKey
	if moduleID == "" {
		d, err := h.reg.Device(deviceID)
		if err != nil {
			h.t.Fatal(err)
		}
		keys = d.Authentication.Keys()
	} else {
		m, err := h.reg.Module(deviceID, moduleID)
		if err != nil {
			h.t.Fatal(err)
		}
		keys = m.Authentication.Keys()
	}
	key, err := sas.DecodeKey(keys.PrimaryKey)
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := sas.Sign(resource, key, &sas.SignOptions{Expiry: expiry})
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// put-token is accepted as each official SDK sends it (type, name and
// extra properties differ between them), and what it authorizes is
// what the token's key and scope allow.
func TestPutTokenAsEverySDK(t *testing.T) {
	h := newTestHub(t, nil, nil)
	h.createDevice("dev1", "dev2")
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: "dev1", ModuleID: "mod1"}); err != nil {
		t.Fatal(err)
	}
	hour := time.Now().Add(time.Hour)
	const (
		sbType  = "servicebus.windows.net:sastoken" // Node, Java, C (amqp_cbs.ts, AmqpsCbsSenderLinkHandler.java)
		hubType = "azure-devices.net:sastoken"      // .NET (Microsoft.Azure.Amqp CbsConstants.IotHubSasTokenType)
	)
	hostToken, _ := sas.Parse(h.token("service", testHost, hour))
	moduleRes := sas.ModuleResource(testHost, "dev1", "mod1")
	for _, tc := range []struct {
		name    string
		props   map[string]any
		token   string
		want    int32
		desc    string
		service bool // the token authorizes service links (C2D send)
	}{
		{
			// Microsoft.Azure.Devices IotHubConnection.SendCbsTokenAsync:
			// the audience is the AMQP endpoint's absolute URI, the token
			// the policy's for the host; AmqpCbsLink adds expiration.
			name:  ".NET service client",
			props: map[string]any{"type": hubType, "name": "amqps://myhub.local:5671/", "expiration": hour.UTC()},
			token: h.token("service", "myhub.local", hour), want: 200, desc: "OK", service: true,
		},
		{
			// azure-iot-amqp-base amqp.ts putToken(sr of the parsed
			// token): the name is the token's sr, still URL-encoded
			// (here the ':' of the port).
			name:  "Node service client, name still encoded",
			props: map[string]any{"type": sbType, "name": hostToken.Resource},
			token: hostToken.Encode(), want: 200, desc: "OK", service: true,
		},
		{
			// The Node device transport: a device-key token, name its sr
			// still encoded.
			name:  "Node device client",
			props: map[string]any{"type": sbType, "name": h.identityToken("dev1", "", sas.DeviceResource(testHost, "dev1"), hour).Resource},
			token: h.identityToken("dev1", "", sas.DeviceResource(testHost, "dev1"), hour).Encode(), want: 200, desc: "OK",
		},
		{
			// azure-iot-sdk-java AmqpsCbsSenderLinkHandler: the name is
			// {host}/devices/{deviceId} even for a module's token.
			name:  "Java module client",
			props: map[string]any{"type": sbType, "name": sas.DeviceResource(testHost, "dev1")},
			token: h.identityToken("dev1", "mod1", moduleRes, hour).Encode(), want: 200, desc: "OK",
		},
		{
			name:  "Java module client with a DeviceConnect policy",
			props: map[string]any{"type": sbType, "name": sas.DeviceResource(testHost, "dev1")},
			token: h.token("device", moduleRes, hour), want: 200, desc: "OK",
		},
		{
			// azure-iot-sdk-csharp DeviceIdentity.CreateAudience with
			// the module's URL-encoded id, type and expiration as AMQPNET
			// sends them.
			name:  ".NET module client",
			props: map[string]any{"type": hubType, "name": moduleRes, "expiration": hour.UTC()},
			token: h.identityToken("dev1", "mod1", moduleRes, hour).Encode(), want: 200, desc: "OK",
		},
		{
			name:  "a module's token for another device",
			props: map[string]any{"type": sbType, "name": sas.DeviceResource(testHost, "dev2")},
			token: h.identityToken("dev1", "mod1", moduleRes, hour).Encode(), want: 401, desc: "does not cover",
		},
		{
			name:  "a device token signed with another device's key",
			props: map[string]any{"type": sbType, "name": sas.DeviceResource(testHost, "dev2")},
			token: h.identityToken("dev1", "", sas.DeviceResource(testHost, "dev2"), hour).Encode(), want: 401, desc: "signature",
		},
		{
			name:  "a device token for no device",
			props: map[string]any{"type": sbType, "name": testHost},
			token: h.identityToken("dev1", "", testHost, hour).Encode(), want: 401, desc: "device",
		},
		{
			name:  "a device token of an expired key",
			props: map[string]any{"type": hubType, "name": sas.DeviceResource(testHost, "dev1")},
			token: h.identityToken("dev1", "", sas.DeviceResource(testHost, "dev1"), time.Now().Add(-time.Minute)).Encode(), want: 401, desc: "expired",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial(nil)
			s, err := c.NewSession(testCtx(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			code, desc := newCBS(t, s).putWith(t, tc.props, tc.token)
			if code != tc.want || !strings.Contains(desc, tc.desc) {
				t.Fatalf("put-token = %d %q; want %d with %q", code, desc, tc.want, tc.desc)
			}
			if code != 200 {
				return
			}
			_, err = s.NewSender(testCtx(t), "/messages/devicebound", nil)
			if tc.service && err != nil {
				t.Errorf("C2D sender after the put: %v", err)
			}
			if !tc.service {
				var ae *amqp.Error
				if err == nil {
					t.Errorf("C2D sender after a device's put: accepted; want amqp:unauthorized-access")
				} else if condition(err) != "amqp:unauthorized-access" {
					t.Errorf("C2D sender after a device's put: %v (%T, %v); want amqp:unauthorized-access", err, err, ae)
				}
			}
		})
	}
}
