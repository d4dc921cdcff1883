package interop

import (
	"encoding/json"
	"testing"
	"time"
)

// `iotctl device simulate --transport amqp|https --c2d-settle reject`
// (the built binary) driven by the official Node service client,
// azure-iothub: the C2D message Client.send puts reaches the simulator,
// which rejects it, and getFeedbackReceiver gets its Rejected feedback.
// Over AMQP invokeDeviceMethod gets the simulator's answer and a desired
// change made with Twin.update is echoed into the reported properties;
// over HTTPS, where IoT Hub has no methods, the call fails as for a
// device that does not listen.
func TestIotctlDeviceTransportsWithNodeService(t *testing.T) {
	for _, tr := range []string{"amqp", "https"} {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			id := "iotctl-" + tr
			cs := e.createDevice(id)
			sim := e.startCLI("device", "simulate", "--transport", tr, "--c2d-settle", "reject", "--connection-string", cs,
				"--interval", "1h", "-o", "json")
			next(sim, 60*time.Second, "connected", func(ev map[string]any) bool { return ev["type"] == "connected" })

			_, _, nerr := e.nodeJSON("c2d.js", e.cs, "send", map[string]any{
				"deviceId": id, "messageId": "from-node", "body": "hello over " + tr, "ack": "full", "properties": map[string]string{"priority": "high"},
			})
			if nerr != nil {
				t.Fatalf("azure-iothub Client.send to iotctl's device failed: %s", jsonOf(nerr))
			}
			ev := next(sim, 60*time.Second, "printed the c2d event", func(ev map[string]any) bool { return ev["type"] == "c2d" })
			props, _ := ev["properties"].(map[string]any)
			if ev["messageId"] != "from-node" || ev["body"] != "hello over "+tr || props["priority"] != "high" {
				t.Errorf("iotctl's device printed %v; Client.send sent from-node \"hello over %s\" with priority=high", ev, tr)
			}
			_, res, nerr := e.nodeJSON("c2d.js", e.cs, "feedback", map[string]any{"timeoutSeconds": 30})
			if nerr != nil {
				t.Fatalf("azure-iothub getFeedbackReceiver got no feedback: %s", jsonOf(nerr))
			}
			var fb struct {
				Records []struct {
					OriginalMessageID string `json:"originalMessageId"`
					StatusCode        string `json:"statusCode"`
					DeviceID          string `json:"deviceId"`
				} `json:"records"`
			}
			if err := json.Unmarshal(res, &fb); err != nil || len(fb.Records) != 1 || fb.Records[0].OriginalMessageID != "from-node" ||
				fb.Records[0].StatusCode != "Rejected" || fb.Records[0].DeviceID != id {
				t.Errorf("the Node feedback receiver got %s (%v); want one Rejected record for from-node of %s", res, err, id)
			}

			res, serr := e.service("invoke", map[string]any{"deviceId": id, "methodName": "SetTelemetryInterval", "payload": "10",
				"responseTimeoutInSeconds": 10})
			if tr == "https" {
				if serr == nil || serr.StatusCode != 404 {
					t.Errorf("invokeDeviceMethod on a device over HTTPS: %s %+v; want 404 (a device over HTTPS never listens for methods)", res, serr)
				}
				return
			}
			var mr struct {
				Status  int             `json:"status"`
				Payload json.RawMessage `json:"payload"`
			}
			if serr != nil || json.Unmarshal(res, &mr) != nil || mr.Status != 200 || string(mr.Payload) != `{"Response":"Executed direct method SetTelemetryInterval"}` {
				t.Errorf("invokeDeviceMethod over AMQP: %s %+v; want 200 and the quickstart's answer", res, serr)
			}
			if _, nerr := e.service("updateTwin", map[string]any{"deviceId": id, "patch": map[string]any{"properties": map[string]any{"desired": map[string]any{"mode": "eco"}}}}); nerr != nil {
				t.Fatalf("Twin.update: %+v", nerr)
			}
			ev = next(sim, 60*time.Second, "echoed the desired change", func(ev map[string]any) bool {
				r, _ := ev["reported"].(map[string]any)
				return ev["type"] == "twin" && r["mode"] == "eco"
			})
			res, serr = e.service("getTwin", map[string]any{"deviceId": id})
			var props2 struct {
				Reported map[string]any `json:"reported"`
			}
			if serr != nil || json.Unmarshal(res, &props2) != nil || props2.Reported["mode"] != "eco" {
				t.Errorf("Registry.getTwin after the echo: %s %+v; want reported mode eco (event %v)", res, serr, ev)
			}
		})
	}
}
