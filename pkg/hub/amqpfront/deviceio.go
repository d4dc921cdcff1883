package amqpfront

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"
	"github.com/google/uuid"

	"github.com/iotctl/iotctl/pkg/amqp1"
	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/message"
)

// deviceSendTimeout bounds the wait for link credit when the hub sends
// a device a method request, a twin response or a desired patch.
const deviceSendTimeout = 10 * time.Second

// errNotListening: the device has no receiver for what the core sends.
var errNotListening = errors.New("amqpfront: the device has no receiver link for it")

// Application properties of direct methods (the C# SDK's
// AmqpIotMessageConverter.cs, MethodName and Status; the Node SDK's
// amqp_device_method_client.ts).
const (
	propMethodName   = "IoThub-methodname"
	propMethodStatus = "IoThub-status"
)

// ingestTelemetry stores a message the device sent on its events link
// and settles it once stored (with the log on disk: once synced,
// as MQTT's PUBACK), or rejects it: amqp:link:message-size-exceeded over
// 256 KB (the Node SDK's amqp_common_errors.ts maps it to
// MessageTooLargeError), amqp:internal-error when the log failed. A
// message the device sent settled is stored the same way.
func (dc *devConn) ingestTelemetry(d *amqp1.Delivery) {
	m := telemetryMessage(d.Message)
	pending, err := dc.s.Ingest(m, func(err error) {
		if err != nil {
			_ = d.Reject(errNotStored)
			return
		}
		_ = d.Accept()
	})
	switch {
	case errors.Is(err, core.ErrTooLarge):
		_ = d.Reject(&amqp1.Error{Condition: amqp1.ErrCondMessageSizeExceeded, Description: fmt.Sprintf(
			"the message is %d bytes; IoT Hub takes device-to-cloud messages of up to %d bytes (body and properties)",
			m.Size(), message.MaxTelemetrySize)})
	case err != nil:
		_ = d.Reject(errNotStored)
	case !pending:
		_ = d.Accept()
	}
}

var errNotStored = &amqp1.Error{Condition: amqp1.ErrCondInternalError, Description: "the hub could not store the message; send it again"}

// watchCredit tells the core when the device's C2D receiver grants
// more credit than the hub last saw (it sees it after each of its own
// sends too: see SendC2D), so that queued messages go out.
func (dc *devConn) watchCredit(l *amqp1.Link) {
	for {
		ch := l.Changed()
		dc.mu.Lock()
		c := l.Credit()
		more := c > dc.seenCredit
		dc.seenCredit = c
		dc.mu.Unlock()
		if more {
			dc.s.KickC2D()
		}
		select {
		case <-ch:
		case <-l.Done():
			return
		}
	}
}

// SendC2D sends a locked message on the device's C2D receiver, and
// settles it in the core by the device's outcome: accepted completes,
// rejected (or modified with undeliverable-here) rejects, released and
// modified abandon (the C# SDK's AmqpTransportHandler.cs, the Node
// SDK's receiver_link.ts; no SDK sends modified). A message still
// unsettled when the link ends is abandoned.
func (dc *devConn) SendC2D(m *registry.C2DMessage) error {
	dc.mu.Lock()
	l := dc.c2d
	dc.mu.Unlock()
	if l == nil || l.Credit() == 0 {
		return core.ErrNoCredit
	}
	ctx, cancel := context.WithTimeout(context.Background(), deviceSendTimeout)
	o, err := l.Start(ctx, c2dAMQP(m, dc.id.ModuleID))
	cancel()
	dc.mu.Lock()
	dc.seenCredit = l.Credit()
	dc.mu.Unlock()
	if err != nil {
		return err
	}
	go dc.settleC2D(o, m.LockToken)
	return nil
}

