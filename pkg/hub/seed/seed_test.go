package seed

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

func TestLoadExample(t *testing.T) {
	for _, f := range []string{"testdata/example.yaml", "testdata/example.json"} {
		t.Run(filepath.Ext(f), func(t *testing.T) {
			s, err := Load(f)
			if err != nil {
				t.Fatalf("Load(%s): %v", f, err)
			}
			if len(s.Policies) != 1 || s.Policies[0].KeyName != "ci" ||
				s.Policies[0].Rights != registry.RegistryRead|registry.RegistryWrite|registry.ServiceConnect ||
				s.Policies[0].PrimaryKey != "Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=" {
				t.Errorf("policies = %+v", s.Policies)
			}
			if !reflect.DeepEqual(s.ConsumerGroups, []string{"dashboards", "archive"}) {
				t.Errorf("consumer groups = %v", s.ConsumerGroups)
			}
			if len(s.Devices) != 3 {
				t.Fatalf("devices = %+v", s.Devices)
			}
			d := s.Devices[0]
			if d.DeviceID != "thermostat-1" || d.Status != "enabled" || d.Auth.Type != iothub.AuthSAS ||
				d.Auth.SymmetricKey.PrimaryKey != "dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY=" {
				t.Errorf("device 0 = %+v", d)
			}
			if string(d.Tags) != `{"floor":2,"site":"lab"}` || string(d.Desired) != `{"telemetryInterval":5}` {
				t.Errorf("twin = %s %s", d.Tags, d.Desired)
			}
			if len(d.Modules) != 1 || d.Modules[0].ModuleID != "sensor" || string(d.Modules[0].Desired) != `{"sampleRate":10}` {
				t.Errorf("modules = %+v", d.Modules)
			}
			if a := s.Devices[1].Auth; a.Type != iothub.AuthSelfSigned || *a.X509Thumbprint.PrimaryThumbprint != "1AE40F72A06A6D9606C1085523D1E3497B691426" {
				t.Errorf("device 1 auth = %+v", a)
			}
			if a := s.Devices[2].Auth; a.Type != iothub.AuthCertificateAuthority {
				t.Errorf("device 2 auth = %+v", a)
			}
		})
	}
}

