package amqpfront

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1"
)

// DPS over AMQP (azure-iot-sdk-node provisioning/transport/amqp/src/amqp.ts;
// azure-iot-sdk-csharp provisioning/transport/amqp): a provisioning
// client authenticates with SASL PLAIN, user name
// "{idScope}/registrations/{registrationId}" and its SAS token as the
// password (or with its TLS client certificate and no PLAIN), attaches
// a sender and a receiver, both addressed
// "{idScope}/registrations/{registrationId}", and sends requests whose
// application property iotdps-operation-type is iotdps-register (body:
// the registration JSON) or iotdps-get-operationstatus (with
// iotdps-operation-id). Each answer goes to its receiver with the
// request's correlation-id and the RegistrationOperationStatus as a data
// section, its retry hint in the application properties retry-after
// (which Node reads) and Retry-After (which C# reads,
// ProvisioningErrorDetailsAmqp.cs). A refused request is rejected with
// an error, as DPS does.
const (
	dpsOperationType = "iotdps-operation-type"
	dpsOperationID   = "iotdps-operation-id"
	dpsOpRegister    = "iotdps-register"
	dpsOpStatus      = "iotdps-get-operationstatus"
)

// Provisioner is the Device Provisioning Service that answers DPS's
// device API over AMQP (the hub adapts its pkg/hub/dps service).
// Its methods are called concurrently.
type Provisioner interface {
	// Authenticate checks a provisioning client's credentials: its SAS
	// token, or, when token is "", the client certificate of nc.
	Authenticate(nc net.Conn, idScope, registrationID, token string) error
	// Request answers a register request (operationID "") with its
	// body, or an operation status request.
	Request(nc net.Conn, idScope, registrationID, token, operationID string, body []byte) ProvisioningReply
}

// ProvisioningReply is DPS's answer to one request: an HTTP status
// (≥ 300 refuses the request), the seconds to wait before polling (0
// for none), the JSON body, and, for a refusal, its message.
type ProvisioningReply struct {
	Status     int
	RetryAfter int
	Body       []byte
	Message    string
}

// dpsAddress reads a provisioning address "{idScope}/registrations/{registrationId}"
// (a node path, or a SASL PLAIN user name).
func dpsAddress(p string) (idScope, registrationID string, ok bool) {
	segs := strings.Split(p, "/")
	if len(segs) != 3 || segs[0] == "" || segs[2] == "" || !strings.EqualFold(segs[1], "registrations") {
		return "", "", false
	}
	return segs[0], segs[2], true
}

// dpsIdentity is what SASL PLAIN authenticated for a provisioning
// client.
type dpsIdentity struct {
	idScope, registrationID, token string
}

// authenticateDPS checks SASL PLAIN credentials whose user name is a
// provisioning address; ok is false for other user names.
func (f *Front) authenticateDPS(nc net.Conn, r *amqp1.SASLRequest) (id *dpsIdentity, ok bool, err error) {
	scope, regID, isDPS := dpsAddress(r.Identity)
	if !isDPS || f.opts.DPS == nil {
		return nil, false, nil
	}
	if err := f.opts.DPS.Authenticate(nc, scope, regID, r.Password); err != nil {
		return nil, true, err
	}
	return &dpsIdentity{idScope: scope, registrationID: regID, token: r.Password}, true, nil
}

// attachDPS accepts a provisioning client's link on its own
// registration: the one SASL PLAIN authenticated, or, without it, one
// its client certificate proves.
func (cs *conn) attachDPS(ctx context.Context, l *amqp1.Link, scope, regID string) error {
	id := cs.dps
	if id == nil {
		if err := cs.f.opts.DPS.Authenticate(cs.nc, scope, regID, ""); err != nil {
			return &amqp1.Error{Condition: amqp1.ErrCondUnauthorizedAccess, Description: err.Error()}
		}
		id = &dpsIdentity{idScope: scope, registrationID: regID}
	} else if !strings.EqualFold(id.idScope, scope) || !strings.EqualFold(id.registrationID, regID) {
		return &amqp1.Error{Condition: amqp1.ErrCondUnauthorizedAccess, Description: "the link's address " + scope + "/registrations/" + regID +
			" is not the registration SASL PLAIN authenticated (" + id.idScope + "/registrations/" + id.registrationID + ")"}
	}
	node := dpsNode(scope, regID)
	if l.Role() == amqp1.RoleSender {
		cs.addReply(node, l)
		return nil
	}
	go cs.serveDPS(ctx, l, node, id)
	return nil
}

