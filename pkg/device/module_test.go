package device

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
)

// A module over AMQP (its own token, links under
// /devices/{id}/modules/{mid}): its telemetry reaches the hub as the
// module's, and a direct method called on the module gets its handler's
// answer.
func TestAMQPModuleTelemetryAndMethod(t *testing.T) {
	h := startHub(t, nil)
	if err := h.CreateDevice("gw1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Registry().CreateModule(&iothub.Module{DeviceID: "gw1", ModuleID: "filter"}); err != nil {
		t.Fatal(err)
	}
	cs, err := h.DeviceConnectionString("gw1", "filter")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(&Options{ConnectionString: cs, CAFile: h.CAFile(), Transport: TransportAMQP})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	c.HandleMethod("ping", func(_ context.Context, r *MethodRequest) MethodResponse {
		return MethodResponse{Status: 200, Payload: r.Payload}
	})
	if err := c.Connect(testCtx(t)); err != nil {
		t.Fatalf("Connect as module gw1/filter = %v", err)
	}
	if err := c.SendEvent(testCtx(t), &message.Message{Body: []byte("from the module"), OutputName: "out1"}); err != nil {
		t.Fatalf("SendEvent as module = %v", err)
	}
	log := h.Telemetry()
	evs, _ := log.Read(log.PartitionOf("gw1"), 0, 100)
	if len(evs) != 1 || evs[0].DeviceID != "gw1" || evs[0].ModuleID != "filter" || string(evs[0].Message.Body) != "from the module" || evs[0].Message.OutputName != "out1" {
		t.Fatalf("hub logged %+v; want one message of module gw1/filter on output out1", evs)
	}
	status, payload, err := h.InvokeMethod(testCtx(t), "gw1", "filter", "ping", json.RawMessage(`{"n":1}`), 0, waitFor)
	if err != nil || status != 200 || string(payload) != `{"n":1}` {
		t.Errorf("InvokeMethod(gw1/filter, ping) = %d %s %v; want 200 {\"n\":1}", status, payload, err)
	}
	if status, _, err := h.InvokeMethod(testCtx(t), "gw1", "", "ping", nil, 0, waitFor); err == nil && status == 200 {
		t.Errorf("InvokeMethod on the device gw1 answered 200; the module's links must not serve its device")
	}
}
