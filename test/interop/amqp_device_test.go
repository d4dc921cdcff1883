package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// The Node SDK's AMQP transports: over TLS (port 5671) and over
// WebSocket (443, /$iothub/websocket).
var amqpTransports = []string{"Amqp", "AmqpWs"}

// The official Node device sends telemetry with properties over AMQP;
// the hub's telemetry log holds every message with its properties, as
// from MQTT.
func TestNodeAMQPDeviceTelemetry(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			cs := e.createDevice("amqp-dev")
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			out, err := e.nodeCmd(ctx, "amqp_device.js", cs, tr, "telemetry", "5").Output()
			if err != nil || !strings.Contains(string(out), `"event":"sent"`) {
				t.Fatalf("node amqp_device.js telemetry: %v\nstdout: %s\nstderr: %s", err, out, stderrOf(err))
			}
			log := e.hub.Telemetry()
			got, _ := log.Read(log.PartitionOf("amqp-dev"), 0, 100)
			if len(got) != 5 {
				t.Fatalf("hub side: the telemetry log holds %d messages; want 5", len(got))
			}
			for i, ev := range got {
				m := ev.Message
				wantAlert := map[bool]string{true: "true", false: "false"}[i%2 == 1]
				if ev.DeviceID != "amqp-dev" || ev.AuthMethod != "sas" || m.MessageID != fmt.Sprintf("amqp-%d", i) ||
					m.CorrelationID != fmt.Sprintf("corr-%d", i) || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" ||
					m.Properties["temperatureAlert"] != wantAlert || m.Properties["sp ace"] != "a/b&c" {
					t.Errorf("hub side: message %d = %+v", i, m)
				}
				var body map[string]float64
				if err := json.Unmarshal(m.Body, &body); err != nil || body["n"] != float64(i) {
					t.Errorf("hub side: body %d = %s", i, m.Body)
				}
			}
		})
	}
}

// The official Node device over AMQP: the twin (GET, reported patch,
// desired notifications), direct methods from the service side, and
// C2D completed, rejected and abandoned, with IoT Hub's feedback.
func TestNodeAMQPDeviceMethodsTwinC2D(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			cs := e.createDevice("amqp-dev")
			if _, _, err := e.hub.Registry().PatchTwin("amqp-dev", "", &iothub.TwinUpdate{Properties: &iothub.TwinUpdateProperties{
				Desired: json.RawMessage(`{"interval":3}`)}}, ""); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			d := &nodeDevice{p: startScript(t, e.nodeCmd(ctx, "amqp_device.js", cs, tr, "serve"), cancel, "the Node AMQP device")}
			tw := d.waitFor(t, "twin")
			if desired, _ := tw["desired"].(map[string]any); desired["interval"] != float64(3) {
				t.Errorf("the Node device's twin GET gave desired %v; want interval 3", tw["desired"])
			}
			d.waitFor(t, "ready")

			// Twin: the reported patch is in the registry, a desired
			// patch reaches the device.
			twin, err := e.hub.Registry().Twin("amqp-dev", "")
			if err != nil {
				t.Fatal(err)
			}
			var reported map[string]any
			_ = json.Unmarshal(twin.Properties.Reported, &reported)
			if reported["fromNode"] != true {
				t.Errorf("hub side: reported properties %s lack the Node device's update", twin.Properties.Reported)
			}
			_, delta, err := e.hub.Registry().PatchTwin("amqp-dev", "", &iothub.TwinUpdate{Properties: &iothub.TwinUpdateProperties{
				Desired: json.RawMessage(`{"interval":5}`)}}, "")
			if err != nil {
				t.Fatal(err)
			}
			e.hub.DesiredChanged("amqp-dev", "", delta.Patch, delta.Version)
			if ev := d.waitFor(t, "desired"); fmt.Sprint(ev["delta"]) != fmt.Sprintf("map[$version:%d interval:5]", delta.Version) {
				t.Errorf("the Node device got desired delta %v; want interval 5 with $version %d", ev["delta"], delta.Version)
			}

			// Methods, invoked from the service side (the Node service SDK).
			res, nerr := e.service("invoke", map[string]any{"deviceId": "amqp-dev", "methodName": "echo", "payload": map[string]any{"a": []any{1, 2}}})
			if nerr != nil || !strings.Contains(string(res), `"status":200`) || !strings.Contains(string(res), `"payload":{"a":[1,2]}`) {
				t.Errorf("service invoke echo: %s %v", res, nerr)
			}
			if ev := d.waitFor(t, "method"); ev["name"] != "echo" {
				t.Errorf("the Node device got method %v", ev)
			}
			if status, body, err := e.hub.InvokeMethod(context.Background(), "amqp-dev", "", "fail", nil, 0, 30*time.Second); err != nil || status != 404 ||
				!strings.Contains(string(body), "not defined") {
				t.Errorf("invoke fail: %d %s %v; want the device's 404", status, body, err)
			}

			// C2D, settled three ways.
			for _, m := range []struct{ id, settle string }{{"m-complete", "complete"}, {"m-reject", "reject"}, {"m-abandon", "abandon"}} {
				if _, err := e.hub.Registry().Enqueue("amqp-dev", "", &registry.C2DMessage{MessageID: m.id, Body: []byte("hello " + m.id),
					Ack: registry.AckFull, Properties: map[string]string{"settle": m.settle}}); err != nil {
					t.Fatal(err)
				}
				e.hub.C2DEnqueued("amqp-dev", "")
			}
			settled := map[string][]string{}
			for len(settled["m-complete"]) < 1 || len(settled["m-reject"]) < 1 || len(settled["m-abandon"]) < 2 {
				ev := d.waitFor(t, "settled")
				id, _ := ev["messageId"].(string)
				action, _ := ev["action"].(string)
				settled[id] = append(settled[id], action)
			}
			if fmt.Sprint(settled) != "map[m-abandon:[abandon complete] m-complete:[complete] m-reject:[reject]]" {
				t.Errorf("the Node device settled %v", settled)
			}
			want := "map[m-abandon:Success m-complete:Success m-reject:Rejected]"
			got := map[string]string{}
			timeout := time.After(30 * time.Second)
			for fmt.Sprint(got) != want {
				// The settlements reach the registry after the device
				// reported them: wait for each feedback record.
				added := e.hub.Registry().FeedbackAdded()
				fb, err := e.hub.Registry().TakeFeedback(10)
				if err != nil {
					t.Fatal(err)
				}
				if fb != nil {
					for _, r := range fb.Records {
						got[r.OriginalMessageID] = string(r.StatusCode)
					}
					continue
				}
				select {
				case <-added:
				case <-timeout:
					t.Fatalf("hub side: feedback %v after 30 s; want %s", got, want)
				}
			}
			if fmt.Sprint(got) != want {
				t.Errorf("hub side: feedback %v; want %s", got, want)
			}
			if n, _ := e.hub.Registry().PendingC2D("amqp-dev", ""); n != 0 {
				t.Errorf("hub side: %d messages still queued", n)
			}
		})
	}
}

