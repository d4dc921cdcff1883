package connstr

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iotctl/iotctl/pkg/sas"
)

// Parse reads and validates a connection string.
//
// Syntax, as every IoT Hub SDK reads it: elements are separated by ";",
// each element is split on its first "=" (so values may contain "="),
// and keys are case-sensitive. White space around the whole string,
// around each key and value, and one trailing ";" are ignored (both come with copy and paste); any
// other empty element, an element without "=", an empty value and a
// repeated key are errors.
//
// Strictness depends on the kind:
//   - IoT Hub strings (service, device, module; recognised by HostName)
//     are strict, like the Python SDK: a key outside HostName, DeviceId,
//     ModuleId, SharedAccessKeyName, SharedAccessKey,
//     SharedAccessSignature, GatewayHostName and x509 is an error, with
//     a hint when it differs from a known key only in case.
//   - Event Hub-compatible strings (recognised by Endpoint) are lenient,
//     like the Event Hubs SDKs: unknown keys are kept in Extra.
//
// Validation: HostName is host[:port]; a device string has exactly one
// of SharedAccessKey, SharedAccessSignature and x509=true; a module
// string also has DeviceId; a service string has SharedAccessKeyName
// with SharedAccessKey (or a SharedAccessSignature); keys must be
// standard padded base64; a SharedAccessSignature must parse.
//
// Errors are *ParseError values naming the key and the problem,
// wrapping one of the Err* sentinels; they never contain secrets.
func Parse(s string) (*ConnectionString, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, &ParseError{Reason: "the connection string is empty", Err: ErrEmpty}
	}
	s = strings.TrimSuffix(s, ";")
	kv := map[string]string{}
	var order []string
	for i, el := range strings.Split(s, ";") {
		if strings.TrimSpace(el) == "" {
			return nil, perr(ErrEmptyElement, "", "element %d is empty (two ';' in a row?)", i+1)
		}
		k, v, ok := strings.Cut(el, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return nil, perr(ErrInvalidValue, "", "element %d (%q) has no '='; want Key=Value", i+1, redactElement(k))
		}
		if k == "" {
			return nil, perr(ErrEmptyElement, "", "element %d has an empty key", i+1)
		}
		if _, dup := kv[k]; dup {
			return nil, perr(ErrDuplicateKey, k, "appears more than once")
		}
		if v == "" {
			return nil, perr(ErrInvalidValue, k, "has an empty value")
		}
		kv[k] = v
		order = append(order, k)
	}
	if _, ok := kv[KeyEndpoint]; ok {
		return parseEventHub(kv, order)
	}
	return parseIoTHub(kv, order)
}

// redactElement keeps a malformed element out of error text when it
// may be a secret pasted without its key.
func redactElement(s string) string {
	if len(s) > 24 {
		return s[:8] + "…"
	}
	return s
}

func parseIoTHub(kv map[string]string, order []string) (*ConnectionString, error) {
	for _, k := range order {
		if slices.Contains(iotHubKeys, k) {
			continue
		}
		for _, known := range append(slices.Clone(iotHubKeys), KeyEndpoint, KeyEntityPath) {
			if strings.EqualFold(k, known) {
				return nil, perr(ErrUnknownKey, k, "is not a connection-string key; keys are case-sensitive: did you mean %s?", known)
			}
		}
		return nil, perr(ErrUnknownKey, k, "is not an IoT Hub connection-string key (known: %s)", strings.Join(iotHubKeys, ", "))
	}
	c := &ConnectionString{
		HostName:              kv[KeyHostName],
		DeviceID:              kv[KeyDeviceID],
		ModuleID:              kv[KeyModuleID],
		SharedAccessKeyName:   kv[KeySharedAccessKeyName],
		SharedAccessKey:       kv[KeySharedAccessKey],
		SharedAccessSignature: kv[KeySharedAccessSignature],
		GatewayHostName:       kv[KeyGatewayHostName],
	}
	if c.HostName == "" {
		return nil, perr(ErrMissingKey, KeyHostName, "is missing; every IoT Hub connection string names its hub, e.g. HostName=myhub.azure-devices.net")
	}
	if err := validHost(c.HostName); err != nil {
		return nil, perr(ErrInvalidValue, KeyHostName, "%v", err)
	}
	if c.GatewayHostName != "" {
		if err := validHost(c.GatewayHostName); err != nil {
			return nil, perr(ErrInvalidValue, KeyGatewayHostName, "%v", err)
		}
	}
	if v, ok := kv[KeyX509]; ok {
		if !strings.EqualFold(v, "true") {
			return nil, perr(ErrInvalidValue, KeyX509, "must be true when present (got %q)", v)
		}
		c.X509 = true
	}
	if c.SharedAccessKey != "" {
		if _, err := sas.DecodeKey(c.SharedAccessKey); err != nil {
			return nil, perr(ErrNotBase64Key, KeySharedAccessKey, "is not valid base64 (standard alphabet with '=' padding); copy the key again from the portal or `iotctl hub device show`")
		}
	}
	if c.SharedAccessSignature != "" {
		if _, err := sas.Parse(c.SharedAccessSignature); err != nil {
			return nil, perr(ErrInvalidValue, KeySharedAccessSignature, "is not a SAS token: %v", err)
		}
	}
	methods := 0
	for _, present := range []bool{c.SharedAccessKey != "", c.SharedAccessSignature != "", c.X509} {
		if present {
			methods++
		}
	}
	if methods > 1 {
		return nil, perr(ErrMixedAuth, "", "use only one of SharedAccessKey, SharedAccessSignature and x509=true")
	}
	switch {
	case c.ModuleID != "" && c.DeviceID == "":
		return nil, perr(ErrMissingKey, KeyDeviceID, "is missing; a module connection string names its device too")
	case c.DeviceID != "":
		c.Kind = KindDevice
		if c.ModuleID != "" {
			c.Kind = KindModule
		}
		if methods == 0 {
			return nil, perr(ErrNoCredentials, "", "a %s connection string needs SharedAccessKey, SharedAccessSignature or x509=true", c.Kind)
		}
		if c.SharedAccessKeyName != "" && c.SharedAccessKey == "" {
			return nil, perr(ErrMissingKey, KeySharedAccessKey, "is missing; SharedAccessKeyName goes with SharedAccessKey")
		}
	default:
		c.Kind = KindService
		if c.X509 {
			return nil, perr(ErrMissingKey, KeyDeviceID, "is missing; x509=true is for device and module connection strings")
		}
		if c.GatewayHostName != "" {
			return nil, perr(ErrMissingKey, KeyDeviceID, "is missing; GatewayHostName is for device and module connection strings")
		}
		switch {
		case c.SharedAccessSignature != "":
		case c.SharedAccessKey == "" && c.SharedAccessKeyName == "":
			return nil, perr(ErrNoCredentials, "", "a service connection string needs SharedAccessKeyName and SharedAccessKey (a device string needs DeviceId)")
		case c.SharedAccessKeyName == "":
			return nil, perr(ErrMissingKey, KeySharedAccessKeyName, "is missing; a service connection string names its policy, e.g. SharedAccessKeyName=iothubowner (a device string needs DeviceId)")
		case c.SharedAccessKey == "":
			return nil, perr(ErrMissingKey, KeySharedAccessKey, "is missing")
		}
	}
	return c, nil
}

