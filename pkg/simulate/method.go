package simulate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/device"
)

// SpecError is a malformed command-line specification: a --method
// reply, a --property or a keys file. The command layer maps it to
// exit code 3.
type SpecError struct {
	// What names the specification ("--method", "keys file line 3").
	What string
	// Spec is the text at fault (never a key).
	Spec string
	// Reason says what is wrong.
	Reason string
}

func (e *SpecError) Error() string {
	if e.Spec == "" {
		return "simulate: " + e.What + ": " + e.Reason
	}
	return fmt.Sprintf("simulate: %s %q: %s", e.What, e.Spec, e.Reason)
}

// MethodReply is a fixed answer to a direct method.
type MethodReply struct {
	// Name is the method name.
	Name string
	// Status is the status to answer with.
	Status int
	// Payload is the JSON payload; nil answers with an empty body.
	Payload json.RawMessage
}

// ParseMethodReply parses "NAME=STATUS[:JSON]", for example
// "reboot=200", "reboot=200:{\"ok\":true}" or "fail=500:\"broken\"".
// STATUS is an integer from 100 to 999; JSON must be valid JSON.
// Errors are *SpecError.
func ParseMethodReply(spec string) (MethodReply, error) {
	bad := func(reason string) (MethodReply, error) {
		return MethodReply{}, &SpecError{What: "--method", Spec: spec, Reason: reason}
	}
	name, rest, ok := strings.Cut(spec, "=")
	if !ok || name == "" {
		return bad("want NAME=STATUS[:JSON], e.g. reboot=200:{\"ok\":true}")
	}
	if strings.ContainsAny(name, "/#+? \t") {
		return bad("the method name must not contain '/', '#', '+', '?' or white space")
	}
	st, payload, hasPayload := strings.Cut(rest, ":")
	status, err := strconv.Atoi(st)
	if err != nil || status < 100 || status > 999 {
		return bad("the status must be an integer from 100 to 999")
	}
	r := MethodReply{Name: name, Status: status}
	if hasPayload {
		if !json.Valid([]byte(payload)) {
			return bad("the payload after ':' is not valid JSON (quote strings: \"text\")")
		}
		r.Payload = json.RawMessage(payload)
	}
	return r, nil
}

// SetTelemetryInterval is the quickstart's direct method.
const SetTelemetryInterval = "SetTelemetryInterval"

// maxInterval bounds what SetTelemetryInterval accepts.
const maxInterval = 366 * 24 * time.Hour

// ParseInterval reads a SetTelemetryInterval payload: a JSON number of
// seconds (10 or 0.5) or a JSON string holding one ("10"), as the
// quickstart back end sends. It must be positive and at most a year.
func ParseInterval(payload []byte) (time.Duration, bool) {
	p := bytes.TrimSpace(payload)
	if len(p) > 0 && p[0] == '"' {
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return 0, false
		}
		p = []byte(strings.TrimSpace(s))
	}
	f, err := strconv.ParseFloat(string(p), 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > maxInterval.Seconds() {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// Replies of the quickstart device (Azure-Samples/azure-iot-samples-python
// iot-hub/Quickstarts/simulated-device-2/SimulatedDevice.py).
var (
	setIntervalOK  = device.MethodResponse{Status: 200, Payload: []byte(`{"Response": "Executed direct method SetTelemetryInterval"}`)}
	setIntervalBad = device.MethodResponse{Status: 400, Payload: []byte(`{"Response": "Invalid parameter"}`)}
)

// notDefined is the quickstart's answer to any other method.
func notDefined(name string) device.MethodResponse {
	b, _ := json.Marshal(name)
	return device.MethodResponse{Status: 404, Payload: []byte(`{"Response": "Direct method ` + string(b[1:len(b)-1]) + ` not defined"}`)}
}
