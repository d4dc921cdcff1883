package message

import (
	"strconv"
	"strings"
)

// ParseTopic parses any IoT Hub MQTT topic name this package knows, in
// either direction (see Kind), into a new Topic. The device client uses
// it for what the hub sends; the hub should use ParseDeviceTopic for what
// devices publish.
//
// Parsing is tolerant where SDKs differ and strict where a mistake
// would lose data:
//   - Device and module IDs and input names are taken as they are, not
//     percent-decoded, and must not be empty.
//   - The property bag of a telemetry, C2D or module input topic is
//     everything after the fixed levels (it may contain '/'), decoded by
//     DecodeBag. One leading "?" is skipped: IoT Hub writes none, but
//     some clients do. A topic that ends without the "/" before the bag
//     ("devices/d/messages/events") has an empty bag.
//   - In $iothub topics the query starts at the first "?". The "/"
//     before it may be missing. $rid is opaque and kept exactly as
//     written; it is required, and must not be empty, for method
//     requests and responses and twin requests and responses. $version
//     is optional and must be a non-negative integer. "%24rid" and
//     "%24version" are accepted for "$rid" and "$version"; other query
//     keys are ignored; when a key repeats the last one wins.
//   - A status must be a decimal integer.
//   - A method name is percent-decoded leniently: a '%' that does not
//     start a valid escape is kept, as Python's unquote does.
//
// Topic filters are not topic names: do not pass them here. Errors are
// *TopicError wrapping ErrUnknownTopic, or ErrMalformedTopic (and, for a
// bad bag, the *PropertyError).
func ParseTopic(topic string) (*Topic, error) {
	switch {
	case strings.HasPrefix(topic, "devices/"):
		return parseDeviceLevels(topic)
	case strings.HasPrefix(topic, "$iothub/"):
		return parseIoTHub(topic)
	}
	return nil, unknownTopic(topic, "")
}

// ParseDeviceTopic is ParseTopic restricted to the topics a device may
// publish to (Kind.FromDevice: telemetry, method responses, twin GET and
// twin PATCH reported); any other topic gives a *TopicError wrapping
// ErrUnknownTopic. The hub uses it for every PUBLISH from a device,
// together with BelongsTo to check the device and module IDs.
func ParseDeviceTopic(topic string) (*Topic, error) {
	t, err := ParseTopic(topic)
	if err != nil {
		return nil, err
	}
	if !t.Kind.FromDevice() {
		return nil, unknownTopic(topic, "devices do not publish "+t.Kind.String()+" topics")
	}
	return t, nil
}

// parseDeviceLevels parses the topics under devices/.
func parseDeviceLevels(topic string) (*Topic, error) {
	rest := topic[len("devices/"):]
	deviceID, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return nil, unknownTopic(topic, "")
	}
	if deviceID == "" {
		return nil, malformedTopic(topic, "empty device ID")
	}
	t := &Topic{DeviceID: deviceID}
	var input string
	if r, ok := strings.CutPrefix(rest, "modules/"); ok {
		moduleID, r, ok := strings.Cut(r, "/")
		if !ok {
			return nil, unknownTopic(topic, "")
		}
		if moduleID == "" {
			return nil, malformedTopic(topic, "empty module ID")
		}
		t.ModuleID = moduleID
		rest = r
		if r, ok := strings.CutPrefix(rest, "inputs/"); ok {
			t.Kind = KindModuleInput
			input, rest, _ = strings.Cut(r, "/")
			if input == "" {
				return nil, malformedTopic(topic, "empty input name")
			}
		}
	}
	if t.Kind == 0 {
		if bag, ok := cutLevels(rest, "messages/events"); ok {
			t.Kind, rest = KindTelemetry, bag
		} else if bag, ok := cutLevels(rest, "messages/devicebound"); ok && t.ModuleID == "" {
			t.Kind, rest = KindC2D, bag
		} else {
			return nil, unknownTopic(topic, "")
		}
	}
	m, err := DecodeBag(strings.TrimPrefix(rest, "?"))
	if err != nil {
		return nil, bagTopicError(topic, err)
	}
	m.InputName = input
	t.Message = m
	return t, nil
}

// cutLevels reports whether s is levels or starts with levels + "/" and
// returns what follows.
func cutLevels(s, levels string) (rest string, ok bool) {
	if s == levels {
		return "", true
	}
	if len(s) > len(levels) && s[len(levels)] == '/' && s[:len(levels)] == levels {
		return s[len(levels)+1:], true
	}
	return "", false
}

// parseIoTHub parses the topics under $iothub/.
func parseIoTHub(topic string) (*Topic, error) {
	path, query, _ := strings.Cut(topic, "?")
	path = strings.TrimSuffix(path[len("$iothub/"):], "/")
	t := &Topic{}
	var status string
	switch {
	case path == "twin/GET":
		t.Kind = KindTwinGet
	case path == "twin/PATCH/properties/reported":
		t.Kind = KindTwinPatchReported
	case path == "twin/PATCH/properties/desired":
		t.Kind = KindTwinDesired
	case strings.HasPrefix(path, "twin/res/"):
		t.Kind, status = KindTwinResponse, path[len("twin/res/"):]
	case strings.HasPrefix(path, "methods/res/"):
		t.Kind, status = KindMethodResponse, path[len("methods/res/"):]
	case path == "methods/POST":
		return nil, malformedTopic(topic, "empty method name")
	case strings.HasPrefix(path, "methods/POST/"):
		name := path[len("methods/POST/"):]
		if name == "" {
			return nil, malformedTopic(topic, "empty method name")
		}
		if strings.IndexByte(name, '/') >= 0 {
			return nil, unknownTopic(topic, "")
		}
		t.Kind, t.MethodName = KindMethodRequest, unescapeLenient(name)
	default:
		return nil, unknownTopic(topic, "")
	}

	if t.Kind == KindTwinResponse || t.Kind == KindMethodResponse {
		if status == "" || strings.IndexByte(status, '/') >= 0 {
			return nil, unknownTopic(topic, "")
		}
		n, err := strconv.Atoi(status)
		if err != nil {
			return nil, malformedTopic(topic, "status "+quote(status)+" is not an integer")
		}
		t.Status = n
	}

	var rid, version string
	var hasRID, hasVersion bool
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case "$rid", "%24rid":
			rid, hasRID = v, true
		case "$version", "%24version":
			version, hasVersion = v, true
		}
	}
	if t.Kind != KindTwinDesired {
		if !hasRID || rid == "" {
			return nil, malformedTopic(topic, "missing $rid")
		}
		t.RequestID = rid
	}
	if hasVersion && (t.Kind == KindTwinResponse || t.Kind == KindTwinDesired) {
		v, err := strconv.ParseInt(version, 10, 64)
		if err != nil || v < 0 {
			return nil, malformedTopic(topic, "$version "+quote(version)+" is not a non-negative integer")
		}
		t.Version = v
	}
	return t, nil
}
