package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// Twin limits, as IoT Hub documents them
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins).
const (
	MaxTwinDepth       = 10
	MaxTwinKeyBytes    = 1024
	MaxTwinStringBytes = 4 * 1024
	MaxDesiredBytes    = 32 * 1024
	MaxReportedBytes   = 32 * 1024
	MaxTagsBytes       = 8 * 1024
	// Integers must lie in [MinTwinInt, MaxTwinInt] (±2^52).
	MinTwinInt = -4503599627370496
	MaxTwinInt = 4503599627370495
)

// node is one level of a twin section (tags, desired or reported) with
// its metadata. An object node has O set and children in C; a leaf
// holds its value (a string, bool, json.Number or array) in V.
type node struct {
	O bool             `json:"o,omitempty"`
	C map[string]*node `json:"c,omitempty"`
	V any              `json:"v,omitempty"`
	T int64            `json:"t"`           // last updated, Unix milliseconds
	N int64            `json:"n,omitempty"` // desired: the $version of the last update
}

func newObject(t time.Time, ver int64) *node {
	return &node{O: true, C: map[string]*node{}, T: t.UnixMilli(), N: ver}
}

// build makes a node from a decoded JSON value; nulls inside objects
// are dropped.
func build(v any, t int64, ver int64) *node {
	if m, ok := v.(map[string]any); ok {
		n := &node{O: true, C: make(map[string]*node, len(m)), T: t, N: ver}
		for k, cv := range m {
			if cv == nil {
				continue
			}
			n.C[k] = build(cv, t, ver)
		}
		return n
	}
	return &node{V: v, T: t, N: ver}
}

// merge applies a JSON merge patch (RFC 7396) to the object n: null
// deletes, objects merge, anything else replaces. Every node on the
// way to a change gets the new time and version.
func (n *node) merge(patch map[string]any, t int64, ver int64) {
	if n.C == nil {
		n.C = map[string]*node{}
	}
	n.O, n.V, n.T, n.N = true, nil, t, ver
	for k, pv := range patch {
		switch pv := pv.(type) {
		case nil:
			delete(n.C, k)
		case map[string]any:
			if c := n.C[k]; c != nil && c.O {
				c.merge(pv, t, ver)
			} else {
				n.C[k] = build(pv, t, ver)
			}
		default:
			n.C[k] = &node{V: pv, T: t, N: ver}
		}
	}
}

// value is the node's JSON value without metadata.
func (n *node) value() any {
	if n == nil {
		return map[string]any{}
	}
	if !n.O {
		return n.V
	}
	m := make(map[string]any, len(n.C))
	for k, c := range n.C {
		m[k] = c.value()
	}
	return m
}

// metadata is the node's "$metadata" object.
func (n *node) metadata(withVersion bool) map[string]any {
	m := map[string]any{"$lastUpdated": iothub.FormatTime(time.UnixMilli(n.T))}
	if withVersion {
		m["$lastUpdatedVersion"] = n.N
	}
	if n.O {
		for k, c := range n.C {
			m[k] = c.metadata(withVersion)
		}
	}
	return m
}

// document renders a desired or reported section: the values plus
// "$metadata" and "$version".
func (n *node) document(version int64, withVersion bool) map[string]any {
	m, _ := n.value().(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	m["$metadata"] = n.metadata(withVersion)
	m["$version"] = version
	return m
}

// size is the length of the compact JSON of the node's values, the
// measure IoT Hub's twin size limits apply to.
func (n *node) size() int {
	b, err := json.Marshal(n.value())
	if err != nil {
		return 0
	}
	return len(b)
}

// decodeJSON decodes one JSON value with numbers kept as json.Number
// and refuses trailing data.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// parseSection decodes a patch for one twin section. It must be a JSON
// object, or null when allowNull (meaning "delete everything", returned
// as a nil map with isNull true). At its root, "$metadata" and
// "$version" are ignored, so a twin read back can be sent again.
func parseSection(name string, raw json.RawMessage, allowNull bool) (m map[string]any, isNull bool, err error) {
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return nil, false, newErr(ErrArgumentInvalid, "%s is not valid JSON: %v", name, err)
	}
	if v == nil {
		if allowNull {
			return nil, true, nil
		}
		return nil, false, newErr(ErrArgumentInvalid, "%s must be a JSON object", name)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false, newErr(ErrArgumentInvalid, "%s must be a JSON object", name)
	}
	delete(m, "$metadata")
	delete(m, "$version")
	if err := checkValue(name, m, 0); err != nil {
		return nil, false, err
	}
	return m, false, nil
}

// checkValue enforces IoT Hub's twin rules on a decoded patch: key
// characters and length, nesting depth, string length and integer range.
func checkValue(path string, v any, depth int) error {
	switch v := v.(type) {
	case map[string]any:
		depth++
		if depth > MaxTwinDepth {
			return newErr(ErrArgumentInvalid, "%s: nesting deeper than %d levels", clip(path), MaxTwinDepth)
		}
		for k, cv := range v {
			if err := checkKeyName(k); err != nil {
				return newErr(ErrArgumentInvalid, "%s: %v", clip(path), err)
			}
			if err := checkValue(path+"."+k, cv, depth); err != nil {
				return err
			}
		}
	case []any:
		depth++
		if depth > MaxTwinDepth {
			return newErr(ErrArgumentInvalid, "%s: nesting deeper than %d levels", clip(path), MaxTwinDepth)
		}
		for _, cv := range v {
			if err := checkValue(path+"[]", cv, depth); err != nil {
				return err
			}
		}
	case string:
		if len(v) > MaxTwinStringBytes {
			return newErr(ErrArgumentInvalid, "%s: string value longer than %d bytes", clip(path), MaxTwinStringBytes)
		}
	case json.Number:
		s := string(v)
		if !strings.ContainsAny(s, ".eE") {
			i, err := v.Int64()
			if err != nil || i < MinTwinInt || i > MaxTwinInt {
				return newErr(ErrArgumentInvalid, "%s: integer %s out of range", clip(path), clip(s))
			}
		}
	}
	return nil
}

func checkKeyName(k string) error {
	if k == "" {
		return errors.New("empty property name")
	}
	if len(k) > MaxTwinKeyBytes {
		return fmt.Errorf("property name longer than %d bytes", MaxTwinKeyBytes)
	}
	if !utf8.ValidString(k) {
		return errors.New("property name is not UTF-8")
	}
	for _, r := range k {
		switch {
		case r == '.' || r == '$' || r == ' ':
			return fmt.Errorf("property name %q contains %q", clip(k), r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			return fmt.Errorf("property name %q contains a control character", clip(k))
		}
	}
	return nil
}