// settleC2D waits for the outcome of a C2D delivery; it returns when
// the device settles it or the link ends.
func (dc *devConn) settleC2D(o *amqp1.Outcome, lock string) {
	err := o.Wait(context.Background())
	var rej *amqp1.RejectedError
	var mod *amqp1.ModifiedError
	switch {
	case err == nil:
		err = dc.s.CompleteC2D(lock)
	case errors.As(err, &rej), errors.As(err, &mod) && mod.UndeliverableHere:
		err = dc.s.RejectC2D(lock)
	default:
		err = dc.s.AbandonC2D(lock)
	}
	if err != nil {
		// The lock expired (or the session ended and the message went
		// back to the queue): it is delivered again, nothing is lost.
		dc.cs.f.log.Debug("amqp c2d settlement refused", "device", dc.id.DeviceID, "module", dc.id.ModuleID, "err", err)
	}
}

// SendMethod sends a method request on the device's method receiver:
// correlation-id the request id as an AMQP uuid (the C SDK refuses
// any other type, iothubtransportamqp_methods.c), the method name in
// IoThub-methodname and the payload in a data section.
func (dc *devConn) SendMethod(name, rid string, payload []byte) error {
	dc.mu.Lock()
	l := dc.methods
	dc.mu.Unlock()
	if l == nil {
		return errNotListening
	}
	id, err := dc.rids.encode(rid)
	if err != nil {
		return err
	}
	msg := &amqp.Message{
		Properties:            &amqp.MessageProperties{CorrelationID: id},
		ApplicationProperties: map[string]any{propMethodName: name},
		Data:                  [][]byte{payload},
	}
	ctx, cancel := context.WithTimeout(context.Background(), deviceSendTimeout)
	defer cancel()
	_, err = l.Start(ctx, msg)
	return err
}

// serveMethodResponses reads the device's method responses: the
// request's uuid in correlation-id, the status in IoThub-status.
func (dc *devConn) serveMethodResponses(ctx context.Context, l *amqp1.Link) {
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		m := d.Message
		var cid any
		if m.Properties != nil {
			cid = m.Properties.CorrelationID
		}
		rid, ok := dc.rids.decode(cid)
		status, sok := intValue(m.ApplicationProperties[propMethodStatus])
		if !ok || !sok {
			_ = d.Reject(&amqp1.Error{Condition: CondArgumentError, Description: "a method response needs the request's correlation-id and an int IoThub-status"})
			continue
		}
		_ = d.Accept()
		dc.s.MethodResponse(rid, status, body(m))
	}
}

// Twin request annotations and resources (the Node SDK's
// amqp_twin_client.ts, the C SDK's iothubtransport_amqp_twin_messenger.c).
const (
	annOperation     = "operation"
	annResource      = "resource"
	annStatus        = "status"
	annVersion       = "version"
	resourceReported = "/properties/reported"
	resourceDesired  = "/notifications/twin/properties/desired"
)

// serveTwin answers the device's twin requests, in the order it sent
// them, on its twin receiver: GET, PATCH of reported properties, PUT
// and DELETE of the desired-property subscription. Each answer echoes
// the correlation-id and carries the status as an int annotation (and
// the new reported version as a long after a PATCH).
func (dc *devConn) serveTwin(ctx context.Context, l *amqp1.Link) {
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		_ = d.Accept()
		req := d.Message
		op, res := strings.ToUpper(annotation(req, annOperation)), annotation(req, annResource)
		status, payload, version := 0, []byte(nil), int64(-1)
		switch {
		case op == "GET":
			status, payload = dc.s.TwinGet()
		case op == "PATCH" && res == resourceReported:
			status, version = dc.s.PatchReported(body(req))
		case (op == "PUT" || op == "DELETE") && res == resourceDesired:
			dc.mu.Lock()
			dc.desired = op == "PUT"
			dc.mu.Unlock()
			dc.s.Changed()
			status = 200
		default:
			status = 400
			payload = twinError(fmt.Sprintf("unknown twin operation %q on resource %q; the operations are GET, PATCH %s, PUT and DELETE %s",
				op, res, resourceReported, resourceDesired))
		}
		if status >= 300 && payload == nil {
			payload = twinError(fmt.Sprintf("the twin %s request failed with status %d", op, status))
		}
		resp := &amqp.Message{Annotations: amqp.Annotations{annStatus: int32(status)}, Data: [][]byte{payload}}
		if payload == nil {
			resp.Data = [][]byte{{}}
		}
		if version >= 0 && status < 300 {
			resp.Annotations[annVersion] = version
		}
		if req.Properties != nil {
			resp.Properties = &amqp.MessageProperties{CorrelationID: req.Properties.CorrelationID}
		}
		rl := dc.receiver(ctx, &dc.twin)
		if rl == nil {
			dc.cs.f.log.Debug("amqp twin response dropped: the device has no twin receiver", "device", dc.id.DeviceID)
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, deviceSendTimeout)
		if _, err := rl.Start(sctx, resp); err != nil {
			dc.cs.f.log.Debug("amqp twin response not sent", "device", dc.id.DeviceID, "err", err)
		}
		cancel()
	}
}

