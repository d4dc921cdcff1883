package iothub

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"time"
)

// Time is a time.Time that encodes to JSON the way IoT Hub writes
// times: UTC, RFC 3339 with milliseconds ("2024-05-01T10:00:00.123Z"),
// and the zero time as "0001-01-01T00:00:00Z". It decodes any RFC 3339
// time, and null or "" as the zero time.
type Time struct{ time.Time }

// ZeroTime is how IoT Hub writes a time that never happened.
const ZeroTime = "0001-01-01T00:00:00Z"

// TimeLayout is the layout of non-zero times: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime writes t as IoT Hub does (see Time).
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ZeroTime
	}
	return t.UTC().Format(TimeLayout)
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + FormatTime(t.Time) + `"`), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	if v.Year() <= 1 {
		v = time.Time{}
	}
	t.Time = v.UTC()
	return nil
}

// Connection states, as IoT Hub spells them.
const (
	Connected    = "Connected"
	Disconnected = "Disconnected"
)

// Device status values.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"
)

// Authentication types.
const (
	AuthSAS                  = "sas"
	AuthSelfSigned           = "selfSigned"
	AuthCertificateAuthority = "certificateAuthority"
	AuthNone                 = "none"
)

// SymmetricKey is a pair of base64 shared access keys.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// String redacts the keys.
func (k SymmetricKey) String() string { return "{REDACTED REDACTED}" }

