package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// Errors a Methods implementation returns.
var (
	// ErrDeviceNotOnline means the device is not connected or has not
	// subscribed to direct methods; the handler answers 404 / 404103.
	ErrDeviceNotOnline = errors.New("rest: device not online")
	// ErrTimeout means the device did not answer in time; the handler
	// answers 504 / 504101.
	ErrTimeout = errors.New("rest: timed out waiting for the device")
)

// Error conditions of the handler itself (not from the registry).
// Codes that IoT Hub has no specific code for (unknown route, wrong
// method) use the HTTP status followed by 000.
var (
	errNotFound         = &registry.Error{Code: 404000, Name: "NotFound", Message: "no such resource"}
	errMethodNotAllowed = &registry.Error{Code: 405000, Name: "MethodNotAllowed", Message: "method not allowed"}
)

// errorBody is written for every failure. It is read by two kinds of
// clients that disagree on the shape:
//
//   - The Node SDK (azure-iot-http-base Http.parseErrorBody, used by
//     RestApiClient.translateError) does JSON.parse(body).Message,
//     splits it on ';', takes part [1] as the message and, from part
//     [0], the text after the first ':' as the error code name; only
//     a 404 needs the name (DeviceNotFound → DeviceNotFoundError),
//     other statuses map by status alone. It ignores the
//     iothub-errorcode header.
//   - The C# SDKs (ExceptionHandlingHelper.GetExceptionCodeAsync) read
//     Message as a JSON object of strings, take its "errorCode" (six
//     digits) and accept it when it equals the iothub-errorcode header
//     name's value. (The v2 SDK falls back to "ErrorCode:Name;..." when
//     Message is not JSON; v1 does not.)
//
// So Message holds a JSON object whose first key is the legacy string
// "ErrorCode:{Name};{text};": for Node, everything up to the first ';'
// is `{"ErrorCode:{Name}` (code = Name) and the next part is the text;
// for C#, it is one more string-valued key beside errorCode,
// trackingId, message and timestampUtc. ExceptionMessage carries the
// tracking id and time the way IoT Hub's legacy bodies do.
type errorBody struct {
	Message          string `json:"Message"`
	ExceptionMessage string `json:"ExceptionMessage"`
}

// errorMessage builds the inner Message JSON (see errorBody).
func errorMessage(code int, name, text, trackingID string, now time.Time) string {
	legacy := "ErrorCode:" + name + ";" + sanitize(text) + ";"
	var b strings.Builder
	k, _ := json.Marshal(legacy)
	b.WriteString("{")
	b.Write(k)
	b.WriteString(`:"","errorCode":`)
	b.WriteString(strconv.Itoa(code))
	b.WriteString(`,"trackingId":`)
	v, _ := json.Marshal(trackingID)
	b.Write(v)
	b.WriteString(`,"message":`)
	v, _ = json.Marshal(text)
	b.Write(v)
	b.WriteString(`,"timestampUtc":"`)
	b.WriteString(now.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	b.WriteString(`"}`)
	return b.String()
}

// sanitize keeps the legacy part parseable: no ';' (the field
// separator) and no characters JSON would escape.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ';':
			return ','
		case r == '"' || r == '\\':
			return '\''
		case r < 0x20:
			return ' '
		}
		return r
	}, s)
}

// writeError answers with an IoT Hub error: the status, the header
// iothub-errorcode: Name and the body described at errorBody.
func (h *Handler) writeError(w http.ResponseWriter, e *registry.Error) {
	WriteError(w, e, h.now())
}

// WriteError answers an HTTPS request with an IoT Hub error as the
// service API does (status, iothub-errorcode and the body described at
// errorBody), for the hub's other HTTPS endpoints; now stamps it. An
// error that is not a *registry.Error is a 500 ServerError that does
// not show its text.
func WriteError(w http.ResponseWriter, err error, now time.Time) {
	e := asError(err)
	tracking := registry.NewUUID()
	now = now.UTC()
	body := errorBody{
		Message:          errorMessage(e.Code, e.Name, e.Message, tracking, now),
		ExceptionMessage: "Tracking ID:" + strings.ReplaceAll(tracking, "-", "") + "-G:0-TimeStamp:" + now.Format("01/02/2006 15:04:05"),
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("iothub-errorcode", e.Name)
	status := e.HTTPStatus()
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(body)
	w.Write(b)
}

// asError turns any error into an IoT Hub error.
func asError(err error) *registry.Error {
	var e *registry.Error
	if errors.As(err, &e) {
		return e
	}
	return &registry.Error{Code: registry.ErrServerError.Code, Name: registry.ErrServerError.Name, Message: "internal error"}
}

func newError(template *registry.Error, msg string) *registry.Error {
	return &registry.Error{Code: template.Code, Name: template.Name, Message: msg}
}