func parseEventHub(kv map[string]string, order []string) (*ConnectionString, error) {
	c := &ConnectionString{
		Kind:                  KindEventHub,
		Endpoint:              kv[KeyEndpoint],
		EntityPath:            kv[KeyEntityPath],
		SharedAccessKeyName:   kv[KeySharedAccessKeyName],
		SharedAccessKey:       kv[KeySharedAccessKey],
		SharedAccessSignature: kv[KeySharedAccessSignature],
	}
	host, err := parseEndpoint(c.Endpoint)
	if err != nil {
		return nil, perr(ErrInvalidValue, KeyEndpoint, "%v", err)
	}
	c.HostName = host
	if v, ok := kv[KeyUseDevelopmentEmulator]; ok {
		if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
			return nil, perr(ErrInvalidValue, KeyUseDevelopmentEmulator, "must be true or false (got %q)", v)
		}
		c.UseDevelopmentEmulator = strings.EqualFold(v, "true")
	}
	for _, k := range order {
		switch k {
		case KeyEndpoint, KeyEntityPath, KeySharedAccessKeyName, KeySharedAccessKey, KeySharedAccessSignature, KeyUseDevelopmentEmulator:
		case KeyHostName, KeyDeviceID, KeyModuleID, KeyGatewayHostName, KeyX509:
			return nil, perr(ErrUnknownKey, k, "does not belong in an Event Hub-compatible connection string (it has Endpoint)")
		default:
			c.Extra = append(c.Extra, [2]string{k, kv[k]})
		}
	}
	if (c.SharedAccessKeyName == "") != (c.SharedAccessKey == "") {
		missing := KeySharedAccessKey
		if c.SharedAccessKeyName == "" {
			missing = KeySharedAccessKeyName
		}
		return nil, perr(ErrMissingKey, missing, "is missing; SharedAccessKeyName and SharedAccessKey go together")
	}
	if c.SharedAccessKey != "" && c.SharedAccessSignature != "" {
		return nil, perr(ErrMixedAuth, "", "use either SharedAccessKey or SharedAccessSignature, not both")
	}
	if c.SharedAccessKey == "" && c.SharedAccessSignature == "" {
		return nil, perr(ErrNoCredentials, "", "an Event Hub-compatible connection string needs SharedAccessKeyName and SharedAccessKey, or SharedAccessSignature")
	}
	if c.SharedAccessKey != "" {
		if _, err := sas.DecodeKey(c.SharedAccessKey); err != nil {
			return nil, perr(ErrNotBase64Key, KeySharedAccessKey, "is not valid base64 (standard alphabet with '=' padding)")
		}
	}
	return c, nil
}

// MustParse is Parse for tests and constants; it panics on error.
func MustParse(s string) *ConnectionString {
	c, err := Parse(s)
	if err != nil {
		panic(fmt.Sprintf("connstr.MustParse: %v", err))
	}
	return c
}
