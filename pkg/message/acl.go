package message

import "strings"

// BelongsTo reports whether a topic name or subscription filter is one
// that the device deviceID (moduleID "") or the module moduleID of that
// device may use. The hub checks it for every PUBLISH and SUBSCRIBE.
//
// The rules:
//   - Every $iothub/... topic and filter belongs to everyone: IoT Hub
//     scopes them to the connection, so the hub must route what it
//     publishes there to the one connection concerned, never fan it out
//     to every subscriber.
//   - A device owns devices/{deviceID}/{x}/... where the level x is
//     neither "modules" nor a wildcard (a wildcard there would reach its
//     modules' topics).
//   - A module owns devices/{deviceID}/modules/{moduleID}/...
//     (devices/{deviceID}/modules/{moduleID}/# included, as CSDK
//     subscribes), but not its device's topics.
//   - The ID levels must match exactly and must not be wildcards, and at
//     least one level must follow them.
//   - Anything else, and everything when deviceID is empty, does not
//     belong.
//
// BelongsTo only checks ownership; ParseDeviceTopic checks that a
// published topic is one IoT Hub knows.
func BelongsTo(topic, deviceID, moduleID string) bool {
	if deviceID == "" {
		return false
	}
	if strings.HasPrefix(topic, "$iothub/") {
		return true
	}
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return false
	}
	id, rest, ok := strings.Cut(rest, "/")
	if !ok || id != deviceID || wildcard(id) {
		return false
	}
	next, _, _ := strings.Cut(rest, "/")
	if moduleID == "" {
		return next != "" && next != "modules" && !wildcard(next)
	}
	rest, ok = strings.CutPrefix(rest, "modules/")
	if !ok {
		return false
	}
	id, rest, ok = strings.Cut(rest, "/")
	return ok && id == moduleID && !wildcard(id) && rest != ""
}

// wildcard reports whether a topic level holds an MQTT wildcard.
func wildcard(level string) bool {
	return strings.ContainsAny(level, "+#")
}
