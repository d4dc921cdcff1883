package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// The official Node device over its Http transport sends telemetry one
// by one and in a batch; the hub's telemetry log holds every message
// with its properties.
func TestNodeHTTPDeviceTelemetry(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("http-dev")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := e.nodeCmd(ctx, "http_device.js", cs, "telemetry", "3").Output()
	if err != nil || !strings.Contains(string(out), `"event":"sent"`) {
		t.Fatalf("node http_device.js telemetry: %v\nstdout: %s\nstderr: %s", err, out, stderrOf(err))
	}
	log := e.hub.Telemetry()
	got, _ := log.Read(log.PartitionOf("http-dev"), 0, 100)
	if len(got) != 6 {
		t.Fatalf("hub side: the telemetry log holds %d messages; want 6", len(got))
	}
	for i, ev := range got {
		m := ev.Message
		wantAlert := map[bool]string{true: "true", false: "false"}[i%2 == 1]
		if ev.DeviceID != "http-dev" || ev.AuthMethod != "sas" || m.Properties["temperaturealert"] != wantAlert {
			t.Errorf("hub side: message %d = %+v", i, m)
		}
		// Single messages carry their system properties in headers; the
		// Node SDK's batch carries only the application properties.
		if i < 3 && (m.MessageID != fmt.Sprintf("http-%d", i) || m.ContentType != "application/json" || m.ContentEncoding != "utf-8") {
			t.Errorf("hub side: message %d system properties = %+v", i, m)
		}
		var body map[string]float64
		if err := json.Unmarshal(m.Body, &body); err != nil || body["n"] != float64(i) {
			t.Errorf("hub side: body %d = %s", i, m.Body)
		}
	}
}

// The official Node device polls C2D over its Http transport and
// completes, rejects and abandons messages; the hub's feedback says
// Success and Rejected, and the abandoned message comes again.
func TestNodeHTTPDeviceC2D(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("http-dev")
	ctx, cancel := context.WithCancel(context.Background())
	d := &nodeDevice{p: startScript(t, e.nodeCmd(ctx, "http_device.js", cs, "c2d"), cancel, "the Node Http device")}
	d.waitFor(t, "ready")
	for _, m := range []struct{ id, settle string }{{"m-complete", "complete"}, {"m-reject", "reject"}, {"m-abandon", "abandon"}} {
		if _, err := e.hub.Registry().Enqueue("http-dev", "", &registry.C2DMessage{MessageID: m.id, Body: []byte("hello " + m.id),
			Ack: registry.AckFull, Properties: map[string]string{"settle": m.settle}}); err != nil {
			t.Fatal(err)
		}
	}
	c2d := d.waitFor(t, "c2d")
	if props, _ := c2d["properties"].(map[string]any); c2d["messageId"] != "m-complete" || c2d["body"] != "hello m-complete" || props["settle"] != "complete" {
		t.Errorf("the Node device got %v; want m-complete with its properties", c2d)
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
	fb, err := e.hub.Registry().TakeFeedback(10)
	if err != nil || fb == nil {
		t.Fatalf("feedback: %v %v", fb, err)
	}
	got := map[string]string{}
	for _, r := range fb.Records {
		got[r.OriginalMessageID] = string(r.StatusCode)
	}
	if fmt.Sprint(got) != "map[m-abandon:Success m-complete:Success m-reject:Rejected]" {
		t.Errorf("hub side: feedback %v", got)
	}
	if n, _ := e.hub.Registry().PendingC2D("http-dev", ""); n != 0 {
		t.Errorf("hub side: %d messages still queued", n)
	}
}
