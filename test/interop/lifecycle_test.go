package interop

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/sas"
)

// nodeLines runs a Node script until it exits (or within elapses) and
// returns the JSON lines it printed.
func (e *env) nodeLines(within time.Duration, script string, args ...string) []map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	out, err := e.nodeCmd(ctx, script, args...).Output()
	var evs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			evs = append(evs, m)
		}
	}
	if err != nil {
		e.t.Logf("node %s: %v\nstderr: %s", script, err, stderrOf(err))
	}
	return evs
}

func findEvent(evs []map[string]any, kind string) map[string]any {
	for _, ev := range evs {
		if ev["event"] == kind {
			return ev
		}
	}
	return nil
}

// MQTT.js, asking for MQTT 5, gets CONNACK 0x01 "unacceptable protocol
// version" and no connection; at MQTT 3.1.1 the same CONNECT connects.
func TestMQTTJSVersion5Refused(t *testing.T) {
	e := newEnv(t)
	cs := connstr.MustParse(e.createDevice("mqttjs"))
	key, _ := cs.Key()
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, "mqttjs"), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"mqtts://" + e.ip + ":8883", "mqttjs", cs.HostName + "/mqttjs/?api-version=2021-04-12", tok.Encode()}

	evs := e.nodeLines(60*time.Second, "mqtt5.js", append(args, "5")...)
	ack := findEvent(evs, "connack")
	if ack == nil || ack["reasonCode"] != float64(1) {
		t.Errorf("MQTT 5: MQTT.js got CONNACK %v; want return code 1 (unacceptable protocol version); events %v", ack, evs)
	}
	if ev := findEvent(evs, "error"); ev == nil || ev["code"] != float64(1) {
		t.Errorf("MQTT 5: MQTT.js reported error %v; want code 1; events %v", ev, evs)
	}
	if findEvent(evs, "connected") != nil || findEvent(evs, "close") == nil {
		t.Errorf("MQTT 5: MQTT.js events %v; want the connection refused and closed", evs)
	}

	evs = e.nodeLines(60*time.Second, "mqtt5.js", append(args, "4")...)
	if ack := findEvent(evs, "connack"); ack == nil || ack["returnCode"] != float64(0) || findEvent(evs, "connected") == nil {
		t.Errorf("MQTT 3.1.1: MQTT.js events %v; want CONNACK 0 and connected", evs)
	}
}

// The official Node device sends 300 reported-property patches back to
// back; the service SDK then reads the last value sent, at the version
// of the 300th patch.
func TestNodeDeviceReportedPatchesInOrder(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("patcher")
	type props struct {
		Reported struct {
			N       *float64 `json:"n"`
			Version int64    `json:"$version"`
		} `json:"reported"`
	}
	read := func() props {
		res, nerr := e.service("getTwin", map[string]any{"deviceId": "patcher"})
		if nerr != nil {
			t.Fatalf("the Node service SDK's getTwin: %+v", nerr)
		}
		var p props
		if err := json.Unmarshal(res, &p); err != nil {
			t.Fatalf("twin properties %s: %v", res, err)
		}
		return p
	}
	before := read().Reported.Version

	const n = 300
	evs := e.nodeLines(120*time.Second, "lifecycle.js", "patches", cs, "300")
	if ev := findEvent(evs, "patched"); ev == nil || ev["count"] != float64(n) {
		t.Fatalf("the Node device did not get its %d patches answered: %v", n, evs)
	}
	after := read()
	if after.Reported.N == nil {
		t.Errorf("no reported n after %d patches; want %d, the last one sent", n, n-1)
	} else if *after.Reported.N != n-1 {
		t.Errorf("reported n = %v after %d patches; want %d, the last one sent", *after.Reported.N, n, n-1)
	}
	if after.Reported.Version != before+n {
		t.Errorf("reported $version %d; want %d, one more per patch", after.Reported.Version, before+n)
	}
}

