package interop

import (
	"context"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/service"
)

// The official azure-iothub Client with the AmqpWs transport (AMQP over
// wss://HOST:443/$iothub/websocket, subprotocol AMQPWSB10, with its
// bundled rhea and ws) sends a C2D message through the hub's WebSocket
// endpoint to the official Node device; then iotctl's service client
// over WebSocket sends one too and reads the Success feedback of both.
func TestNodeServiceC2DOverWebSocket(t *testing.T) {
	e := newEnv(t)
	d := e.startDevice(e.createDevice("node-dev"))

	_, res, nerr := e.nodeJSON("c2d.js", e.cs, "send", map[string]any{
		"transport": "amqpws", "deviceId": "node-dev", "messageId": "ws-node-1", "body": "hello over amqp over websocket",
		"ack": "full", "properties": map[string]string{"color": "blue"},
	})
	if nerr != nil {
		t.Fatalf("azure-iothub Client.send over AmqpWs failed: %s", jsonOf(nerr))
	}
	t.Logf("Client.send (AmqpWs) result: %s", res)
	ev := d.waitFor(t, "c2d")
	props, _ := ev["properties"].(map[string]any)
	if ev["messageId"] != "ws-node-1" || ev["body"] != "hello over amqp over websocket" || props["color"] != "blue" {
		t.Errorf("the Node device got C2D %v; want the message the Node service sent over AmqpWs", ev)
	}

	c, err := service.New(connstr.MustParse(e.cs), &service.Options{CAFile: e.hub.CAFile(), WebSocket: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.SendC2D(ctx, "node-dev", "", &message.Message{MessageID: "ws-go-1", Body: []byte("from iotctl over websocket"), Ack: message.AckFull}); err != nil {
		t.Fatalf("iotctl SendC2D over WebSocket: %v", err)
	}
	if ev := d.waitFor(t, "c2d"); ev["messageId"] != "ws-go-1" || ev["body"] != "from iotctl over websocket" {
		t.Errorf("the Node device got C2D %v; want the message iotctl sent over WebSocket", ev)
	}
	fb, err := c.FeedbackReceiver(ctx)
	if err != nil {
		t.Fatalf("iotctl FeedbackReceiver over WebSocket: %v", err)
	}
	defer fb.Close(ctx)
	want := map[string]bool{"ws-node-1": true, "ws-go-1": true}
	for len(want) > 0 {
		recs, err := fb.Receive(ctx)
		if err != nil {
			t.Fatalf("feedback over WebSocket: %v (still waiting for %v)", err, want)
		}
		for _, r := range recs {
			if want[r.OriginalMessageID] {
				delete(want, r.OriginalMessageID)
				if r.StatusCode != "Success" || r.DeviceID != "node-dev" {
					t.Errorf("feedback record %+v; want Success from node-dev", r)
				}
			}
		}
	}
}
