package registry

import (
	"encoding/json"
	"log/slog"

	"github.com/iotctl/iotctl/internal/bitnames"
)

// Rights is a set of shared access policy permissions.
type Rights uint8

// The permissions a shared access policy can grant.
const (
	RegistryRead Rights = 1 << iota
	RegistryWrite
	ServiceConnect
	DeviceConnect
)

var rightNames = bitnames.Names[Rights]{
	{Bit: RegistryRead, Name: "RegistryRead"},
	{Bit: RegistryWrite, Name: "RegistryWrite"},
	{Bit: ServiceConnect, Name: "ServiceConnect"},
	{Bit: DeviceConnect, Name: "DeviceConnect"},
}

// Has reports whether r includes every right in need.
func (r Rights) Has(need Rights) bool { return r&need == need }

// String writes the rights as IoT Hub does: "RegistryRead, RegistryWrite".
func (r Rights) String() string { return rightNames.Format(r) }

// ParseRights reads a comma-separated list of right names, ignoring
// case and blanks; unknown names make ok false.
func ParseRights(s string) (r Rights, ok bool) { return rightNames.Parse(s) }

// MarshalJSON writes the rights as a string.
func (r Rights) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON reads the rights from a string.
func (r *Rights) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, _ := ParseRights(s)
	*r = v
	return nil
}

// Policy is a shared access policy of the hub. String and LogValue
// redact the keys; JSON encoding does not.
type Policy struct {
	KeyName      string `json:"keyName"`
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
	Rights       Rights `json:"rights"`
}

// String describes the policy without its keys.
func (p Policy) String() string { return p.KeyName + " (" + p.Rights.String() + ")" }

// LogValue implements slog.LogValuer without the keys.
func (p Policy) LogValue() slog.Value {
	return slog.GroupValue(slog.String("keyName", p.KeyName), slog.String("rights", p.Rights.String()))
}

// Stats are the registry statistics of GET /statistics/devices.
type Stats struct {
	TotalDeviceCount    int `json:"totalDeviceCount"`
	EnabledDeviceCount  int `json:"enabledDeviceCount"`
	DisabledDeviceCount int `json:"disabledDeviceCount"`
}
