package interop

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// simEvent is one JSON line of `iotctl device simulate -o json`.
type simEvent struct {
	Type            string          `json:"type"`
	DeviceID        string          `json:"deviceId"`
	Seq             int64           `json:"seq"`
	Body            json.RawMessage `json:"body"`
	Method          string          `json:"method"`
	Payload         json.RawMessage `json:"payload"`
	Status          int             `json:"status"`
	Response        json.RawMessage `json:"response"`
	IntervalSeconds float64         `json:"intervalSeconds"`
	Desired         json.RawMessage `json:"desired"`
	Version         int64           `json:"version"`
	Reported        json.RawMessage `json:"reported"`
	ReportedVersion int64           `json:"reportedVersion"`
	Error           string          `json:"error"`
	Stats           *struct {
		Sent, Acked, Errors, Methods, Twin int64
	} `json:"stats"`
	line string
}

// UnmarshalJSON keeps the line with the event, for failure messages.
func (ev *simEvent) UnmarshalJSON(b []byte) error {
	type plain simEvent
	if err := json.Unmarshal(b, (*plain)(ev)); err != nil {
		return err
	}
	ev.line = string(b)
	return nil
}

// simulator is `iotctl device simulate -o json` running in the
// background.
type simulator struct{ *cliProc }

// next returns the next event of type typ for which ok is true (nil ok:
// any), failing after 30 s or when the simulator exits.
func (s simulator) next(typ string, ok func(simEvent) bool, what string) simEvent {
	s.t.Helper()
	return next(s.cliProc, 30*time.Second, what, func(ev simEvent) bool { return ev.Type == typ && (ok == nil || ok(ev)) })
}

