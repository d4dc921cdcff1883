package dps

import (
	"errors"
	"fmt"
)

// Error is a refusal of the Device Provisioning Service: the HTTP status,
// DPS's six-digit error code and a message that says what is wrong and
// what to do. It never contains key material.
//
// Errors with the same Code match under errors.Is, so callers test with
// errors.Is(err, dps.ErrEnrollmentNotFound).
type Error struct {
	// Code is DPS's error code: the HTTP status × 1000 + detail.
	Code int
	// Message says what went wrong.
	Message string
}

// Error implements error.
func (e *Error) Error() string { return "dps: " + e.Message }

// Is reports whether target is an *Error with the same Code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// HTTPStatus is the HTTP status of the error (Code / 1000).
func (e *Error) HTTPStatus() int { return e.Code / 1000 }

// The error conditions. DPS documents its errors by HTTP status only
// (Azure docs, articles/iot-dps/how-to-troubleshoot-dps.md); 404201 for
// a registration id DPS does not know is the code its device SDKs'
// end-to-end tests assert (azure-iot-sdk-csharp
// e2e/test/provisioning/ProvisioningE2ETests.cs), and 401002 is IoT
// Hub's code for a refused token, which DPS answers too. The other
// details are this service's own.
var (
	ErrBadRequest           = &Error{Code: 400004, Message: "the request is not valid"}
	ErrUnauthorized         = &Error{Code: 401002, Message: "unauthorized"}
	ErrRegistrationNotFound = &Error{Code: 404201, Message: "registration not found"}
	ErrEnrollmentNotFound   = &Error{Code: 404202, Message: "enrollment not found"}
	ErrGroupNotFound        = &Error{Code: 404203, Message: "enrollment group not found"}
	ErrOperationNotFound    = &Error{Code: 404204, Message: "operation not found"}
	ErrNotFound             = &Error{Code: 404000, Message: "no such resource"}
	ErrMethodNotAllowed     = &Error{Code: 405000, Message: "method not allowed"}
	ErrConflict             = &Error{Code: 409000, Message: "conflict"}
	ErrPreconditionFailed   = &Error{Code: 412001, Message: "the etag does not match"}
	ErrTooLarge             = &Error{Code: 413000, Message: "the request body is too large"}
	ErrInternal             = &Error{Code: 500000, Message: "internal error"}
)

// errf returns a copy of template with a formatted message.
func errf(template *Error, format string, args ...any) *Error {
	return &Error{Code: template.Code, Message: fmt.Sprintf(format, args...)}
}