func dpsNode(scope, regID string) string {
	return "dps:" + strings.ToLower(scope) + "/" + strings.ToLower(regID)
}

// serveDPS answers a provisioning client's requests in order.
func (cs *conn) serveDPS(ctx context.Context, l *amqp1.Link, node string, id *dpsIdentity) {
	p := cs.f.opts.DPS
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		req := d.Message
		var rep ProvisioningReply
		switch op := str(req.ApplicationProperties[dpsOperationType]); op {
		case dpsOpRegister:
			rep = p.Request(cs.nc, id.idScope, id.registrationID, id.token, "", bytes.Join(req.Data, nil))
		case dpsOpStatus:
			opID := str(req.ApplicationProperties[dpsOperationID])
			if opID == "" {
				_ = d.Reject(&amqp1.Error{Condition: condArgumentError, Description: "an " + dpsOpStatus + " request needs the application property " + dpsOperationID})
				continue
			}
			rep = p.Request(cs.nc, id.idScope, id.registrationID, id.token, opID, nil)
		default:
			_ = d.Reject(&amqp1.Error{Condition: condArgumentError, Description: "the application property " + dpsOperationType + " is " +
				quote(op) + "; DPS knows " + dpsOpRegister + " and " + dpsOpStatus})
			continue
		}
		if rep.Status >= 300 {
			_ = d.Reject(dpsRefusal(rep))
			continue
		}
		_ = d.Accept()
		var corr any
		if req.Properties != nil {
			corr = req.Properties.CorrelationID
			if corr == nil {
				corr = req.Properties.MessageID
			}
		}
		msg := &amqp.Message{Properties: &amqp.MessageProperties{CorrelationID: corr}, Data: [][]byte{rep.Body},
			ApplicationProperties: map[string]any{"iotdps-status": int32(rep.Status)}}
		if rep.RetryAfter > 0 {
			msg.ApplicationProperties["retry-after"] = strconv.Itoa(rep.RetryAfter)
			msg.ApplicationProperties["Retry-After"] = strconv.Itoa(rep.RetryAfter)
		}
		// Without waiting for the outcome: provisioning-device-client
		// for Java 2.1.3 never settles what it receives on this link
		// (AmqpDeviceOperations.receiverMessageFromLink reads and
		// advances), and waiting held its status poll for replyTimeout,
		// after which the client had given up. A DPS link serves one
		// registration, so what it leaves unsettled ends with it.
		cs.reply(ctx, node, "", msg, false)
	}
}

// condArgumentError is IoT Hub's condition for a bad request.
const condArgumentError amqp1.ErrCond = "com.microsoft:argument-error"

// dpsRefusal is the rejection of a refused request: the condition the
// SDKs translate for its HTTP status (azure-iot-sdk-node
// common/transport/amqp/src/amqp_common_errors.ts), DPS's message and
// the status and error body in the info.
func dpsRefusal(rep ProvisioningReply) *amqp1.Error {
	cond := amqp1.ErrCondInternalError
	switch {
	case rep.Status == 400:
		cond = condArgumentError
	case rep.Status == 401 || rep.Status == 403:
		cond = amqp1.ErrCondUnauthorizedAccess
	case rep.Status == 404:
		cond = amqp1.ErrCondNotFound
	case rep.Status == 412:
		cond = "com.microsoft:precondition-failed"
	case rep.Status < 500:
		cond = amqp1.ErrCondNotAllowed
	}
	info := map[string]any{"status-code": int32(rep.Status), "error": string(rep.Body)}
	if rep.RetryAfter > 0 {
		info["Retry-After"] = strconv.Itoa(rep.RetryAfter)
	}
	return &amqp1.Error{Condition: cond, Description: rep.Message, Info: info}
}
