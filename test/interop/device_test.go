package interop

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
)

// createDevice registers a device in the hub's registry and returns its
// connection string.
func (e *env) createDevice(id string) string {
	e.t.Helper()
	if err := e.hub.CreateDevice(id); err != nil {
		e.t.Fatalf("creating %s: %v", id, err)
	}
	cs, err := e.hub.DeviceConnectionString(id, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *env) runDevice(cs, mode, arg string) []map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := e.nodeCmd(ctx, "device.js", cs, mode, arg).Output()
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			evs = append(evs, m)
		}
	}
	if err != nil && mode != "open" {
		e.t.Fatalf("node device.js %s: %v\nstdout: %s\nstderr: %s", mode, err, out, stderrOf(err))
	}
	return evs
}

// The official Node device sends telemetry with properties over MQTT;
// the hub's telemetry log holds every message with its properties.
func TestNodeDeviceTelemetry(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("node-dev")
	evs := e.runDevice(cs, "telemetry", "10")
	if len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("Node device side: %v", evs)
	}
	log := e.hub.Telemetry()
	got, _ := log.Read(log.PartitionOf("node-dev"), 0, 100)
	if len(got) != 10 {
		t.Fatalf("hub side: the telemetry log holds %d messages; want 10", len(got))
	}
	for i, ev := range got {
		m := ev.Message
		wantAlert := map[bool]string{true: "true", false: "false"}[i%2 == 1]
		if ev.DeviceID != "node-dev" || m.MessageID != "node-"+string(rune('0'+i)) || m.ContentType != "application/json" ||
			m.ContentEncoding != "utf-8" || m.Properties["temperatureAlert"] != wantAlert || m.Properties["sp ace"] != "a/b&c" {
			t.Errorf("hub side: message %d = %+v", i, m)
		}
		var body map[string]float64
		if err := json.Unmarshal(m.Body, &body); err != nil || body["n"] != float64(i) {
			t.Errorf("hub side: body %d = %s", i, m.Body)
		}
	}
}

// A wrong key and an expired token make the official device's open()
// fail with UnauthorizedError.
func TestNodeDeviceRefusedCredentials(t *testing.T) {
	e := newEnv(t)
	good := connstr.MustParse(e.createDevice("node-dev"))
	wrong := *good
	wrong.SharedAccessKey = "d3Jvbmcga2V5IHdyb25nIGtleQ=="
	key, _ := good.Key()
	tok, err := sas.Sign(sas.DeviceResource(good.HostName, good.DeviceID), key, &sas.SignOptions{Expiry: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expired := connstr.ConnectionString{Kind: connstr.KindDevice, HostName: good.HostName, DeviceID: good.DeviceID, SharedAccessSignature: tok.Encode()}
	for name, cs := range map[string]string{"wrong key": wrong.Format(), "expired token": expired.Format()} {
		evs := e.runDevice(cs, "open", "")
		if len(evs) == 0 || evs[0]["event"] != "error" || evs[0]["name"] != "UnauthorizedError" {
			t.Errorf("%s: the Node device reported %v; want UnauthorizedError", name, evs)
		}
	}
	if evs := e.runDevice(good.Format(), "open", ""); len(evs) == 0 || evs[0]["event"] != "opened" {
		t.Errorf("the right key: the Node device reported %v; want opened", evs)
	}
}

// The hub routes direct methods to the official device and twin
// traffic both ways.
func TestNodeDeviceMethodsAndTwin(t *testing.T) {
	e := newEnv(t)
	d := e.startDevice(e.createDevice("node-dev"))
	ctx := context.Background()

	for _, payload := range []string{`"10"`, `10`} {
		status, res, err := e.hub.InvokeMethod(ctx, "node-dev", "", "SetTelemetryInterval", json.RawMessage(payload), 0, 30*time.Second)
		if err != nil || status != 200 || string(res) != `{"Response":"Executed direct method SetTelemetryInterval"}` {
			t.Errorf("SetTelemetryInterval %s: hub got %d %s %v", payload, status, res, err)
		}
		ev := d.waitFor(t, "method")
		if got, _ := json.Marshal(ev["payload"]); string(got) != payload {
			t.Errorf("the Node device got payload %s; want %s", got, payload)
		}
	}
	status, res, err := e.hub.InvokeMethod(ctx, "node-dev", "", "echo", json.RawMessage(`{"a":[1,2,{"b":null}]}`), 0, 30*time.Second)
	if err != nil || status != 200 || string(res) != `{"a":[1,2,{"b":null}]}` {
		t.Errorf("echo: hub got %d %s %v", status, res, err)
	}
	if _, _, err := e.hub.InvokeMethod(ctx, "node-dev", "", "silent", nil, 0, 2*time.Second); !errors.Is(err, hub.ErrMethodTimeout) {
		t.Errorf("a method the device never answers: %v; want ErrMethodTimeout", err)
	}

	twin, err := e.hub.Registry().Twin("node-dev", "")
	if err != nil {
		t.Fatal(err)
	}
	var reported map[string]any
	_ = json.Unmarshal(twin.Properties.Reported, &reported)
	if reported["fromNode"] != true {
		t.Errorf("hub side: reported properties %s lack the Node device's update", twin.Properties.Reported)
	}
	_, delta, err := e.hub.Registry().PatchTwin("node-dev", "", &iothub.TwinUpdate{Properties: &iothub.TwinUpdateProperties{Desired: json.RawMessage(`{"interval":5}`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	e.hub.DesiredChanged("node-dev", "", delta.Patch, delta.Version)
	ev := d.waitFor(t, "desired")
	if delta, _ := ev["delta"].(map[string]any); delta["interval"] != float64(5) {
		t.Errorf("the Node device got desired delta %v; want interval 5", ev["delta"])
	}

	if _, err := e.hub.Registry().Enqueue("node-dev", "", &registry.C2DMessage{MessageID: "c2d-1", Body: []byte("hello node"), Properties: map[string]string{"color": "red"}}); err != nil {
		t.Fatal(err)
	}
	e.hub.C2DEnqueued("node-dev", "")
	ev = d.waitFor(t, "c2d")
	if props, _ := ev["properties"].(map[string]any); ev["messageId"] != "c2d-1" || ev["body"] != "hello node" || props["color"] != "red" {
		t.Errorf("the Node device got C2D %v", ev)
	}
}
