package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/service"
)

// The official Python device client (azure-iot-device, the SDK of
// Microsoft's Python quickstarts), over MQTT on 8883 and over MQTT over
// WebSocket on 443 (websockets=True), trusting the hub's CA through
// server_verification_cert: telemetry with custom properties, a direct
// method from iotctl's service client answered by a Python handler,
// twin get, a reported-properties patch, a desired-properties patch
// notification, and a cloud-to-device message.
func TestPythonDevice(t *testing.T) {
	for _, transport := range []string{"mqtt", "websockets"} {
		t.Run(transport, func(t *testing.T) { testPythonDevice(t, transport) })
	}
}

func testPythonDevice(t *testing.T, transport string) {
	e, py := newPythonEnv(t, hub.Options{})
	svc, err := service.New(connstr.MustParse(e.cs), &service.Options{CAFile: e.hub.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	target := service.Target{DeviceID: "py-dev"}

	d := startPython(t, py, "device.py", e.createDevice("py-dev"), e.hub.CAFile(), transport)
	d.waitFor("ready")
	// The device is the only client of this test's address yet: its
	// connection shows which port, so which transport, it took.
	port := map[string]int{"mqtt": 8883, "websockets": 443}[transport]
	if !establishedTo(t, e.ip, port) {
		t.Fatalf("the Python device (%s) has no connection to %s:%d", transport, e.ip, port)
	}

	// Telemetry with custom properties, as the hub logged it.
	d.send(map[string]any{"op": "send", "body": `{"temperature": 31.5}`, "messageId": "py-msg-1",
		"contentType": "application/json", "contentEncoding": "utf-8",
		"properties": map[string]string{"temperatureAlert": "true", "sp ace": "a/b&c"}})
	d.waitFor("sent")
	log := e.hub.Telemetry()
	evs, _ := log.Read(log.PartitionOf("py-dev"), 0, 10)
	if len(evs) != 1 {
		t.Fatalf("hub side: the telemetry log holds %d messages from py-dev; want 1", len(evs))
	}
	if m := evs[0].Message; evs[0].DeviceID != "py-dev" || evs[0].AuthMethod != "sas" || string(m.Body) != `{"temperature": 31.5}` ||
		m.MessageID != "py-msg-1" || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" ||
		m.Properties["temperatureAlert"] != "true" || m.Properties["sp ace"] != "a/b&c" {
		t.Errorf("hub side: the Python device's message is %+v from %s (%s)", m, evs[0].DeviceID, evs[0].AuthMethod)
	}

	// A direct method, answered by the Python handler.
	res, err := svc.InvokeMethod(ctx, target, service.MethodCall{Name: "SetTelemetryInterval", Payload: json.RawMessage(`10`)})
	if err != nil {
		t.Fatalf("invoking SetTelemetryInterval on the Python device: %v", err)
	}
	if ev := d.waitFor("method"); ev["name"] != "SetTelemetryInterval" || ev["payload"] != float64(10) {
		t.Errorf("the Python handler got %v; want SetTelemetryInterval with payload 10", ev)
	}
	if diff := jsonEqual(t, res.Payload, `{"Response": "Executed direct method SetTelemetryInterval", "interval": 10}`); res.Status != 200 || diff != "" {
		t.Errorf("SetTelemetryInterval answered %d %s; want 200 and the handler's payload (%s)", res.Status, res.Payload, diff)
	}
	res, err = svc.InvokeMethod(ctx, target, service.MethodCall{Name: "SetTelemetryInterval", Payload: json.RawMessage(`"oops"`)})
	if err != nil {
		t.Fatalf("invoking SetTelemetryInterval with a bad payload: %v", err)
	}
	d.waitFor("method")
	if diff := jsonEqual(t, res.Payload, `{"Response": "Invalid parameter"}`); res.Status != 400 || diff != "" {
		t.Errorf("SetTelemetryInterval with a bad payload answered %d %s; want 400 Invalid parameter (%s)", res.Status, res.Payload, diff)
	}

	// Reported properties from the device, read back by the service.
	d.send(map[string]any{"op": "report", "patch": map[string]any{"telemetryInterval": 10, "firmware": map[string]any{"version": "1.2.3"}}})
	d.waitFor("reported")
	tw, err := svc.GetTwin(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	var reported struct {
		TelemetryInterval int               `json:"telemetryInterval"`
		Firmware          map[string]string `json:"firmware"`
		Version           int64             `json:"$version"`
	}
	if err := json.Unmarshal(tw.Properties.Reported, &reported); err != nil || reported.TelemetryInterval != 10 || reported.Firmware["version"] != "1.2.3" {
		t.Errorf("service side: reported properties %s after the Python device's patch; want telemetryInterval 10 and firmware.version 1.2.3", tw.Properties.Reported)
	}

	// Desired properties from the service, notified to the device.
	tw, err = svc.UpdateTwin(ctx, target, service.NewTwinPatch(nil, json.RawMessage(`{"targetTemperature": 21.5}`)), "")
	if err != nil {
		t.Fatal(err)
	}
	var desired struct {
		Version int64 `json:"$version"`
	}
	_ = json.Unmarshal(tw.Properties.Desired, &desired)
	patch, _ := d.waitFor("desired")["patch"].(map[string]any)
	if patch["targetTemperature"] != 21.5 || patch["$version"] != float64(desired.Version) || desired.Version == 0 {
		t.Errorf("the Python device was notified of %v; want targetTemperature 21.5 at $version %d", patch, desired.Version)
	}

	// The whole twin as the device gets it.
	d.send(map[string]any{"op": "twin"})
	twin, _ := d.waitFor("twin")["twin"].(map[string]any)
	des, _ := twin["desired"].(map[string]any)
	rep, _ := twin["reported"].(map[string]any)
	if des["targetTemperature"] != 21.5 || des["$version"] != float64(desired.Version) || rep["telemetryInterval"] != float64(10) || rep["$version"] != float64(reported.Version) {
		t.Errorf("get_twin() = %v; want desired targetTemperature 21.5 ($version %d) and reported telemetryInterval 10 ($version %d)", twin, desired.Version, reported.Version)
	}

	// A cloud-to-device message with its properties.
	if err := svc.SendC2D(ctx, "py-dev", "", &message.Message{Body: []byte("hello python"), MessageID: "c2d-1", CorrelationID: "corr-1",
		Properties: map[string]string{"color": "red", "sp ace": "a/b&c"}}); err != nil {
		t.Fatalf("sending a C2D message to the Python device: %v", err)
	}
	c2d := d.waitFor("c2d")
	props, _ := c2d["properties"].(map[string]any)
	if c2d["body"] != "hello python" || c2d["messageId"] != "c2d-1" || c2d["correlationId"] != "corr-1" || props["color"] != "red" || props["sp ace"] != "a/b&c" {
		t.Errorf("the Python device received C2D %v; want the message the service sent", c2d)
	}
}

// establishedTo reports whether a TCP connection to ip:port is
// established, from /proc/net/tcp (Linux).
func establishedTo(t *testing.T, ip string, port int) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatalf("reading the TCP connections: %v", err)
	}
	a := net.ParseIP(ip).To4()
	// rem_address is the IPv4 address as a little-endian hex word and
	// the port in hex; st 01 is ESTABLISHED.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == want && f[3] == "01" {
			return true
		}
	}
	return false
}

// jsonEqual returns "" when got and want are the same JSON value, else
// a description of the difference.
func jsonEqual(t *testing.T, got json.RawMessage, want string) string {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return "not JSON: " + err.Error()
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if jsonOf(g) != jsonOf(w) {
		return jsonOf(g) + " != " + jsonOf(w)
	}
	return ""
}
