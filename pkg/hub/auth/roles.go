package auth

import (
	"fmt"
	"strings"
)

// Action is an IoT Hub data action, as Azure role definitions name
// them ("Microsoft.Devices/IotHubs/devices/read"). The list is in
// Azure's documentation, "Control access to IoT Hub by using Microsoft
// Entra ID" (articles/iot-hub/authenticate-authorize-azure-ad.md).
type Action string

// The data actions of the service API.
const (
	ActionDevicesRead       Action = "Microsoft.Devices/IotHubs/devices/read"
	ActionDevicesWrite      Action = "Microsoft.Devices/IotHubs/devices/write"
	ActionDevicesDelete     Action = "Microsoft.Devices/IotHubs/devices/delete"
	ActionTwinsRead         Action = "Microsoft.Devices/IotHubs/twins/read"
	ActionTwinsWrite        Action = "Microsoft.Devices/IotHubs/twins/write"
	ActionC2DSend           Action = "Microsoft.Devices/IotHubs/cloudToDeviceMessages/send/action"
	ActionC2DFeedback       Action = "Microsoft.Devices/IotHubs/cloudToDeviceMessages/feedback/action"
	ActionC2DPurge          Action = "Microsoft.Devices/IotHubs/cloudToDeviceMessages/queue/purge/action"
	ActionMethodsInvoke     Action = "Microsoft.Devices/IotHubs/directMethods/invoke/action"
	ActionFileNotifications Action = "Microsoft.Devices/IotHubs/fileUpload/notifications/action"
	ActionStatisticsRead    Action = "Microsoft.Devices/IotHubs/statistics/read"
)

// Role is a built-in Azure role that grants IoT Hub data actions.
type Role struct {
	// Name is the role's name in Azure ("IoT Hub Data Contributor").
	Name string
	// ID is the role definition's id, the same in every tenant.
	ID string
	// DataActions are the role's data actions; "*" matches any run of
	// characters, "/" included, as in Azure role definitions.
	DataActions []string
}

// Roles are the built-in roles for the IoT Hub data plane, with the
// ids and data actions of Azure's documentation
// (articles/role-based-access-control/built-in-roles/internet-of-things.md).
var Roles = []Role{
	{Name: "IoT Hub Data Contributor", ID: "4fc6c259-987e-4a07-842e-c321cc9d413f",
		DataActions: []string{"Microsoft.Devices/IotHubs/*"}},
	{Name: "IoT Hub Data Reader", ID: "b447c946-2db7-41ec-983d-d8bf3b1c77e3",
		DataActions: []string{"Microsoft.Devices/IotHubs/*/read", string(ActionFileNotifications)}},
	{Name: "IoT Hub Registry Contributor", ID: "4ea46cd5-c1b2-4a8e-910b-273211f9ce47",
		DataActions: []string{"Microsoft.Devices/IotHubs/devices/*"}},
	{Name: "IoT Hub Twin Contributor", ID: "494bdba2-168f-4f31-a0a1-191d2f7c028c",
		DataActions: []string{"Microsoft.Devices/IotHubs/twins/*"}},
}

// LookupRole finds a built-in role by its name (any case, spaces
// optional: "iot hub data reader", "IoTHubDataReader") or its id.
func LookupRole(s string) (*Role, error) {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", "")) }
	for i := range Roles {
		if norm(Roles[i].Name) == norm(s) || strings.EqualFold(Roles[i].ID, strings.TrimSpace(s)) {
			return &Roles[i], nil
		}
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = r.Name
	}
	return nil, fmt.Errorf("auth: unknown role %q: use one of %s (or its role id)", s, strings.Join(names, ", "))
}

// Allows reports whether the role grants action.
func (r *Role) Allows(action Action) bool {
	for _, pattern := range r.DataActions {
		if wildcardMatch(strings.ToLower(pattern), strings.ToLower(string(action))) {
			return true
		}
	}
	return false
}

// RolesAllowing names the built-in roles that grant action, the
// narrowest first (the ones granting fewest actions of the list above
// come before IoT Hub Data Contributor).
func RolesAllowing(action Action) []string {
	var narrow, broad []string
	for _, r := range Roles {
		if !r.Allows(action) {
			continue
		}
		if r.DataActions[0] == "Microsoft.Devices/IotHubs/*" {
			broad = append(broad, r.Name)
		} else {
			narrow = append(narrow, r.Name)
		}
	}
	return append(narrow, broad...)
}

// wildcardMatch matches s against pattern, where "*" stands for any
// run of characters.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}
