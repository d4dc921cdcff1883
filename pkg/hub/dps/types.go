package dps

import (
	"encoding/json"
	"log/slog"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// Attestation types, as the service API spells them
// (azure-iot-sdk-node provisioning/service/src/interfaces.ts).
const (
	AttestationNone         = "none"
	AttestationTPM          = "tpm"
	AttestationX509         = "x509"
	AttestationSymmetricKey = "symmetricKey"
)

// Provisioning statuses of an enrollment.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Registration statuses (RegistrationOperationStatus.status and
// registrationState.status).
const (
	RegUnassigned = "unassigned"
	RegAssigning  = "assigning"
	RegAssigned   = "assigned"
	RegFailed     = "failed"
	RegDisabled   = "disabled"
)

// Substatuses of an assigned registration.
const (
	SubInitialAssignment  = "initialAssignment"
	SubDeviceDataMigrated = "deviceDataMigrated"
	SubDeviceDataReset    = "deviceDataReset"
	SubReprovisioned      = "reprovisionedToInitialAssignment"
)

// Allocation policies DPS knows. The local service has one hub, so all
// of them assign to it.
var allocationPolicies = []string{"hashed", "geoLatency", "static", "custom"}

// SymmetricKeyAttestation holds an enrollment's keys (base64). Empty
// keys are generated on create, as DPS does.
type SymmetricKeyAttestation struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// String redacts the keys.
func (SymmetricKeyAttestation) String() string { return "{REDACTED REDACTED}" }

// LogValue implements slog.LogValuer with the keys redacted.
func (SymmetricKeyAttestation) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// X509CertificateWithInfo is one certificate of an X.509 attestation:
// the certificate as the client sends it (PEM or base64 DER) and the
// info DPS computes from it.
type X509CertificateWithInfo struct {
	Certificate string               `json:"certificate,omitempty"`
	Info        *X509CertificateInfo `json:"info,omitempty"`
}

// X509CertificateInfo describes a certificate, as DPS reports it.
type X509CertificateInfo struct {
	SubjectName      string `json:"subjectName"`
	SHA1Thumbprint   string `json:"sha1Thumbprint"`
	SHA256Thumbprint string `json:"sha256Thumbprint"`
	IssuerName       string `json:"issuerName"`
	NotBeforeUTC     string `json:"notBeforeUtc"`
	NotAfterUTC      string `json:"notAfterUtc"`
	SerialNumber     string `json:"serialNumber"`
	Version          int    `json:"version"`
}

// X509Certificates is a primary and an optional secondary certificate.
type X509Certificates struct {
	Primary   *X509CertificateWithInfo `json:"primary,omitempty"`
	Secondary *X509CertificateWithInfo `json:"secondary,omitempty"`
}

// X509CAReferences name CA certificates uploaded to DPS.
type X509CAReferences struct {
	Primary   string `json:"primary,omitempty"`
	Secondary string `json:"secondary,omitempty"`
}

// X509Attestation is an X.509 attestation: clientCertificates for an
// individual enrollment, signingCertificates (or caReferences) for a
// group.
type X509Attestation struct {
	ClientCertificates  *X509Certificates `json:"clientCertificates,omitempty"`
	SigningCertificates *X509Certificates `json:"signingCertificates,omitempty"`
	CAReferences        *X509CAReferences `json:"caReferences,omitempty"`
}

// TPMAttestation is a TPM attestation (stored, never accepted).
type TPMAttestation struct {
	EndorsementKey string `json:"endorsementKey"`
	StorageRootKey string `json:"storageRootKey,omitempty"`
}

// Attestation is an enrollment's attestation mechanism.
type Attestation struct {
	Type         string                   `json:"type"`
	TPM          *TPMAttestation          `json:"tpm,omitempty"`
	X509         *X509Attestation         `json:"x509,omitempty"`
	SymmetricKey *SymmetricKeyAttestation `json:"symmetricKey,omitempty"`
}

// InitialTwin is the twin an assigned device starts with.
type InitialTwin struct {
	Tags       json.RawMessage        `json:"tags,omitempty"`
	Properties *InitialTwinProperties `json:"properties,omitempty"`
}

// InitialTwinProperties holds the initial desired properties.
type InitialTwinProperties struct {
	Desired json.RawMessage `json:"desired,omitempty"`
}

// ReprovisionPolicy says what happens when a registered device
// registers again.
type ReprovisionPolicy struct {
	// UpdateHubAssignment re-assigns the device (default true).
	UpdateHubAssignment bool `json:"updateHubAssignment"`
	// MigrateDeviceData keeps the device's twin when it is re-assigned
	// (default true); false resets it to the enrollment's initial twin.
	MigrateDeviceData bool `json:"migrateDeviceData"`
}

// CustomAllocationDefinition is a custom allocation webhook (stored,
// not called: the local service has one hub).
type CustomAllocationDefinition struct {
	WebhookURL string `json:"webhookUrl"`
	APIVersion string `json:"apiVersion"`
}

// IndividualEnrollment is one device's enrollment, with the JSON field
// names of the DPS service API.
type IndividualEnrollment struct {
	RegistrationID             string                      `json:"registrationId"`
	DeviceID                   string                      `json:"deviceId,omitempty"`
	RegistrationState          *RegistrationState          `json:"registrationState,omitempty"`
	Attestation                *Attestation                `json:"attestation"`
	IotHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	Etag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                      `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IotHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
	Capabilities               *iothub.Capabilities        `json:"capabilities,omitempty"`
}

// EnrollmentGroup is an enrollment for many devices that share a group
// key or a signing certificate.
type EnrollmentGroup struct {
	EnrollmentGroupID          string                      `json:"enrollmentGroupId"`
	Attestation                *Attestation                `json:"attestation"`
	IotHubHostName             string                      `json:"iotHubHostName,omitempty"`
	InitialTwin                *InitialTwin                `json:"initialTwin,omitempty"`
	Etag                       string                      `json:"etag,omitempty"`
	ProvisioningStatus         string                      `json:"provisioningStatus"`
	ReprovisionPolicy          *ReprovisionPolicy          `json:"reprovisionPolicy,omitempty"`
	CreatedDateTimeUTC         string                      `json:"createdDateTimeUtc,omitempty"`
	LastUpdatedDateTimeUTC     string                      `json:"lastUpdatedDateTimeUtc,omitempty"`
	AllocationPolicy           string                      `json:"allocationPolicy,omitempty"`
	IotHubs                    []string                    `json:"iotHubs,omitempty"`
	CustomAllocationDefinition *CustomAllocationDefinition `json:"customAllocationDefinition,omitempty"`
	Capabilities               *iothub.Capabilities        `json:"capabilities,omitempty"`
}

// AttestationRef says which attestation a registration used: symmetric
// key ({} or {"enrollmentGroupId"}) or X.509.
type AttestationRef struct {
	EnrollmentGroupID string `json:"enrollmentGroupId,omitempty"`
}

// X509RegistrationResult is the X.509 part of a registration state.
type X509RegistrationResult struct {
	CertificateInfo   *X509CertificateInfo `json:"certificateInfo,omitempty"`
	EnrollmentGroupID string               `json:"enrollmentGroupId,omitempty"`
}

// RegistrationState is the outcome of a device's registration
// (DeviceRegistrationResult in the SDKs), with the JSON field names the
// device and service APIs share.
type RegistrationState struct {
	RegistrationID         string                  `json:"registrationId"`
	CreatedDateTimeUTC     string                  `json:"createdDateTimeUtc,omitempty"`
	AssignedHub            string                  `json:"assignedHub,omitempty"`
	DeviceID               string                  `json:"deviceId,omitempty"`
	Status                 string                  `json:"status"`
	Substatus              string                  `json:"substatus,omitempty"`
	ErrorCode              int                     `json:"errorCode,omitempty"`
	ErrorMessage           string                  `json:"errorMessage,omitempty"`
	LastUpdatedDateTimeUTC string                  `json:"lastUpdatedDateTimeUtc,omitempty"`
	Etag                   string                  `json:"etag,omitempty"`
	GenerationID           string                  `json:"generationId,omitempty"`
	Payload                json.RawMessage         `json:"payload,omitempty"`
	SymmetricKey           *AttestationRef         `json:"symmetricKey,omitempty"`
	X509                   *X509RegistrationResult `json:"x509,omitempty"`
}

// OperationStatus is the device API's answer to a register or status
// request (RegistrationOperationStatus).
type OperationStatus struct {
	OperationID       string             `json:"operationId"`
	Status            string             `json:"status"`
	RegistrationState *RegistrationState `json:"registrationState,omitempty"`
}

// registrationRecord is what the store keeps per registration id: the
// state the APIs return, plus which enrollment it came from and the
// last operation id.
type registrationRecord struct {
	State             RegistrationState `json:"state"`
	OperationID       string            `json:"operationId"`
	EnrollmentGroupID string            `json:"enrollmentGroupId,omitempty"`
}
