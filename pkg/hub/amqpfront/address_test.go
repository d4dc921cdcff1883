package amqpfront

import (
	"net/url"
	"slices"
	"testing"
)

func TestNodePath(t *testing.T) {
	for in, want := range map[string]string{
		"/messages/devicebound":                     "messages/devicebound",
		"amqps://myhub.local/messages/deviceBound":  "messages/deviceBound",
		"amqps://myhub.local:5671/messages/events/": "messages/events",
		"messages/events/":                          "messages/events",
		"$cbs":                                      "$cbs",
		"sb://h:5671/iothub/ConsumerGroups/$Default/Partitions/0": "iothub/ConsumerGroups/$Default/Partitions/0",
		"amqps://myhub.local": "",
	} {
		if got := nodePath(in); got != want {
			t.Errorf("nodePath(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestAudiencePath(t *testing.T) {
	for in, want := range map[string]string{
		"myhub.local":         "",
		"localhost:8443":      "",
		"https://myhub.local": "",
		"sb://myhub.local:5671/myhub/$management": "myhub/$management",
		"myhub.local/messages/events":             "messages/events",
	} {
		if got := audiencePath(in); got != want {
			t.Errorf("audiencePath(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestEventHubName(t *testing.T) {
	for in, want := range map[string]string{
		"myhub.azure-devices.net": "myhub",
		"myhub.local:8443":        "myhub",
		"localhost":               "localhost",
		"localhost:8443":          "localhost",
		"127.0.0.1":               "iothub",
		"127.0.0.12:5671":         "iothub",
		"[::1]:8443":              "iothub",
		"::1":                     "iothub",
		"":                        "iothub",
	} {
		if got := EventHubName(in); got != want {
			t.Errorf("EventHubName(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestC2DTarget(t *testing.T) {
	for _, tc := range []struct {
		to, dev, mod string
		ok           bool
	}{
		{"/devices/dev1/messages/devicebound", "dev1", "", true},
		{"/devices/dev1/messages/deviceBound", "dev1", "", true},
		{"devices/dev1/messages/devicebound", "dev1", "", true},
		{"/DEVICES/dev%231/Messages/DeviceBound", "dev#1", "", true},
		{"/devices/dev1/modules/mod%2Fa/messages/devicebound", "dev1", "mod/a", true},
		{"/devices//messages/devicebound", "", "", false},
		{"/devices/dev1/messages/events", "", "", false},
		{"/devices/dev1", "", "", false},
		{"", "", "", false},
		{"/devices/d%zz/messages/devicebound", "", "", false},
	} {
		d, m, ok := c2dTarget(tc.to)
		if d != tc.dev || m != tc.mod || ok != tc.ok {
			t.Errorf("c2dTarget(%q) = %q, %q, %v; want %q, %q, %v", tc.to, d, m, ok, tc.dev, tc.mod, tc.ok)
		}
	}
}

func TestHasPrefix(t *testing.T) {
	if !hasPrefix(segments("a/B/c"), segments("A/b")) || hasPrefix(segments("a/bc"), segments("a/b")) ||
		!hasPrefix(segments("x"), nil) || !slices.Equal(segments("/a//b/"), []string{"a", "b"}) {
		t.Error("hasPrefix/segments")
	}
}

func FuzzC2DTarget(f *testing.F) {
	for _, s := range []string{
		"/devices/dev1/messages/devicebound",
		"/devices/dev%231/modules/m%2F1/messages/deviceBound",
		"amqps://h/devices/d/messages/devicebound",
		"/devices/%/messages/devicebound",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, to string) {
		d, m, ok := c2dTarget(to)
		if !ok {
			if d != "" || m != "" {
				t.Fatalf("c2dTarget(%q) = %q, %q, false; ids must be empty when not ok", to, d, m)
			}
			return
		}
		if d == "" {
			t.Fatalf("c2dTarget(%q) accepted an empty device id", to)
		}
		back := "/devices/" + url.PathEscape(d)
		if m != "" {
			back += "/modules/" + url.PathEscape(m)
		}
		if d2, m2, ok2 := c2dTarget(back + "/messages/devicebound"); !ok2 || d2 != d || m2 != m {
			t.Fatalf("c2dTarget(%q) = %q, %q; re-encoded it gives %q, %q, %v", to, d, m, d2, m2, ok2)
		}
	})
}