// A Node device over AMQP with tokens that last 6 s renews them on the
// live connection (put-token on $cbs); past the first token's expiry
// its links still work and the hub never disconnected it.
func TestNodeAMQPDeviceTokenRenewal(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("amqp-dev")
	ctx, cancel := context.WithCancel(context.Background())
	d := &nodeDevice{p: startScript(t, e.nodeCmd(ctx, "amqp_device.js", cs, "Amqp", "serve", "6"), cancel, "the Node AMQP device")}
	d.waitFor(t, "ready")
	// Renewed every 3 s: after the fourth renewal the first token
	// (6 s) has expired.
	for range 4 {
		d.waitFor(t, "renewed")
	}
	status, body, err := e.hub.InvokeMethod(context.Background(), "amqp-dev", "", "echo", json.RawMessage(`"still here"`), 0, 30*time.Second)
	if err != nil || status != 200 || string(body) != `"still here"` {
		t.Errorf("invoke after the first token expired: %d %s %v", status, body, err)
	}
	d.p.send(map[string]any{"cmd": "send"})
	d.waitFor(t, "sent")
	log := e.hub.Telemetry()
	if got, _ := log.Read(log.PartitionOf("amqp-dev"), 0, 10); len(got) != 1 {
		t.Errorf("hub side: %d messages after the renewal; want 1", len(got))
	}
	// The hub records a disconnection's time; there was none.
	if p, err := e.hub.Registry().Presence("amqp-dev", ""); err != nil || !p.StateUpdated.IsZero() {
		t.Errorf("hub side: the device was disconnected at %v (%v); want never", p.StateUpdated, err)
	}
}

// A Node ModuleClient over AMQP: output messages reach the log as the
// module's with their output name, a method reaches it, its reported
// properties are stored, and a message queued for it arrives as an
// input message.
func TestNodeAMQPModule(t *testing.T) {
	for _, tr := range amqpTransports {
		t.Run(tr, func(t *testing.T) {
			e := newEnv(t)
			e.createDevice("edge-dev")
			if _, err := e.hub.Registry().CreateModule(&iothub.Module{DeviceID: "edge-dev", ModuleID: "filter"}); err != nil {
				t.Fatal(err)
			}
			cs, err := e.hub.DeviceConnectionString("edge-dev", "filter")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			d := &nodeDevice{p: startScript(t, e.nodeCmd(ctx, "amqp_device.js", cs, tr, "module"), cancel, "the Node AMQP module")}
			d.waitFor(t, "ready")
			log := e.hub.Telemetry()
			got, _ := log.Read(log.PartitionOf("edge-dev"), 0, 10)
			if len(got) != 1 || got[0].ModuleID != "filter" || got[0].Message.OutputName != "out1" || got[0].Message.MessageID != "mod-1" {
				t.Fatalf("hub side: events %+v; want mod-1 from module filter on output out1", got)
			}
			status, body, err := e.hub.InvokeMethod(context.Background(), "edge-dev", "filter", "ping", json.RawMessage(`1`), 0, 30*time.Second)
			if err != nil || status != 200 || string(body) != `{"pong":1}` {
				t.Errorf("invoke ping on the module: %d %s %v", status, body, err)
			}
			twin, err := e.hub.Registry().Twin("edge-dev", "filter")
			if err != nil || !strings.Contains(string(twin.Properties.Reported), `"fromModule":true`) {
				t.Errorf("hub side: the module's reported properties %s (%v)", twin.Properties.Reported, err)
			}
			if _, err := e.hub.Registry().Enqueue("edge-dev", "filter", &registry.C2DMessage{MessageID: "in-1", Body: []byte("to module")}); err != nil {
				t.Fatal(err)
			}
			e.hub.C2DEnqueued("edge-dev", "filter")
			if ev := d.waitFor(t, "input"); ev["messageId"] != "in-1" || ev["body"] != "to module" {
				t.Errorf("the Node module got %v", ev)
			}
		})
	}
}
