package dps

import (
	"encoding/json"
	"log/slog"

	"github.com/iotctl/iotctl/internal/bitnames"
)

// Rights are DPS shared access policy permissions (Azure docs,
// articles/iot-dps/how-to-control-access.md).
type Rights uint8

// The permissions of a DPS shared access policy.
const (
	ServiceConfig Rights = 1 << iota
	EnrollmentRead
	EnrollmentWrite
	RegistrationStatusRead
	RegistrationStatusWrite
)

// AllRights is every permission (provisioningserviceowner's).
const AllRights = ServiceConfig | EnrollmentRead | EnrollmentWrite | RegistrationStatusRead | RegistrationStatusWrite

var rightNames = bitnames.Names[Rights]{
	{Bit: ServiceConfig, Name: "ServiceConfig"},
	{Bit: EnrollmentRead, Name: "EnrollmentRead"},
	{Bit: EnrollmentWrite, Name: "EnrollmentWrite"},
	{Bit: RegistrationStatusRead, Name: "RegistrationStatusRead"},
	{Bit: RegistrationStatusWrite, Name: "RegistrationStatusWrite"},
}

// Has reports whether r includes every right in need.
func (r Rights) Has(need Rights) bool { return r&need == need }

// String writes the rights as a comma-separated list.
func (r Rights) String() string { return rightNames.Format(r) }

// MarshalJSON writes the rights as a string.
func (r Rights) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON reads the rights from a string; unknown names are ignored.
func (r *Rights) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	*r, _ = rightNames.Parse(s)
	return nil
}

// Policy is a DPS shared access policy. String and LogValue redact the
// keys; JSON encoding does not.
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
