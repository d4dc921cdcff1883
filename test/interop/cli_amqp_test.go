package interop

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The built iotctl binary's AMQP commands (hub monitor, hub c2d send)
// against the official Node SDKs, and `iotctl device simulate` as the
// device the official service SDK sends to.

// The Node device sends 10 messages over MQTT; `iotctl hub monitor`
// (AMQP, redirected to the Event Hub-compatible endpoint on 5671) reads
// them from the start with their bodies, properties and message ids.
func TestIotctlMonitorReadsNodeDevice(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("node-dev")
	if evs := e.runDevice(cs, "telemetry", "10"); len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("Node device side: it did not send its 10 messages: %v", evs)
	}
	stdout, stderr, code := e.iotctl("hub", "monitor", "--from", "start", "--count", "10", "-o", "json", "--properties", "app,sys", "--timeout", "60s")
	if code != 0 {
		t.Fatalf("iotctl side: hub monitor exited %d after the Node device sent 10 messages\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("iotctl side: hub monitor -o json printed a line that is not JSON: %q (%v)", l, err)
		}
		evs = append(evs, m)
	}
	if len(evs) != 10 {
		t.Fatalf("iotctl hub monitor printed %d events; the Node device sent 10:\n%s", len(evs), stdout)
	}
	part := fmt.Sprint(e.hub.Telemetry().PartitionOf("node-dev"))
	for i, ev := range evs {
		body, _ := ev["body"].(map[string]any)
		props, _ := ev["properties"].(map[string]any)
		sys, _ := ev["systemProperties"].(map[string]any)
		wantAlert := map[bool]string{true: "true", false: "false"}[i%2 == 1]
		if ev["type"] != "event" || ev["deviceId"] != "node-dev" || ev["partition"] != part || ev["sequenceNumber"] != float64(i) ||
			body["n"] != float64(i) || body["temperature"] != float64(20+i) {
			t.Errorf("event %d as iotctl printed it: %v; the Node device sent {\"n\":%d,\"temperature\":%d} as message node-%d (partition %s)", i, ev, i, 20+i, i, part)
		}
		if props["temperatureAlert"] != wantAlert || props["sp ace"] != "a/b&c" {
			t.Errorf("event %d application properties as iotctl printed them: %v; the Node device set temperatureAlert=%s and \"sp ace\"=\"a/b&c\"", i, props, wantAlert)
		}
		if sys["message-id"] != fmt.Sprintf("node-%d", i) || sys["content-type"] != "application/json" || sys["content-encoding"] != "utf-8" {
			t.Errorf("event %d system properties as iotctl printed them: %v; the Node device set message id node-%d, application/json, utf-8", i, sys, i)
		}
	}
}

// `iotctl hub c2d send --property color=red --wait` reaches the official
// Node device (MQTT), whose completion gives the Success feedback that
// --wait reads.
func TestIotctlC2DToNodeDevice(t *testing.T) {
	e := newEnv(t)
	d := e.startDevice(e.createDevice("node-dev"))
	stdout, stderr, code := e.iotctl("hub", "c2d", "send", "-d", "node-dev", "--data", "hello from iotctl", "--property", "color=red",
		"--property", "sp ace=a/b&c", "--message-id", "iotctl-1", "--wait", "--timeout", "60s", "-o", "json")
	if code != 0 {
		t.Fatalf("iotctl hub c2d send --wait exited %d (0 = the device completed it)\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var res struct {
		MessageID string `json:"messageId"`
		Ack       string `json:"ack"`
		Feedback  *struct {
			OriginalMessageID string `json:"originalMessageId"`
			StatusCode        string `json:"statusCode"`
			DeviceID          string `json:"deviceId"`
		} `json:"feedback"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("iotctl hub c2d send -o json printed %q: %v", stdout, err)
	}
	if res.MessageID != "iotctl-1" || res.Ack != "full" || res.Feedback == nil || res.Feedback.StatusCode != "Success" ||
		res.Feedback.OriginalMessageID != "iotctl-1" || res.Feedback.DeviceID != "node-dev" {
		t.Errorf("iotctl side: hub c2d send --wait printed %s; want the Success record of iotctl-1 from node-dev", stdout)
	}
	ev := d.waitFor(t, "c2d")
	props, _ := ev["properties"].(map[string]any)
	if ev["messageId"] != "iotctl-1" || ev["body"] != "hello from iotctl" || props["color"] != "red" || props["sp ace"] != "a/b&c" {
		t.Errorf("Node device side: it got C2D %v; iotctl sent message iotctl-1 \"hello from iotctl\" with color=red and \"sp ace\"=\"a/b&c\"", ev)
	}
}

// `iotctl device simulate -o json` (the built binary, MQTT) prints the
// C2D messages it gets as "c2d" events, whether iotctl (AMQP, with
// --wait for the Success feedback) or the official azure-iothub
// Client.send (AMQP) sent them.
func TestIotctlSimulateReceivesC2D(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("sim-dev")
	sim := e.startCLI("device", "simulate", "--connection-string", cs, "--interval", "1h", "-o", "json")
	next(sim, 60*time.Second, "connected", func(ev map[string]any) bool { return ev["type"] == "connected" })

	stdout, stderr, code := e.iotctl("hub", "c2d", "send", "-d", "sim-dev", "--data", `{"led":"on"}`, "--property", "color=red",
		"--message-id", "from-iotctl", "--wait", "--timeout", "60s")
	if code != 0 {
		t.Errorf("iotctl hub c2d send --wait to the simulator exited %d (0 = the simulator completed it)\nstdout: %s\nstderr: %s\nsimulator:\n%s",
			code, stdout, stderr, sim.output())
	}
	ev := next(sim, 60*time.Second, "printed a c2d event for iotctl's message", func(ev map[string]any) bool { return ev["type"] == "c2d" })
	body, _ := ev["body"].(map[string]any)
	props, _ := ev["properties"].(map[string]any)
	if ev["deviceId"] != "sim-dev" || ev["messageId"] != "from-iotctl" || body["led"] != "on" || props["color"] != "red" {
		t.Errorf("simulator side: it printed %v; iotctl sent from-iotctl {\"led\":\"on\"} with color=red", ev)
	}

	_, _, nerr := e.nodeJSON("c2d.js", e.cs, "send", map[string]any{
		"deviceId": "sim-dev", "messageId": "from-node", "body": "hello from node", "properties": map[string]string{"priority": "high", "sp ace": "a/b&c"},
	})
	if nerr != nil {
		t.Fatalf("Node service side: azure-iothub Client.send to the simulator failed: %s", jsonOf(nerr))
	}
	ev = next(sim, 60*time.Second, "printed a c2d event for Client.send's message", func(ev map[string]any) bool { return ev["type"] == "c2d" })
	props, _ = ev["properties"].(map[string]any)
	if ev["messageId"] != "from-node" || ev["body"] != "hello from node" || props["priority"] != "high" || props["sp ace"] != "a/b&c" {
		t.Errorf("simulator side: it printed %v; azure-iothub Client.send sent from-node \"hello from node\" with priority=high and \"sp ace\"=\"a/b&c\"", ev)
	}
}
