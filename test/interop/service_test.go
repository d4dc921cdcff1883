package interop

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The official service SDK (azure-iothub) and the official device SDK
// meet through our hub: registry, methods, twins.
func TestNodeServiceToNodeDevice(t *testing.T) {
	e := newEnv(t)
	if _, err := e.service("create", map[string]string{"deviceId": "node-dev"}); err != nil {
		t.Fatalf("Registry.create: %+v", err)
	}
	res, nerr := e.service("get", map[string]string{"deviceId": "node-dev"})
	if nerr != nil {
		t.Fatalf("Registry.get: %+v", nerr)
	}
	var dev struct {
		DeviceID       string `json:"deviceId"`
		Authentication struct {
			SymmetricKey struct {
				PrimaryKey string `json:"primaryKey"`
			} `json:"symmetricKey"`
		} `json:"authentication"`
	}
	if err := json.Unmarshal(res, &dev); err != nil || dev.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("Registry.get answered %s: %v", res, err)
	}
	cs := "HostName=" + e.hub.HostName() + ";DeviceId=node-dev;SharedAccessKey=" + dev.Authentication.SymmetricKey.PrimaryKey

	// Telemetry from the device lands in the hub's log.
	if evs := e.runDevice(cs, "telemetry", "10"); len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("Node device telemetry: %v", evs)
	}
	if got, _ := e.hub.Telemetry().Read(e.hub.Telemetry().PartitionOf("node-dev"), 0, 100); len(got) != 10 {
		t.Fatalf("hub log holds %d messages; want 10", len(got))
	}

	if _, nerr := e.service("invoke", map[string]any{"deviceId": "node-dev", "methodName": "SetTelemetryInterval", "payload": "10"}); nerr == nil || nerr.StatusCode != 404 {
		t.Errorf("invoke on an offline device: %+v; want a 404 error", nerr)
	}
	d := e.startDevice(cs)
	res, nerr = e.service("invoke", map[string]any{"deviceId": "node-dev", "methodName": "SetTelemetryInterval", "payload": "10"})
	if nerr != nil {
		t.Fatalf("invokeDeviceMethod: %+v", nerr)
	}
	var mr struct {
		Status  int             `json:"status"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(res, &mr); err != nil || mr.Status != 200 || string(mr.Payload) != `{"Response":"Executed direct method SetTelemetryInterval"}` {
		t.Errorf("invokeDeviceMethod result %s", res)
	}
	d.waitFor(t, "method")
	if _, nerr := e.service("invoke", map[string]any{"deviceId": "nobody", "methodName": "x"}); nerr == nil || nerr.Name != "DeviceNotFoundError" {
		t.Errorf("invoke on an unknown device: %+v; want DeviceNotFoundError", nerr)
	}
	if _, nerr := e.service("invoke", map[string]any{"deviceId": "node-dev", "methodName": "silent", "responseTimeoutInSeconds": 5}); nerr == nil || nerr.StatusCode != 504 {
		t.Errorf("invoke on a device that never answers: %+v; want 504", nerr)
	}

	// Twin both ways.
	res, nerr = e.service("getTwin", map[string]string{"deviceId": "node-dev"})
	if nerr != nil || !strings.Contains(string(res), `"fromNode":true`) {
		t.Errorf("Registry.getTwin properties %s (%+v); want the device's reported fromNode", res, nerr)
	}
	if _, nerr = e.service("updateTwin", map[string]any{"deviceId": "node-dev", "patch": map[string]any{"properties": map[string]any{"desired": map[string]any{"interval": 5}}}}); nerr != nil {
		t.Fatalf("twin.update: %+v", nerr)
	}
	ev := d.waitFor(t, "desired")
	if delta, _ := ev["delta"].(map[string]any); delta["interval"] != float64(5) {
		t.Errorf("the device got desired %v; want interval 5", ev["delta"])
	}
}

// iotctl method invoke, run as a user would, against the official
// Node device.
func TestIotctlMethodInvokeOnNodeDevice(t *testing.T) {
	e := newEnv(t)
	if _, _, code := e.iotctl("hub", "device", "create", "--device-id", "node-dev"); code != 0 {
		t.Fatalf("iotctl hub device create exited %d", code)
	}
	// The device iotctl made is seen by the official Registry.
	if _, nerr := e.service("get", map[string]string{"deviceId": "node-dev"}); nerr != nil {
		t.Fatalf("Registry.get of a device iotctl created: %+v", nerr)
	}
	cs, _, code := e.iotctl("hub", "device", "show", "node-dev", "--show-connection-string")
	if code != 0 {
		t.Fatalf("iotctl hub device show exited %d", code)
	}
	if out, _, code := e.iotctl("method", "invoke", "-d", "node-dev", "--name", "SetTelemetryInterval", "--payload", "10"); code != 6 {
		t.Errorf("device offline: exit %d (%s); want 6", code, out)
	}
	e.startDevice(strings.TrimSpace(cs))

	big := `{"data":"` + strings.Repeat("x", 100*1024) + `"}`
	tests := []struct {
		name, method, payload string
		args                  []string
		code                  int
		status                int
		want                  string
	}{
		{"number", "SetTelemetryInterval", "10", nil, 0, 200, `{"Response":"Executed direct method SetTelemetryInterval"}`},
		{"string", "SetTelemetryInterval", `"10"`, nil, 0, 200, `{"Response":"Executed direct method SetTelemetryInterval"}`},
		{"object", "echo", `{"a":1,"b":[true,null]}`, nil, 0, 200, `{"a":1,"b":[true,null]}`},
		{"100 KB", "echo", big, nil, 0, 200, big},
		{"device answers 404", "fail", `null`, nil, 8, 404, `{"Response":"Direct method fail not defined"}`},
		{"bad value", "SetTelemetryInterval", `{"x":1}`, nil, 8, 400, `{"Response":"Invalid parameter"}`},
		{"never answers", "silent", `null`, []string{"--response-timeout", "5s"}, 7, 0, ""},
	}
	for _, tt := range tests {
		args := append([]string{"method", "invoke", "-d", "node-dev", "--name", tt.method, "--payload", tt.payload, "-o", "json"}, tt.args...)
		out, errOut, code := e.iotctl(args...)
		if code != tt.code {
			t.Errorf("%s: exit %d (stderr %q); want %d", tt.name, code, errOut, tt.code)
			continue
		}
		if tt.status == 0 {
			continue
		}
		var res struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Errorf("%s: stdout %q: %v", tt.name, out, err)
			continue
		}
		var got, want bytes.Buffer
		_ = json.Compact(&got, res.Payload)
		_ = json.Compact(&want, []byte(tt.want))
		if res.Status != tt.status || got.String() != want.String() {
			t.Errorf("%s: status %d payload %.80s; want %d %.80s", tt.name, res.Status, got.String(), tt.status, want.String())
		}
	}
	// The quickstart's back-end lines on the table output.
	out, _, code := e.iotctl("method", "invoke", "-d", "node-dev", "--name", "SetTelemetryInterval", "--payload", "10")
	if code != 0 || !strings.Contains(out, "Response status          : 200") {
		t.Errorf("table output (exit %d):\n%s", code, out)
	}
	// A device the official Registry made is seen by iotctl.
	if _, nerr := e.service("create", map[string]string{"deviceId": "made-by-node"}); nerr != nil {
		t.Fatal(nerr)
	}
	if out, _, code := e.iotctl("hub", "device", "show", "made-by-node", "-o", "json"); code != 0 || !strings.Contains(out, `"deviceId": "made-by-node"`) {
		t.Errorf("iotctl hub device show of a Node-made device: exit %d %s", code, out)
	}
}
