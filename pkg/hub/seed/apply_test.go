package seed

import (
	"reflect"
	"slices"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

func openStore(t *testing.T) *registry.Store {
	t.Helper()
	st, err := registry.OpenMemory(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// snapshot is everything Apply could change, etags and versions
// included.
func snapshot(t *testing.T, st *registry.Store) string {
	t.Helper()
	var out []any
	pols, err := st.Policies()
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, pols)
	devs, err := st.Devices(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		tw, err := st.Twin(d.DeviceID, "")
		if err != nil {
			t.Fatal(err)
		}
		mods, err := st.Modules(d.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d, tw, mods)
		for _, m := range mods {
			mt, err := st.Twin(d.DeviceID, m.ModuleID)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, mt)
		}
	}
	return mustJSON(t, out)
}

func mustLoad(t *testing.T, path string) *Seed {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustParse(t *testing.T, in string) *Seed {
	t.Helper()
	s, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplyCreates(t *testing.T) {
	st := openStore(t)
	res, err := mustLoad(t, "testdata/example.yaml").Apply(st)
	if err != nil {
		t.Fatal(err)
	}
	wantCreated := []string{"policy ci", "device thermostat-1", "module thermostat-1/sensor", "device camera-1", "device gateway-1"}
	if !reflect.DeepEqual(res.Created, wantCreated) {
		t.Errorf("created = %v; want %v", res.Created, wantCreated)
	}
	p, err := st.Policy("ci")
	if err != nil || p.PrimaryKey != "Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=" || p.Rights != registry.RegistryRead|registry.RegistryWrite|registry.ServiceConnect {
		t.Errorf("policy ci = %v, %v", p, err)
	}
	d, err := st.Device("thermostat-1")
	if err != nil || d.Authentication.Keys().PrimaryKey != "dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY=" || d.Status != "enabled" {
		t.Fatalf("thermostat-1 = %+v, %v", d, err)
	}
	tw, _ := st.Twin("thermostat-1", "")
	if string(tw.Tags) != `{"floor":2,"site":"lab"}` || !jsonHas(t, tw.Properties.Desired, "telemetryInterval", 5.0) {
		t.Errorf("twin = %s %s", tw.Tags, tw.Properties.Desired)
	}
	mt, _ := st.Twin("thermostat-1", "sensor")
	if !jsonHas(t, mt.Properties.Desired, "sampleRate", 10.0) {
		t.Errorf("module twin desired = %s", mt.Properties.Desired)
	}
	m, _ := st.Module("thermostat-1", "sensor")
	if m.Authentication.Keys().PrimaryKey != "c2Vuc29yLW1vZHVsZS1wcmltYXJ5LWtleS0wMTIzNDU=" || m.Authentication.Keys().SecondaryKey == "" {
		t.Errorf("module keys = %+v", m.Authentication.Keys())
	}
	cam, _ := st.Device("camera-1")
	if cam.Authentication.Type != iothub.AuthSelfSigned || *cam.Authentication.X509Thumbprint.PrimaryThumbprint != "1AE40F72A06A6D9606C1085523D1E3497B691426" {
		t.Errorf("camera-1 auth = %+v", cam.Authentication)
	}
	gw, _ := st.Device("gateway-1")
	if gw.Authentication.Type != iothub.AuthCertificateAuthority {
		t.Errorf("gateway-1 auth = %+v", gw.Authentication)
	}
}

// TestApplyTwiceChangesNothing: a second start with the same file moves
// no etag, generation id, key or $version.
func TestApplyTwiceChangesNothing(t *testing.T) {
	st := openStore(t)
	s := mustLoad(t, "testdata/example.yaml")
	if _, err := s.Apply(st); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, st)
	res, err := s.Apply(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created)+len(res.Updated) != 0 {
		t.Errorf("second Apply created %v, updated %v; want nothing", res.Created, res.Updated)
	}
	if after := snapshot(t, st); after != before {
		t.Errorf("second Apply changed the registry:\nbefore %s\nafter  %s", before, after)
	}
}

// TestApplyRestoresTheFile: what a test run changed in the declared
// parts (keys, status, twin) is put back as the file says at the next
// start; what the file does not declare is left alone.
func TestApplyRestoresTheFile(t *testing.T) {
	st := openStore(t)
	s := mustLoad(t, "testdata/example.yaml")
	if _, err := s.Apply(st); err != nil {
		t.Fatal(err)
	}
	d, _ := st.Device("thermostat-1")
	d.Status = "disabled"
	d.Authentication = &iothub.Authentication{Type: "sas", SymmetricKey: &iothub.SymmetricKey{PrimaryKey: registry.NewKey(), SecondaryKey: registry.NewKey()}}
	if _, err := st.UpdateDevice(d, "*"); err != nil {
		t.Fatal(err)
	}
	_, _, err := st.PatchTwin("thermostat-1", "", &iothub.TwinUpdate{
		Tags:       []byte(`{"site":"home","extra":{"a":1}}`),
		Properties: &iothub.TwinUpdateProperties{Desired: []byte(`{"telemetryInterval":1,"debug":true}`)},
	}, "*")
	if err != nil {
		t.Fatal(err)
	}
	pol, _ := st.Policy("ci")
	pol.PrimaryKey = registry.NewKey()
	if _, err := st.PutPolicy(*pol); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateDevice(&iothub.Device{DeviceID: "made-by-a-test"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"policy ci", "device thermostat-1", "twin thermostat-1"} {
		if !slices.Contains(res.Updated, w) {
			t.Errorf("updated = %v; want %q in it", res.Updated, w)
		}
	}
	d, _ = st.Device("thermostat-1")
	if d.Status != "enabled" || d.Authentication.Keys().PrimaryKey != "dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY=" ||
		d.Authentication.Keys().SecondaryKey != "dGhlcm1vc3RhdC0xLXNlY29uZGFyeS1rZXktMDEyMzQ=" {
		t.Errorf("thermostat-1 = %s, keys %v; want enabled with the file's keys", d.Status, d.Authentication.Keys() != nil)
	}
	tw, _ := st.Twin("thermostat-1", "")
	if string(tw.Tags) != `{"floor":2,"site":"lab"}` {
		t.Errorf("tags = %s; want the file's", tw.Tags)
	}
	if !jsonHas(t, tw.Properties.Desired, "telemetryInterval", 5.0) || jsonHasKey(t, tw.Properties.Desired, "debug") {
		t.Errorf("desired = %s; want the file's", tw.Properties.Desired)
	}
	if pol, _ = st.Policy("ci"); pol.PrimaryKey != "Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=" {
		t.Error("policy ci's primary key is not the file's")
	}
	if _, err := st.Device("made-by-a-test"); err != nil {
		t.Errorf("a device the file does not name was touched: %v", err)
	}
	// And once restored, the next start changes nothing.
	before := snapshot(t, st)
	if _, err := s.Apply(st); err != nil {
		t.Fatal(err)
	}
	if snapshot(t, st) != before {
		t.Error("Apply after the restore changed the registry again")
	}
}

// TestApplyKeepsGeneratedKeys: a device or policy whose keys the file
// leaves out gets generated keys once, and keeps them.
func TestApplyKeepsGeneratedKeys(t *testing.T) {
	st := openStore(t)
	s := mustParse(t, "sharedAccessPolicies:\n  - {keyName: service, rights: ServiceConnect}\ndevices:\n  - deviceId: d\n")
	oldSvc, _ := st.Policy("service")
	if _, err := s.Apply(st); err != nil {
		t.Fatal(err)
	}
	d1, _ := st.Device("d")
	before := snapshot(t, st)
	res, err := s.Apply(st)
	if err != nil {
		t.Fatal(err)
	}
	if snapshot(t, st) != before || len(res.Updated) != 0 {
		t.Errorf("second Apply updated %v", res.Updated)
	}
	if svc, _ := st.Policy("service"); svc.PrimaryKey != oldSvc.PrimaryKey {
		t.Error("the default policy's key changed though the file gives none")
	}
	if d2, _ := st.Device("d"); d2.Authentication.Keys().PrimaryKey != d1.Authentication.Keys().PrimaryKey {
		t.Error("the device's generated key changed")
	}
}

// TestApplyChangesAuthType: a device registered with keys that the file
// declares selfSigned is switched, and back.
func TestApplyChangesAuthType(t *testing.T) {
	st := openStore(t)
	if _, err := st.CreateDevice(&iothub.Device{DeviceID: "cam"}); err != nil {
		t.Fatal(err)
	}
	s := mustParse(t, "devices:\n  - deviceId: cam\n    authentication:\n      x509Thumbprint: {primaryThumbprint: 1ae40f72a06a6d9606c1085523d1e3497b691426}\n")
	if _, err := s.Apply(st); err != nil {
		t.Fatal(err)
	}
	d, _ := st.Device("cam")
	if d.Authentication.Type != iothub.AuthSelfSigned {
		t.Fatalf("auth = %+v; want selfSigned", d.Authentication)
	}
	before := snapshot(t, st)
	if _, err := s.Apply(st); err != nil {
		t.Fatal(err)
	}
	if snapshot(t, st) != before {
		t.Error("a thumbprint in lower case made the second Apply update the device")
	}
	if _, err := mustParse(t, "devices:\n  - deviceId: cam\n").Apply(st); err != nil {
		t.Fatal(err)
	}
	if d, _ = st.Device("cam"); d.Authentication.Keys() == nil {
		t.Errorf("auth = %+v; want sas with generated keys", d.Authentication)
	}
}

func TestConsumerGroupsWith(t *testing.T) {
	s := &Seed{ConsumerGroups: []string{"Archive", "dashboards"}}
	got := s.ConsumerGroupsWith([]string{"archive", "ops"})
	if want := []string{"archive", "ops", "dashboards"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ConsumerGroupsWith = %v; want %v", got, want)
	}
}

func jsonHas(t *testing.T, doc []byte, key string, want any) bool {
	t.Helper()
	var m map[string]any
	if err := jsonUnmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(m[key], want)
}

func jsonHasKey(t *testing.T, doc []byte, key string) bool {
	t.Helper()
	var m map[string]any
	if err := jsonUnmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	_, ok := m[key]
	return ok
}
