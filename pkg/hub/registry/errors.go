package registry

import (
	"errors"
	"fmt"
)

// Error is an IoT Hub error condition: the six-digit error code
// (HTTP status × 1000 + detail, e.g. 404001) and its name
// (e.g. "DeviceNotFound"), plus a human-readable message.
//
// Errors with the same Code match under errors.Is, so callers test
// with errors.Is(err, registry.ErrDeviceNotFound) and read the detail
// with errors.As(err, &e).
type Error struct {
	// Code is the IoT Hub error code, e.g. 404001.
	Code int
	// Name is the IoT Hub error code name, e.g. "DeviceNotFound".
	Name string
	// Message says what went wrong; it never contains key material.
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return "registry: " + e.Name
	}
	return "registry: " + e.Message
}

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// HTTPStatus is the HTTP status the error maps to (Code / 1000).
func (e *Error) HTTPStatus() int { return e.Code / 1000 }

// The error conditions the store returns. Each is the template; the
// store returns a copy with a specific Message.
var (
	ErrArgumentInvalid = &Error{Code: 400004, Name: "ArgumentInvalid", Message: "argument invalid"}
	// The file upload conditions
	// (https://learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes).
	ErrDefaultStorageEndpointNotConfigured = &Error{Code: 400014, Name: "DefaultStorageEndpointNotConfigured", Message: "default storage endpoint not configured"}
	ErrInvalidFileUploadCorrelationID      = &Error{Code: 400015, Name: "InvalidFileUploadCorrelationId", Message: "invalid file upload correlation id"}
	ErrExpiredFileUploadCorrelationID      = &Error{Code: 400016, Name: "ExpiredFileUploadCorrelationId", Message: "expired file upload correlation id"}
	ErrUnauthorized                        = &Error{Code: 401002, Name: "IotHubUnauthorizedAccess", Message: "unauthorized"}
	ErrQueueFull                           = &Error{Code: 403004, Name: "DeviceMaximumQueueDepthExceeded", Message: "maximum queue depth exceeded"}
	ErrDeviceNotFound                      = &Error{Code: 404001, Name: "DeviceNotFound", Message: "device not found"}
	ErrModuleNotFound                      = &Error{Code: 404010, Name: "ModuleNotFound", Message: "module not found"}
	ErrDeviceNotOnline                     = &Error{Code: 404103, Name: "DeviceNotOnline", Message: "device not online"}
	ErrDeviceAlreadyExists                 = &Error{Code: 409001, Name: "DeviceAlreadyExists", Message: "device already exists"}
	ErrModuleAlreadyExistsOnDevice         = &Error{Code: 409301, Name: "ModuleAlreadyExistsOnDevice", Message: "module already exists on device"}
	ErrPreconditionFailed                  = &Error{Code: 412001, Name: "PreconditionFailed", Message: "precondition failed"}
	ErrDeviceMessageLockLost               = &Error{Code: 412002, Name: "DeviceMessageLockLost", Message: "message lock lost"}
	ErrMessageTooLarge                     = &Error{Code: 413001, Name: "MessageTooLarge", Message: "message too large"}
	ErrThrottled                           = &Error{Code: 429001, Name: "ThrottlingException", Message: "throttled"}
	ErrServerError                         = &Error{Code: 500001, Name: "ServerError", Message: "internal server error"}
	ErrGatewayTimeout                      = &Error{Code: 504101, Name: "GatewayTimeout", Message: "gateway timeout"}
)

// newErr returns a copy of template with a formatted message.
func newErr(template *Error, format string, args ...any) *Error {
	return &Error{Code: template.Code, Name: template.Name, Message: fmt.Sprintf(format, args...)}
}