// The official Node device connected with a fixed token that lives 5 s
// sends a message every 500 ms: they go through while the token is
// valid, then the hub ends the connection, and the SDK's reconnection
// with the same token is refused (UnauthorizedError).
func TestNodeDeviceCutAtTokenExpiry(t *testing.T) {
	e := newEnv(t)
	cs := connstr.MustParse(e.createDevice("short-lived"))
	key, _ := cs.Key()
	// 10 s: long enough for node to start and open on a loaded
	// machine before the token expires (5 s was not, once).
	tok, err := sas.Sign(sas.DeviceResource(cs.HostName, "short-lived"), key, &sas.SignOptions{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	evs := e.nodeLines(60*time.Second, "lifecycle.js", "sas", tok.Encode())
	if findEvent(evs, "opened") == nil || findEvent(evs, "sent") == nil {
		t.Fatalf("the Node device did not connect and send: %v", evs)
	}
	cut := findEvent(evs, "cut")
	if cut == nil || !strings.Contains(cut["message"].(string), "Not authorized") {
		t.Fatalf("the Node device's connection was not cut at its token's expiry: %v", evs)
	}
	if now := time.Now(); !tok.Expired(now) {
		t.Errorf("the Node device was cut at %v, before its token expired at %v", now, tok.Expiry())
	}
	if got, _ := e.hub.Telemetry().Read(e.hub.Telemetry().PartitionOf("short-lived"), 0, 100); len(got) == 0 {
		t.Error("the hub holds no message from the Node device")
	}
	if n := e.hub.Connected(); n != 0 {
		t.Errorf("%d devices connected after the token expired; want 0", n)
	}
}

// `iotctl device simulate --sas-ttl 10s` outlives its tokens: it renews
// each by reconnecting before the hub would cut it, and every message
// is acknowledged.
func TestIotctlSimulateRenewsShortTokens(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("renewer")
	const count = 14 // 14 s of messages, past the first token's 10 s
	p := e.startCLI("device", "simulate", "--connection-string", cs, "--sas-ttl", "10s", "--interval", "1s",
		"--count", "14", "-o", "json")
	type event struct {
		Type    string `json:"type"`
		Reason  string `json:"reason"`
		Attempt int    `json:"attempt"`
		Stats   *struct {
			Sent, Acked, Errors, Reconnects int64
		} `json:"stats"`
	}
	next(p, 30*time.Second, "renewed its token", func(ev event) bool { return ev.Type == "reconnecting" && ev.Reason == "token renewal" })
	summary := next(p, 60*time.Second, "finished", func(ev event) bool { return ev.Type == "summary" })
	if summary.Stats == nil || summary.Stats.Acked != count || summary.Stats.Errors != 0 {
		t.Errorf("summary %+v; want %d messages acknowledged and no error\n%s", summary.Stats, count, p.output())
	}
	p.mu.Lock()
	lines := strings.Join(p.stdout, "\n")
	p.mu.Unlock()
	if strings.Contains(lines, "connection lost") {
		t.Errorf("the hub cut the simulator's connection:\n%s", p.output())
	}
}

// After the official Node device has sent its messages and closed, the
// official service SDK reads the device as Disconnected, with the time
// it disconnected and the time of its last message, not year 1.
func TestNodeServiceSeesLastConnectionTimes(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("visitor")
	start := time.Now().Add(-time.Second) // the times are in milliseconds
	if evs := e.runDevice(cs, "telemetry", "3"); len(evs) == 0 || evs[len(evs)-1]["event"] != "sent" {
		t.Fatalf("the Node device did not send: %v", evs)
	}
	var dev struct {
		ConnectionState            string    `json:"connectionState"`
		ConnectionStateUpdatedTime time.Time `json:"connectionStateUpdatedTime"`
		LastActivityTime           time.Time `json:"lastActivityTime"`
	}
	// The hub may see the connection end just after the device's close
	// returns: read until it says Disconnected.
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, nerr := e.service("get", map[string]any{"deviceId": "visitor"})
		if nerr != nil {
			t.Fatalf("the Node service SDK's get: %+v", nerr)
		}
		if err := json.Unmarshal(res, &dev); err != nil {
			t.Fatalf("device %s: %v", res, err)
		}
		if dev.ConnectionState == "Disconnected" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device is still %s 30 s after it closed", dev.ConnectionState)
		}
	}
	if dev.ConnectionStateUpdatedTime.Before(start) || dev.LastActivityTime.Before(start) || dev.LastActivityTime.After(dev.ConnectionStateUpdatedTime) {
		t.Errorf("connectionStateUpdatedTime %v, lastActivityTime %v; want both since the device ran (%v), its last message before its disconnect",
			dev.ConnectionStateUpdatedTime, dev.LastActivityTime, start)
	}
}