// TestREADMEExample keeps the README's seed example the tested one.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(example)+"```\n") {
		t.Error("README.md does not show pkg/hub/seed/testdata/example.yaml as a yaml block; copy it there")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"unknown top-level field", "devices: []\nhubs: []\n", 2, `unknown field "hubs" in the seed file; the fields are consumerGroups, devices, enrollmentGroups, enrollments, sharedAccessPolicies`},
		{"wrong case", "Devices: []\n", 1, `did you mean "devices"?`},
		{"unknown device field", "devices:\n  - deviceId: a\n    colour: red\n", 3, `unknown field "colour" in a device`},
		{"unknown auth field", "devices:\n  - deviceId: a\n    authentication:\n      symetricKey: {}\n", 4, `unknown field "symetricKey" in authentication; the fields are symmetricKey, type, x509Thumbprint`},
		{"device without id", "devices:\n  - status: enabled\n", 2, "a device needs a deviceId"},
		{"bad device id", "devices:\n  - deviceId: 'a b'\n", 2, `deviceId "a b" is not valid`},
		{"device twice", "devices:\n  - deviceId: a\n  - deviceId: a\n", 3, `device "a" is declared twice (first at line 2)`},
		{"module twice", "devices:\n  - deviceId: a\n    modules:\n      - moduleId: m\n      - moduleId: m\n", 5, `module "m" of device "a" is declared twice`},
		{"bad status", "devices:\n  - deviceId: a\n    status: on\n", 3, `status "on" is not enabled or disabled`},
		{"bad auth type", "devices:\n  - deviceId: a\n    authentication: {type: token}\n", 3, `authentication type "token" is not one of sas, selfSigned, certificateAuthority`},
		{"selfSigned without thumbprint", "devices:\n  - deviceId: a\n    authentication: {type: selfSigned}\n", 3, "needs x509Thumbprint.primaryThumbprint"},
		{"sas with thumbprint", "devices:\n  - deviceId: a\n    authentication:\n      type: sas\n      x509Thumbprint: {primaryThumbprint: AB}\n", 4, "takes a symmetricKey, not an x509Thumbprint"},
		{"tags not an object", "devices:\n  - deviceId: a\n    tags: [1, 2]\n", 3, "tags must be an object"},
		{"null in desired", "devices:\n  - deviceId: a\n    properties:\n      desired:\n        x:\n          y: null\n", 6, "properties.desired.x.y is null"},
		{"reported", "devices:\n  - deviceId: a\n    properties:\n      reported: {x: 1}\n", 4, `unknown field "reported" in properties`},
		{"field twice", "devices:\n  - deviceId: a\n    deviceId: b\n", 3, `field "deviceId" is given twice`},
		{"devices not a list", "devices: {deviceId: a}\n", 1, "devices must be a list"},
		{"policy without rights", "sharedAccessPolicies:\n  - keyName: ci\n", 2, `policy "ci" needs rights`},
		{"unknown right", "sharedAccessPolicies:\n  - keyName: ci\n    rights: RegistryRead, Everything\n", 3, `unknown right "Everything"`},
		{"bad consumer group", "consumerGroups: ['-x']\n", 1, "starts and ends with a letter or digit"},
		{"$Default", "consumerGroups: [$Default]\n", 1, "$Default always exists"},
		{"two documents", "devices: []\n---\ndevices: []\n", 2, "one document"},
		{"json unknown field", "{\n  \"devices\": [\n    {\"deviceId\": \"a\", \"key\": \"x\"}\n  ]\n}\n", 3, `unknown field "key" in a device`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v; want a *seed.Error", tc.in, err)
			}
			if se.Line != tc.line || !strings.Contains(se.Msg, tc.want) {
				t.Errorf("Parse(%q) = line %d %q; want line %d and %q", tc.in, se.Line, se.Msg, tc.line, tc.want)
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse([]byte("devices:\n  - deviceId: a\n    tags: {site: lab\n"))
	var se *Error
	// yaml.v3 names the line where the construct it could not finish
	// began, which may be one before the broken one.
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "line ") || !strings.Contains(se.Msg, "not valid YAML or JSON") {
		t.Fatalf("Parse = %v; want a *seed.Error naming a line", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "# nothing yet\n", "{}", "null"} {
		s, err := Parse([]byte(in))
		if err != nil || len(s.Devices)+len(s.Policies)+len(s.ConsumerGroups) != 0 {
			t.Errorf("Parse(%q) = %+v, %v; want an empty seed", in, s, err)
		}
	}
}

// TestLoadChecksValues: values only the registry knows how to check (a
// key that is not base64 of 16 to 64 bytes, a twin over its limits) are
// found by Load, with the file and line.
func TestLoadChecksValues(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		want     string
	}{
		{"short key", "devices:\n  - deviceId: a\n  - deviceId: b\n    authentication:\n      symmetricKey: {primaryKey: c2hvcnQ=}\n", 3, "device b: a shared access key must be base64 of 16 to 64 bytes"},
		{"policy key", "sharedAccessPolicies:\n  - keyName: ci\n    rights: ServiceConnect\n    primaryKey: '!!'\n", 2, "policy ci: a shared access key must be base64"},
		{"bad thumbprint", "devices:\n  - deviceId: a\n    authentication:\n      x509Thumbprint: {primaryThumbprint: XYZ}\n", 2, "thumbprint"},
		{"tags too large", "devices:\n  - deviceId: a\n    tags: {big: '" + strings.Repeat("x", 4000) + "', big2: '" + strings.Repeat("x", 4000) + "', big3: '" + strings.Repeat("x", 4000) + "'}\n", 2, "tags would be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "seed.yaml")
			if err := os.WriteFile(f, []byte(tc.in), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(f)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Load = %v; want a *seed.Error", err)
			}
			if se.File != f || se.Line != tc.line || !strings.Contains(se.Msg, tc.want) {
				t.Errorf("Load = %v (line %d); want %s line %d and %q", err, se.Line, f, tc.line, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "seed: "+f+":") {
				t.Errorf("error %q does not start with the file and line", err)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("Load(missing) = %v; want an error naming the file", err)
	}
}

func TestErrorNeverShowsKeys(t *testing.T) {
	key := "bm90LWEtZ29vZC1rZXk=" // base64 of 14 bytes: refused
	s, err := Parse([]byte("devices:\n  - deviceId: a\n    authentication:\n      symmetricKey: {primaryKey: " + key + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Check()
	if err == nil || strings.Contains(err.Error(), key) {
		t.Fatalf("Check = %v; want an error without the key", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
