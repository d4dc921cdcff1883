package interop

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/seed"
)

// Keys a test suite would keep in its seed file.
const (
	seedPolicyKey = "Y2ktcG9saWN5LXByaW1hcnkta2V5LTAxMjM0NTY3ODk="
	seedDeviceKey = "dGhlcm1vc3RhdC0xLXByaW1hcnkta2V5LTAxMjM0NTY="
)

const interopSeed = `
sharedAccessPolicies:
  - keyName: ci
    rights: RegistryRead, RegistryWrite, ServiceConnect
    primaryKey: ` + seedPolicyKey + `
devices:
  - deviceId: seeded-dev
    authentication:
      symmetricKey:
        primaryKey: ` + seedDeviceKey + `
    tags: {site: lab}
    properties:
      desired: {telemetryInterval: 5}
`

// TestNodeSDKsAgainstSeededHub: the official Node SDKs work against a
// seeded hub with nothing but what the seed file says: azure-iothub
// with the file's policy and key, azure-iot-device with the file's
// device key.
func TestNodeSDKsAgainstSeededHub(t *testing.T) {
	s, err := seed.Parse([]byte(interopSeed))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, hub.Options{Seed: s})
	e.cs = "HostName=" + e.hub.HostName() + ";SharedAccessKeyName=ci;SharedAccessKey=" + seedPolicyKey

	res, nerr := e.service("get", map[string]string{"deviceId": "seeded-dev"})
	if nerr != nil {
		t.Fatalf("Registry.get with the seeded policy: %+v", nerr)
	}
	var dev struct {
		Status         string `json:"status"`
		Authentication struct {
			SymmetricKey struct {
				PrimaryKey string `json:"primaryKey"`
			} `json:"symmetricKey"`
		} `json:"authentication"`
	}
	if err := json.Unmarshal(res, &dev); err != nil || dev.Authentication.SymmetricKey.PrimaryKey != seedDeviceKey || dev.Status != "enabled" {
		t.Fatalf("Registry.get answered %s (%v); want the seed file's key, enabled", res, err)
	}

	d := e.startDevice("HostName=" + e.hub.HostName() + ";DeviceId=seeded-dev;SharedAccessKey=" + seedDeviceKey)
	res, nerr = e.service("invoke", map[string]any{"deviceId": "seeded-dev", "methodName": "SetTelemetryInterval", "payload": "10"})
	if nerr != nil {
		t.Fatalf("invokeDeviceMethod with the seeded policy: %+v", nerr)
	}
	var mr struct {
		Status int `json:"status"`
	}
	if err := json.Unmarshal(res, &mr); err != nil || mr.Status != 200 {
		t.Errorf("invokeDeviceMethod result %s", res)
	}
	d.waitFor(t, "method")

	res, nerr = e.service("getTwin", map[string]string{"deviceId": "seeded-dev"})
	if nerr != nil {
		t.Fatalf("Registry.getTwin: %+v", nerr)
	}
	if !strings.Contains(string(res), `"telemetryInterval":5`) || !strings.Contains(string(res), `"fromNode":true`) {
		t.Errorf("twin properties %s; want the seeded desired telemetryInterval and the device's reported fromNode", res)
	}

	// A key that is not the seed's is refused.
	e.cs = "HostName=" + e.hub.HostName() + ";SharedAccessKeyName=ci;SharedAccessKey=" + seedDeviceKey
	if _, nerr := e.service("get", map[string]string{"deviceId": "seeded-dev"}); nerr == nil || nerr.StatusCode != 401 {
		t.Errorf("Registry.get with a wrong key for the seeded policy: %+v; want 401", nerr)
	}
}
