package hub

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/pkg/sas"
)

// MQTT over WebSocket at /$iothub/websocket on the hub's one TLS port.
func TestMQTTOverWebSocket(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "wsdev")
	key, _ := cs.Key()
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, cs.DeviceID), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := paho.NewClientOptions().
		AddBroker("wss://" + h.Addrs()[0] + WebSocketPath).
		SetClientID("wsdev").
		SetUsername(cs.HostName + "/wsdev/?api-version=2021-04-12").
		SetPassword(tok.Encode()).
		SetTLSConfig(tlsFor(t, h)).
		SetCleanSession(false).
		SetAutoReconnect(false).
		SetProtocolVersion(4)
	c := paho.NewClient(opts)
	ct := c.Connect()
	if !ct.WaitTimeout(10*time.Second) || ct.Error() != nil {
		t.Fatalf("connect over WebSocket: %v", ct.Error())
	}
	defer c.Disconnect(0)
	pt := c.Publish("devices/wsdev/messages/events/k=v", 1, false, "over websocket")
	if !pt.WaitTimeout(10*time.Second) || pt.Error() != nil {
		t.Fatalf("publish: %v", pt.Error())
	}
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf("wsdev"), 0, 10)
	if len(evs) != 1 || string(evs[0].Message.Body) != "over websocket" || evs[0].Message.Properties["k"] != "v" {
		t.Fatalf("telemetry log = %+v", evs)
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"h.net/dev1/?api-version=2021-04-12", "localhost:8443/d/m/api-version=1", "/", "a//?", "h/dev/?x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, id, ok := parseUsername(s)
		if ok && (host == "" || id == "") {
			t.Fatalf("parseUsername(%q) = %q, %q, true", s, host, id)
		}
	})
}