// stop interrupts the simulator as Ctrl-C would and returns its exit
// code and its summary event.
func (s simulator) stop() (int, *simEvent) {
	s.t.Helper()
	code := s.interrupt(30 * time.Second)
	var summary *simEvent
	for line, ok := s.nextLine(); ok; line, ok = s.nextLine() {
		var ev simEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Type == "summary" {
			summary = &ev
		}
	}
	return code, summary
}

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// The official Node service SDK works with `iotctl device simulate`
// through the hub: it invokes the quickstart's SetTelemetryInterval and
// gets the quickstart's answers, reads the reported properties the
// simulator set, and its desired update reaches the simulator, which
// echoes it into reported.
func TestNodeServiceWithIotctlSimulator(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("sim-dev")
	sim := simulator{e.startCLI("device", "simulate", "--connection-string", cs, "--ca-file", e.hub.CAFile(), "-o", "json",
		"--reported", `{"firmware":"1.0"}`)}
	sim.next("connected", nil, "connected")
	rep := sim.next("twin", func(ev simEvent) bool { return ev.Desired == nil }, "set its reported properties")
	if rep.Error != "" || compactJSON(rep.Reported) != `{"firmware":"1.0"}` || rep.ReportedVersion == 0 {
		t.Fatalf("the simulator reported %s", rep.line)
	}
	sim.next("sent", nil, "sent a message")

	// Direct methods from the official service client.
	const ok = `{"Response":"Executed direct method SetTelemetryInterval"}`
	tests := []struct {
		name    string
		method  string
		payload any // as the Node SDK is given it
		wire    string
		status  int
		res     string
		seconds float64
	}{
		{"string payload", "SetTelemetryInterval", "10", `"10"`, 200, ok, 10},
		{"number payload", "SetTelemetryInterval", 10, `10`, 200, ok, 10},
		{"bad value", "SetTelemetryInterval", "ten", `"ten"`, 400, `{"Response":"Invalid parameter"}`, 0},
		{"unknown method", "reboot", nil, `null`, 404, `{"Response":"Direct method reboot not defined"}`, 0},
	}
	for _, tt := range tests {
		res, nerr := e.service("invoke", map[string]any{"deviceId": "sim-dev", "methodName": tt.method, "payload": tt.payload})
		if nerr != nil {
			t.Errorf("%s: the Node SDK's invokeDeviceMethod(%s, %v) failed: %+v\n%s", tt.name, tt.method, tt.payload, nerr, sim.output())
			continue
		}
		ev := sim.next("method", func(ev simEvent) bool { return ev.Method == tt.method }, "answered "+tt.method)
		if compactJSON(ev.Payload) != tt.wire && !(tt.wire == "null" && len(ev.Payload) == 0) {
			t.Errorf("%s: the Node SDK sent %v; the simulator received payload %s; want %s", tt.name, tt.payload, ev.Payload, tt.wire)
		}
		if ev.Status != tt.status || compactJSON(ev.Response) != tt.res || ev.IntervalSeconds != tt.seconds {
			t.Errorf("%s: the simulator answered %d %s (interval %vs); want %d %s (interval %vs)",
				tt.name, ev.Status, ev.Response, ev.IntervalSeconds, tt.status, tt.res, tt.seconds)
		}
		var mr struct {
			Status  int             `json:"status"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(res, &mr); err != nil || mr.Status != tt.status || compactJSON(mr.Payload) != tt.res {
			t.Errorf("%s: the simulator answered %d %s; the Node SDK's invokeDeviceMethod returned %s; want status %d payload %s",
				tt.name, ev.Status, ev.Response, res, tt.status, tt.res)
		}
	}

	// The official Registry reads what the simulator reported.
	reported := func() map[string]any {
		t.Helper()
		res, nerr := e.service("getTwin", map[string]string{"deviceId": "sim-dev"})
		if nerr != nil {
			t.Fatalf("the Node SDK's Registry.getTwin failed: %+v", nerr)
		}
		var props struct {
			Reported map[string]any `json:"reported"`
		}
		if err := json.Unmarshal(res, &props); err != nil {
			t.Fatalf("Registry.getTwin returned %s: %v", res, err)
		}
		return props.Reported
	}
	if r := reported(); r["firmware"] != "1.0" {
		t.Errorf("the simulator reported {\"firmware\":\"1.0\"} (version %d); the Node SDK's Registry.getTwin sees reported %v",
			rep.ReportedVersion, r)
	}

	// A desired update from the official Registry reaches the simulator,
	// which echoes it into reported.
	patch := map[string]any{"properties": map[string]any{"desired": map[string]any{"fan": true, "setpoint": 21.5}}}
	if _, nerr := e.service("updateTwin", map[string]any{"deviceId": "sim-dev", "patch": patch}); nerr != nil {
		t.Fatalf("the Node SDK's twin.update(desired) failed: %+v", nerr)
	}
	ev := sim.next("twin", func(ev simEvent) bool { return ev.Desired != nil }, "received the desired update the Node SDK made")
	var desired map[string]any
	_ = json.Unmarshal(ev.Desired, &desired)
	if desired["fan"] != true || desired["setpoint"] != 21.5 || ev.Version == 0 {
		t.Errorf("the Node SDK set desired fan=true setpoint=21.5; the simulator received %s (version %d)", ev.Desired, ev.Version)
	}
	if ev.Error != "" || compactJSON(ev.Reported) != `{"fan":true,"setpoint":21.5}` {
		t.Errorf("the simulator echoed %s into reported (error %q); want {\"fan\":true,\"setpoint\":21.5}", ev.Reported, ev.Error)
	}
	if r := reported(); r["fan"] != true || r["setpoint"] != 21.5 || r["firmware"] != "1.0" {
		t.Errorf("the simulator echoed %s (reported version %d); the Node SDK's Registry.getTwin sees reported %v",
			ev.Reported, ev.ReportedVersion, r)
	}

	code, summary := sim.stop()
	if code != 130 {
		t.Errorf("after an interrupt the simulator exited %d; want 130\n%s", code, sim.output())
	}
	if summary == nil || summary.Stats == nil {
		t.Fatalf("the simulator printed no summary\n%s", sim.output())
	}
	if s := summary.Stats; s.Errors != 0 || s.Methods != int64(len(tests)) || s.Twin != 1 || s.Acked == 0 {
		t.Errorf("summary %s; want no errors, %d methods, 1 twin change, messages acknowledged", summary.line, len(tests))
	}
}
