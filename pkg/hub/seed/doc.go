// Package seed declares what a local hub holds at start: devices and
// modules (with their keys or certificate thumbprints, status, tags and
// desired properties), shared access policies with their keys,
// consumer groups of the Event Hub-compatible endpoint, and the
// Device Provisioning Service's enrollments and enrollment groups (with
// the DPS service API's fields; ApplyDPS). A seed file
// is YAML or JSON; the hub applies it at every start, so a test suite
// gets the same hub every time.
//
// The fields are those of the IoT Hub REST API (deviceId, status,
// authentication.symmetricKey.primaryKey, tags, properties.desired),
// as `az iot hub device-identity show` and `az iot hub device-twin
// show` print them, and of `az iot hub policy show` (keyName, rights,
// primaryKey, secondaryKey):
//
//	sharedAccessPolicies:
//	  - keyName: ci
//	    rights: RegistryRead, RegistryWrite, ServiceConnect
//	    primaryKey: c2VlZC1wb2xpY3ktcHJpbWFyeS1rZXk=
//	consumerGroups: [dashboards]
//	devices:
//	  - deviceId: thermostat-1
//	    authentication:
//	      symmetricKey:
//	        primaryKey: dGhlcm1vc3RhdC0xLXByaW1hcnk=
//	    tags: {site: lab}
//	    properties:
//	      desired: {telemetryInterval: 5}
//	    modules:
//	      - moduleId: sensor
//
// Applying is idempotent: what the file declares is made so, and
// nothing changes when it already is (no etag or $version moves).
// Devices, modules and policies the file does not name are left alone;
// an identity's keys, status and authentication type, and the tags and
// desired properties the file gives, are made equal to the file's.
//
// Load reads, parses and checks a file; every problem is an *Error that
// names the line. Apply writes a Seed to a registry.
//
//	s, err := seed.Load("hub-seed.yaml")
//	if err != nil {
//		return err // *seed.Error: "seed: hub-seed.yaml:12:7: unknown field ..."
//	}
//	res, err := s.Apply(store)
package seed
