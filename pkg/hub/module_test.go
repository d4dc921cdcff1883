package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/sas"
)

// createModule registers a module with generated keys and returns its
// connection string.
func createModule(t *testing.T, h *Hub, deviceID, moduleID string) *connstr.ConnectionString {
	t.Helper()
	if _, err := h.reg.CreateModule(&iothub.Module{DeviceID: deviceID, ModuleID: moduleID}); err != nil {
		t.Fatalf("CreateModule(%s/%s): %v", deviceID, moduleID, err)
	}
	s, err := h.DeviceConnectionString(deviceID, moduleID)
	if err != nil {
		t.Fatal(err)
	}
	return connstr.MustParse(s)
}

// A module connects as {device}/{module}, sends telemetry with its
// module id and answers direct methods addressed to it.
func TestModuleIdentity(t *testing.T) {
	h := startHub(t)
	createDevice(t, h, "dev1")
	cs := createModule(t, h, "dev1", "mod1")
	if cs.Kind != connstr.KindModule {
		t.Fatalf("module connection string kind %v", cs.Kind)
	}
	key, _ := cs.Key()
	tok, _ := sas.Sign(sas.ModuleResource(cs.HostName, "dev1", "mod1"), key, nil)
	modCS := *cs
	modCS.DeviceID = "dev1/mod1" // the MQTT client id of a module
	d, err := dial(t, h, &modCS, tok.Encode())
	if err != nil {
		t.Fatalf("module connect: %v", err)
	}
	d.publish(t, message.TelemetryTopic("dev1", "mod1", &message.Message{}), 1, "from the module")
	evs, _ := h.Telemetry().Read(h.Telemetry().PartitionOf("dev1"), 0, 10)
	if len(evs) != 1 || evs[0].DeviceID != "dev1" || evs[0].ModuleID != "mod1" {
		t.Fatalf("telemetry = %+v", evs)
	}
	d.subscribe(t, message.MethodRequestFilter, 0)
	done := make(chan error, 1)
	go func() {
		st, _, err := h.InvokeMethod(context.Background(), "dev1", "mod1", "ping", json.RawMessage(`1`), 0, 10*time.Second)
		if err == nil && st != 200 {
			err = fmt.Errorf("status %d", st)
		}
		done <- err
	}()
	req := d.next(t)
	tp, _ := message.ParseTopic(req.Topic())
	d.publish(t, message.MethodResponseTopic(200, tp.RequestID), 0, "{}")
	if err := <-done; err != nil {
		t.Fatalf("module method: %v", err)
	}
	// The module's token does not let it pose as its device.
	devCS := *cs
	devCS.ModuleID = ""
	if _, err := dial(t, h, &devCS, tok.Encode()); err == nil {
		t.Error("a module token connected as the device")
	}
}