// LogValue implements slog.LogValuer with the keys redacted.
func (k SymmetricKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// X509Thumbprint is a pair of certificate thumbprints (hex SHA-1 or SHA-256).
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Authentication is how a device or module proves who it is.
type Authentication struct {
	// Type is sas, selfSigned, certificateAuthority or none.
	// Default (empty on create): sas.
	Type           string          `json:"type"`
	SymmetricKey   *SymmetricKey   `json:"symmetricKey,omitempty"`
	X509Thumbprint *X509Thumbprint `json:"x509Thumbprint,omitempty"`
}

// Keys returns the identity's symmetric keys, or nil when its
// authentication type is not sas.
func (a *Authentication) Keys() *SymmetricKey {
	if a == nil || a.Type != AuthSAS || a.SymmetricKey == nil {
		return nil
	}
	return a.SymmetricKey
}

// Capabilities are a device's capabilities.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// Device is a device identity with the JSON field names of the IoT Hub
// REST API. ConnectionState, ConnectionStateUpdatedTime and
// LastActivityTime are not stored: the store returns "Disconnected"
// and zero times and the hub's front ends fill them in.
type Device struct {
	DeviceID                   string          `json:"deviceId"`
	GenerationID               string          `json:"generationId"`
	Etag                       string          `json:"etag"`
	ConnectionState            string          `json:"connectionState"`
	Status                     string          `json:"status"`
	StatusReason               *string         `json:"statusReason"`
	ConnectionStateUpdatedTime Time            `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          Time            `json:"statusUpdatedTime"`
	LastActivityTime           Time            `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount"`
	Authentication             *Authentication `json:"authentication"`
	Capabilities               *Capabilities   `json:"capabilities"`
	DeviceScope                string          `json:"deviceScope,omitempty"`
	ParentScopes               []string        `json:"parentScopes,omitempty"`
}

// Enabled reports whether the device's status is enabled.
func (d *Device) Enabled() bool { return d.Status == StatusEnabled }

// Module is a module identity with the JSON field names of the IoT Hub
// REST API. Connection fields are filled by the hub, as for Device.
type Module struct {
	DeviceID                   string          `json:"deviceId"`
	ModuleID                   string          `json:"moduleId"`
	GenerationID               string          `json:"generationId"`
	Etag                       string          `json:"etag"`
	ConnectionState            string          `json:"connectionState"`
	ConnectionStateUpdatedTime Time            `json:"connectionStateUpdatedTime"`
	LastActivityTime           Time            `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int             `json:"cloudToDeviceMessageCount"`
	Authentication             *Authentication `json:"authentication"`
	ManagedBy                  string          `json:"managedBy,omitempty"`
}

// Twin is a device or module twin with the JSON field names of the IoT
// Hub REST API. Tags and the two property documents are JSON objects;
// desired and reported carry "$metadata" and "$version".
type Twin struct {
	DeviceID                  string          `json:"deviceId"`
	ModuleID                  string          `json:"moduleId,omitempty"`
	Etag                      string          `json:"etag"`
	DeviceEtag                string          `json:"deviceEtag"`
	Version                   int64           `json:"version"`
	Status                    string          `json:"status,omitempty"`
	StatusReason              *string         `json:"statusReason,omitempty"`
	StatusUpdateTime          *Time           `json:"statusUpdateTime,omitempty"`
	ConnectionState           string          `json:"connectionState"`
	LastActivityTime          Time            `json:"lastActivityTime"`
	CloudToDeviceMessageCount int             `json:"cloudToDeviceMessageCount"`
	AuthenticationType        string          `json:"authenticationType"`
	X509Thumbprint            X509Thumbprint  `json:"x509Thumbprint"`
	Capabilities              *Capabilities   `json:"capabilities,omitempty"`
	DeviceScope               string          `json:"deviceScope,omitempty"`
	ParentScopes              []string        `json:"parentScopes,omitempty"`
	ModelID                   string          `json:"modelId,omitempty"`
	Tags                      json.RawMessage `json:"tags"`
	Properties                TwinProperties  `json:"properties"`
}

// TwinProperties holds the desired and reported property documents,
// each with "$metadata" and "$version".
type TwinProperties struct {
	Desired  json.RawMessage `json:"desired"`
	Reported json.RawMessage `json:"reported"`
}

// TwinUpdate is the body of a twin PATCH or PUT from the service side:
// tags and desired properties. Reported properties in it are ignored
// (only the device writes them).
type TwinUpdate struct {
	Tags       json.RawMessage       `json:"tags,omitempty"`
	Properties *TwinUpdateProperties `json:"properties,omitempty"`
}

// TwinUpdateProperties holds the desired properties of a TwinUpdate.
type TwinUpdateProperties struct {
	Desired  json.RawMessage `json:"desired,omitempty"`
	Reported json.RawMessage `json:"reported,omitempty"`
}

// FileNotificationContentType is the content type of a file upload
// notification message (azure-iot-sdk-csharp
// iothub/service/src/FileUpload/AmqpFileNotificationReceiver.cs checks
// it).
const FileNotificationContentType = "application/vnd.microsoft.iothub.filenotification.json"

// FileNotification is the body of a file upload notification, sent on
// /messages/serviceBound/filenotifications when a device says a file
// upload succeeded (azure-iot-sdk-csharp
// iothub/service/src/FileUpload/FileNotification.cs;
// https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-file-upload).
type FileNotification struct {
	DeviceID string `json:"deviceId"`
	// BlobURI is the blob's URL without a SAS token.
	BlobURI string `json:"blobUri"`
	// BlobName is "{deviceId}/{name the device asked for}".
	BlobName        string `json:"blobName"`
	LastUpdatedTime Time   `json:"lastUpdatedTime"`
	BlobSizeInBytes int64  `json:"blobSizeInBytes"`
	EnqueuedTimeUTC Time   `json:"enqueuedTimeUtc"`
}

// FileUploadRequest is the body of a device's
// POST /devices/{id}/files: the name of the blob it wants to write
// (https://learn.microsoft.com/rest/api/iothub/device/create-file-upload-sas-uri).
type FileUploadRequest struct {
	BlobName string `json:"blobName"`
}

// FileUploadResponse answers POST /devices/{id}/files: the blob is at
// https://{HostName}/{ContainerName}/{BlobName}{SASToken}
// (azure-iot-sdk-csharp iothub/device/src/FileUpload/FileUploadSasUriResponse.cs).
type FileUploadResponse struct {
	CorrelationID string `json:"correlationId"`
	HostName      string `json:"hostName"`
	ContainerName string `json:"containerName"`
	BlobName      string `json:"blobName"`
	// SASToken starts with "?".
	SASToken string `json:"sasToken"`
}

// FileUploadCompletion is the body of POST
// /devices/{id}/files/notifications: the outcome of an upload
// (https://learn.microsoft.com/rest/api/iothub/device/update-file-upload-status).
// Node's SDK puts the correlation id in the path instead
// (azure-iot-sdk-node device/core/src/blob_upload/file_upload_api.ts).
type FileUploadCompletion struct {
	CorrelationID     string `json:"correlationId,omitempty"`
	IsSuccess         bool   `json:"isSuccess"`
	StatusCode        int    `json:"statusCode"`
	StatusDescription string `json:"statusDescription"`
}