// SendDesired sends a desired-properties patch on the device's twin
// receiver: no correlation-id, the version as a long annotation.
func (dc *devConn) SendDesired(version int64, patch []byte) error {
	dc.mu.Lock()
	l := dc.twin
	dc.mu.Unlock()
	if l == nil {
		return errNotListening
	}
	ctx, cancel := context.WithTimeout(context.Background(), deviceSendTimeout)
	defer cancel()
	_, err := l.Start(ctx, &amqp.Message{Annotations: amqp.Annotations{annVersion: version}, Data: [][]byte{patch}})
	return err
}

// twinError is the JSON body of a failed twin request (the Node SDK
// parses the body of an error answer as JSON).
func twinError(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"message": msg})
	return b
}

// annotation reads a message annotation as a string.
func annotation(m *amqp.Message, name string) string {
	for k, v := range m.Annotations {
		switch key := k.(type) {
		case string:
			if key == name {
				return str(v)
			}
		case amqp.Symbol:
			if string(key) == name {
				return str(v)
			}
		}
	}
	return ""
}

// intValue reads an integer sent as an AMQP int or long (either
// signedness, as epochOf reads them), or as a decimal string.
func intValue(v any) (int, bool) {
	if x, ok := v.(string); ok {
		n, err := strconv.Atoi(x)
		return n, err == nil
	}
	n, ok := epochOf(v)
	return int(n), ok
}

// requestIDs turns the core's method request ids (decimal numbers)
// into the AMQP uuids devices expect, and back: the first 8 bytes are
// the connection's own (so a uuid from elsewhere is not taken), the
// last 8 the number, with the version and variant bits of a random
// uuid (RFC 9562) so that SDKs that check the form (the Node SDK's
// amqp_message.ts encodes a response's correlation id as a uuid only
// when it looks like one) send it back as a uuid.
type requestIDs struct{ prefix [8]byte }

func newRequestIDs() requestIDs {
	var r requestIDs
	_, _ = rand.Read(r.prefix[:])
	r.prefix[6] = r.prefix[6]&0x0f | 0x40
	return r
}

func (r *requestIDs) encode(rid string) (amqp.UUID, error) {
	var u amqp.UUID
	n, err := strconv.ParseUint(rid, 10, 64)
	if err != nil || n >= 1<<62 {
		return u, fmt.Errorf("amqpfront: method request id %q is not a number below 2^62", rid)
	}
	copy(u[:8], r.prefix[:])
	binary.BigEndian.PutUint64(u[8:], n|1<<63)
	return u, nil
}

func (r *requestIDs) decode(v any) (string, bool) {
	var u [16]byte
	switch x := v.(type) {
	case amqp.UUID:
		u = x
	case string:
		p, err := uuid.Parse(x)
		if err != nil {
			return "", false
		}
		u = p
	case []byte:
		if len(x) != 16 {
			return "", false
		}
		copy(u[:], x)
	default:
		return "", false
	}
	if !bytes.Equal(u[:8], r.prefix[:]) {
		return "", false
	}
	return strconv.FormatUint(binary.BigEndian.Uint64(u[8:])&^(3<<62), 10), true
}
