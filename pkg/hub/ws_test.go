package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/Azure/go-amqp"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotctl/iotctl/internal/wsconn"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// MQTT over WebSocket at /$iothub/websocket and at /mqtt (Paho's default
// path) on the hub's one TLS port.
func TestMQTTOverWebSocket(t *testing.T) {
	for _, path := range []string{WebSocketPath, MQTTWebSocketPath} {
		t.Run(path, func(t *testing.T) { testMQTTOverWebSocket(t, path) })
	}
}

func testMQTTOverWebSocket(t *testing.T, path string) {
	h := startHub(t)
	cs := createDevice(t, h, "wsdev")
	key, _ := cs.Key()
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, cs.DeviceID), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := paho.NewClientOptions().
		AddBroker("wss://" + h.Addrs()[0] + path).
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

// dialAMQPWebSocket connects go-amqp to path on the hub over a
// WebSocket asking for subprotocol ("" for none), with SASL PLAIN as
// the iothubowner policy (its key as the password).
func dialAMQPWebSocket(t *testing.T, h *Hub, path, subprotocol string) (*amqp.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := tlsFor(t, h)
	nc, err := wsconn.Dial(ctx, "wss://"+h.Addrs()[0]+path, &wsconn.DialOptions{
		Subprotocol: subprotocol,
		DialTLS: func(ctx context.Context) (net.Conn, error) {
			d := &tls.Dialer{Config: cfg}
			return d.DialContext(ctx, "tcp", h.Addrs()[0])
		},
	})
	if err != nil {
		return nil, err
	}
	if subprotocol != "" && nc.Subprotocol() != subprotocol {
		t.Errorf("the hub answered subprotocol %q to %q; want the client's spelling", nc.Subprotocol(), subprotocol)
	}
	s, err := h.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	cs := connstr.MustParse(s)
	c, err := amqp.NewConn(ctx, nc, &amqp.ConnOptions{
		HostName: "127.0.0.1",
		SASLType: amqp.SASLTypePlain(cs.SharedAccessKeyName, cs.SharedAccessKey),
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// AMQP over WebSocket (subprotocol AMQPWSB10 in any case, or none, told
// from the first bytes): a C2D message sent by go-amqp through the
// WebSocket reaches an MQTT device.
func TestAMQPOverWebSocket(t *testing.T) {
	h := startHub(t)
	cs := createDevice(t, h, "dev1")
	d, err := dial(t, h, cs, "")
	if err != nil {
		t.Fatal(err)
	}
	d.subscribe(t, message.C2DFilter("dev1"), 1)
	for _, tt := range []struct{ path, subprotocol string }{
		{WebSocketPath, "AMQPWSB10"},
		{WebSocketPath, "amqpwsb10"},
		{WebSocketPath, ""},
		{EventHubWebSocketPath, "AMQPWSB10"},
	} {
		c, err := dialAMQPWebSocket(t, h, tt.path, tt.subprotocol)
		if err != nil {
			t.Fatalf("AMQP over %s with subprotocol %q: %v", tt.path, tt.subprotocol, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sess, err := c.NewSession(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		snd, err := sess.NewSender(ctx, "/messages/devicebound", nil)
		if err != nil {
			t.Fatal(err)
		}
		to := "/devices/dev1/messages/devicebound"
		id := "ws-" + tt.subprotocol + tt.path
		// Larger than one WebSocket read buffer, so that frames span
		// messages and reads.
		body := make([]byte, 20000)
		for i := range body {
			body[i] = byte('a' + i%26)
		}
		if err := snd.Send(ctx, &amqp.Message{Properties: &amqp.MessageProperties{MessageID: id, To: &to}, Data: [][]byte{body}}, nil); err != nil {
			t.Fatalf("send over %s %q: %v", tt.path, tt.subprotocol, err)
		}
		m := d.next(t)
		tp, err := message.ParseTopic(m.Topic())
		if err != nil || tp.Message.MessageID != id || string(m.Payload()) != string(body) {
			t.Errorf("the device got %q (%d bytes); want message %s", m.Topic(), len(m.Payload()), id)
		}
		cancel()
		// The hub may close the socket first when it answers the AMQP
		// close, so a failed TLS close_notify is not an error here.
		_ = c.Close()
	}

	// A WebSocket upgrade on a path the hub does not serve is refused.
	_, err = wsconn.Dial(context.Background(), "wss://"+h.Addrs()[0]+"/elsewhere", &wsconn.DialOptions{
		DialTLS: func(ctx context.Context) (net.Conn, error) {
			return (&tls.Dialer{Config: tlsFor(t, h)}).DialContext(ctx, "tcp", h.Addrs()[0])
		},
	})
	var he *wsconn.HandshakeError
	if !errors.As(err, &he) || he.StatusCode == 0 {
		t.Errorf("upgrade on /elsewhere: %v; want a *wsconn.HandshakeError with the HTTP status", err)
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
