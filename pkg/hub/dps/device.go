package dps

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/iotctl/iotctl/pkg/hub/registry"
)

// Reply is the device API's answer to one request, whatever the
// transport: the HTTP status (which MQTT puts in the response topic
// and AMQP in the message), the seconds a device should wait before it
// polls (0 for none) and the JSON body (a RegistrationOperationStatus,
// or DPS's error body).
type Reply struct {
	Status     int
	RetryAfter int
	Body       []byte
	// Err is the refusal the reply carries, nil on success.
	Err *Error
}

// errorBody is DPS's error body: errorCode, trackingId, message and
// timestampUtc (azure-iot-sdk-csharp provisioning/device/src/ProvisioningErrorDetails.cs).
type errorBody struct {
	ErrorCode    int    `json:"errorCode"`
	TrackingID   string `json:"trackingId"`
	Message      string `json:"message"`
	TimestampUTC string `json:"timestampUtc"`
}

// ErrorReply is the reply that refuses a request with err: its HTTP
// status and DPS's error body. An err that is not an *Error is an
// internal error (500), logged.
func (s *Service) ErrorReply(err error) *Reply {
	var e *Error
	if !errors.As(err, &e) {
		s.log.Error("dps request failed", "err", err)
		e = errf(ErrInternal, "%v", err)
	}
	if e.HTTPStatus() >= 500 {
		s.log.Error("dps", "err", e)
	}
	b, _ := json.Marshal(errorBody{ErrorCode: e.Code, TrackingID: registry.NewUUID(), Message: e.Message, TimestampUTC: s.timestamp()})
	return &Reply{Status: e.HTTPStatus(), Body: b, Err: e}
}

// deviceRequest is the body of a device's register request: NODE sends
// {"registrationId","payload"}, azure-iot-device (Python)
// {"payload":null,"registrationId"}, the C# SDK over MQTT and AMQP an
// empty body or {"payload"} (azure-iot-sdk-node
// provisioning/transport/mqtt/src/mqtt.ts, azure-iot-sdk-python
// provisioning/pipeline/pipeline_stages_provisioning_mqtt.py).
type deviceRequest struct {
	RegistrationID string          `json:"registrationId"`
	Payload        json.RawMessage `json:"payload"`
	TPM            json.RawMessage `json:"tpm"`
}

// RegisterReply registers a device from the body of its register
// request (empty, or {"registrationId","payload","tpm"}) and answers
// 202 with the operation in status "assigning" and a retry-after, or a
// refusal. The registration id comes from the request's address (path,
// MQTT user name, AMQP link); a body that names another is refused.
func (s *Service) RegisterReply(idScope, registrationID string, body []byte, cred Credentials) *Reply {
	var req deviceRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return s.ErrorReply(errf(ErrBadRequest, "the body is not valid JSON for a registration: %v", err))
		}
	}
	if req.RegistrationID != "" && !strings.EqualFold(req.RegistrationID, registrationID) {
		return s.ErrorReply(errIDMismatch("registrationId", req.RegistrationID, registrationID))
	}
	cred.TPM = len(req.TPM) > 0 && string(req.TPM) != "null"
	payload := req.Payload
	if string(bytes.TrimSpace(payload)) == "null" {
		payload = nil
	}
	op, err := s.Register(&RegisterRequest{IDScope: idScope, RegistrationID: registrationID, Payload: payload, Credentials: cred})
	if err != nil {
		s.log.Info("registration refused", "registrationId", registrationID, "err", err)
		return s.ErrorReply(err)
	}
	return s.jsonReply(http.StatusAccepted, s.RetryAfterSeconds(), op)
}

// OperationReply answers a device's operation status request: 202 with
// a retry-after while the operation is assigning, 200 with the
// registration state when it is done, or a refusal.
func (s *Service) OperationReply(idScope, registrationID, operationID string, cred Credentials) *Reply {
	op, err := s.Operation(idScope, registrationID, operationID, &cred)
	if err != nil {
		return s.ErrorReply(err)
	}
	if op.Status == RegAssigning {
		return s.jsonReply(http.StatusAccepted, s.RetryAfterSeconds(), op)
	}
	return s.jsonReply(http.StatusOK, 0, op)
}

func (s *Service) jsonReply(status, retryAfter int, v any) *Reply {
	b, err := json.Marshal(v)
	if err != nil {
		return s.ErrorReply(err)
	}
	return &Reply{Status: status, RetryAfter: retryAfter, Body: b}
}

// Authenticate checks, before any request, that a device connection
// (MQTT CONNECT, AMQP SASL) addresses this service's ID scope with a
// valid registration id and credentials some enrollment accepts. The
// errors are those of Register.
func (s *Service) Authenticate(idScope, registrationID string, cred *Credentials) error {
	if err := s.checkScope(idScope); err != nil {
		return err
	}
	if err := ValidateID("registration id", registrationID); err != nil {
		return err
	}
	_, err := s.attest(registrationID, cred)
	return err
}
