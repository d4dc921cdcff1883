package message

import "testing"

func TestBelongsTo(t *testing.T) {
	tests := []struct {
		name           string
		topic          string
		device, module string
		want           bool
	}{
		{"own telemetry", "devices/dev1/messages/events/a=1", "dev1", "", true},
		{"own c2d filter", "devices/dev1/messages/devicebound/#", "dev1", "", true},
		{"own messages subtree", "devices/dev1/messages/#", "dev1", "", true},
		{"method filter", MethodRequestFilter, "dev1", "", true},
		{"twin topic", "$iothub/twin/GET/?$rid=1", "dev1", "", true},
		{"any iothub filter", "$iothub/#", "dev1", "", true},
		{"another device", "devices/dev2/messages/events/", "dev1", "", false},
		{"device ID prefix is not enough", "devices/dev10/messages/events/", "dev1", "", false},
		{"wildcard device level", "devices/+/messages/events/", "dev1", "", false},
		{"wildcard device level named like the device", "devices/+/messages/events/", "+", "", false},
		{"everything", "#", "dev1", "", false},
		{"whole device subtree reaches modules", "devices/dev1/#", "dev1", "", false},
		{"single-level wildcard under the device", "devices/dev1/+/events/", "dev1", "", false},
		{"device using its module's topic", "devices/dev1/modules/m1/inputs/#", "dev1", "", false},
		{"device level only", "devices/dev1", "dev1", "", false},
		{"device with trailing slash only", "devices/dev1/", "dev1", "", false},
		{"other namespace", "foo/dev1", "dev1", "", false},
		{"sys topics", "$SYS/#", "dev1", "", false},
		{"iothub without slash", "$iothub", "dev1", "", false},
		{"empty device ID owns nothing", "$iothub/twin/GET/?$rid=1", "", "", false},
		{"module telemetry", "devices/dev1/modules/m1/messages/events/", "dev1", "m1", true},
		{"module input filter", "devices/dev1/modules/m1/inputs/#", "dev1", "m1", true},
		{"module csdk filter", "devices/dev1/modules/m1/#", "dev1", "m1", true},
		{"module twin", "$iothub/twin/res/#", "dev1", "m1", true},
		{"module using its device's topic", "devices/dev1/messages/devicebound/#", "dev1", "m1", false},
		{"another module", "devices/dev1/modules/m2/inputs/#", "dev1", "m1", false},
		{"module of another device", "devices/dev2/modules/m1/inputs/#", "dev1", "m1", false},
		{"wildcard module level", "devices/dev1/modules/+/inputs/#", "dev1", "m1", false},
		{"module level only", "devices/dev1/modules/m1", "dev1", "m1", false},
		{"module with trailing slash only", "devices/dev1/modules/m1/", "dev1", "m1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BelongsTo(tt.topic, tt.device, tt.module); got != tt.want {
				t.Errorf("BelongsTo(%q, %q, %q) = %v; want %v", tt.topic, tt.device, tt.module, got, tt.want)
			}
		})
	}
}
