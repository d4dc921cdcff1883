package hub

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/rest"
	"github.com/iotctl/iotctl/pkg/message"
)

// The device side of IoT Hub's HTTPS API
// (https://learn.microsoft.com/rest/api/iothub/device), as the SDKs'
// Http transports use it (azure-iot-sdk-node device/transport/http/src/http.ts,
// azure-iot-sdk-csharp iothub/device/src/Transport/HttpTransportHandler.cs,
// azure-iot-sdk-c iothub_client/src/iothubtransporthttp.c). It is an
// adapter over the device core: a device that polls holds no
// connection, so every request authenticates and calls the core.

// deviceOp is what a device-side HTTPS request asks for.
type deviceOp int

const (
	opSend    deviceOp = iota // POST .../messages/events
	opReceive                 // GET .../messages/deviceBound
	opSettle                  // DELETE .../messages/deviceBound/{lockToken}[?reject]
	opAbandon                 // POST .../messages/deviceBound/{lockToken}/abandon
	opFiles                   // POST .../files[/notifications[/{correlationId}]] (fileupload.go)
)

// deviceRoute is a matched device-side path.
type deviceRoute struct {
	id     core.Identity
	op     deviceOp
	lock   string
	method string // the one HTTP method the path takes
	file   fileRoute
}

// matchDevicePath matches the decoded segments of a device-side path:
// devices/{id}[/modules/{mid}]/messages/events, .../messages/deviceBound,
// .../messages/deviceBound/{lockToken} and .../{lockToken}/abandon, and
// the file upload paths .../files, .../files/notifications[/{correlationId}]
// (matchFilePath), the fixed segments in any case. ok is false for any other path (the
// service API's).
func matchDevicePath(segs []string) (deviceRoute, bool) {
	is := func(i int, s string) bool { return i < len(segs) && strings.EqualFold(segs[i], s) }
	if !is(0, "devices") || len(segs) < 3 || segs[1] == "" {
		return deviceRoute{}, false
	}
	rt := deviceRoute{id: core.Identity{DeviceID: segs[1]}}
	rest := segs[2:]
	if is(2, "modules") && len(segs) >= 5 {
		rt.id.ModuleID = segs[3]
		rest = segs[4:]
	}
	if rt.id.ModuleID == "" && is(2, "modules") {
		return deviceRoute{}, false
	}
	if fr, ok := matchFilePath(rest); ok {
		rt.op, rt.method, rt.file = opFiles, http.MethodPost, fr
		return rt, true
	}
	isr := func(i int, s string) bool { return i < len(rest) && strings.EqualFold(rest[i], s) }
	if !isr(0, "messages") {
		return deviceRoute{}, false
	}
	switch {
	case len(rest) == 2 && isr(1, "events"):
		rt.op, rt.method = opSend, http.MethodPost
	case len(rest) == 2 && isr(1, "devicebound"):
		rt.op, rt.method = opReceive, http.MethodGet
	case len(rest) == 3 && isr(1, "devicebound") && rest[2] != "":
		rt.op, rt.method, rt.lock = opSettle, http.MethodDelete, rest[2]
	case len(rest) == 4 && isr(1, "devicebound") && isr(3, "abandon") && rest[2] != "":
		rt.op, rt.method, rt.lock = opAbandon, http.MethodPost, rest[2]
	default:
		return deviceRoute{}, false
	}
	return rt, true
}

// routeDevices sends the device-side paths to the device endpoint and
// the rest to next.
func (h *Hub) routeDevices(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if segs, ok := rest.SplitPath(r.URL.EscapedPath()); ok {
			if rt, ok := matchDevicePath(segs); ok {
				h.serveDeviceHTTP(w, r, rt)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deviceError is an IoT Hub error with a message for this request.
func deviceError(template *registry.Error, format string, args ...any) *registry.Error {
	return &registry.Error{Code: template.Code, Name: template.Name, Message: fmt.Sprintf(format, args...)}
}

func (h *Hub) serveDeviceHTTP(w http.ResponseWriter, r *http.Request, rt deviceRoute) {
	fail := func(err error) { rest.WriteError(w, err, h.now()) }
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		fail(deviceError(&registry.Error{Code: 405000, Name: "MethodNotAllowed"}, "%s is not allowed on this device path; use %s", r.Method, rt.method))
		return
	}
	authMethod, err := h.authDeviceHTTP(r, rt.id)
	if err != nil {
		h.log.Info("device https request refused", "device", rt.id.DeviceID, "module", rt.id.ModuleID, "err", err)
		fail(deviceError(registry.ErrUnauthorized, "%v", err))
		return
	}
	switch rt.op {
	case opSend:
		h.deviceSend(w, r, core.Sender{Identity: rt.id, AuthMethod: authMethod, Transport: "https"})
	case opReceive:
		h.deviceReceive(w, r, rt.id)
	case opSettle:
		o := core.Complete
		if r.URL.Query().Has("reject") {
			o = core.Reject
		}
		h.deviceSettle(w, rt, o)
	case opAbandon:
		h.deviceSettle(w, rt, core.Abandon)
	case opFiles:
		h.serveFileUpload(w, r, rt.id, rt.file)
	}
}

// authDeviceHTTP authenticates a device-side request: a SAS token in
// the Authorization header (the device's or module's own, or a hub
// policy's with DeviceConnect), or, without one, the client
// certificate of the TLS connection. It returns "sas" or "x509".
func (h *Hub) authDeviceHTTP(r *http.Request, id core.Identity) (string, error) {
	if tok := r.Header.Get("Authorization"); tok != "" {
		return "sas", h.auth.Device(tok, id.DeviceID, id.ModuleID)
	}
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok {
		return "", errors.New("no Authorization header and no client certificate")
	}
	if err := h.authX509(c, id.DeviceID, id.ModuleID); err != nil {
		return "", fmt.Errorf("no Authorization header, and %w", err)
	}
	return "x509", nil
}

// maxBatchBody is the most a batch request may carry: IoT Hub limits a
// batch to 256 KB as it limits one message ("Device-to-cloud messages:
// 256 KB", "Batch send ... up to 256 KB",
// https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling).
const maxBatchBody = message.MaxTelemetrySize

// deviceSend stores one message (the body, properties in headers) or
// a batch (Content-Type application/vnd.microsoft.iothub.json) and
// answers 204 once stored.
func (h *Hub) deviceSend(w http.ResponseWriter, r *http.Request, from core.Sender) {
	fail := func(err error) { rest.WriteError(w, err, h.now()) }
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	batch := strings.EqualFold(strings.TrimSpace(ct), message.HTTPBatchContentType)
	limit := int64(message.MaxTelemetrySize)
	if batch {
		limit = maxBatchBody
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		fail(deviceError(registry.ErrArgumentInvalid, "cannot read the request body"))
		return
	}
	if int64(len(body)) > limit {
		w.Header().Set("Connection", "close")
		fail(deviceError(registry.ErrMessageTooLarge, "the request body is over %d bytes, the most IoT Hub takes in one message or batch: send less at a time", limit))
		return
	}
	var ms []*message.Message
	if batch {
		ms, err = message.DecodeHTTPBatch(body)
	} else {
		var m *message.Message
		m, err = message.DecodeHTTP(r.Header)
		if m != nil {
			m.Body = body
			ms = []*message.Message{m}
		}
	}
	if err != nil {
		fail(deviceError(registry.ErrArgumentInvalid, "%v", err))
		return
	}
	switch err := h.core.IngestBatch(from, ms); {
	case errors.Is(err, core.ErrTooLarge):
		fail(deviceError(registry.ErrMessageTooLarge, "a message is over %d bytes (body and properties), the most IoT Hub takes", message.MaxTelemetrySize))
	case err != nil:
		fail(err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// lockTimeoutParam is the query parameter a device names its lock
// timeout with, in seconds (azure-iot-sdk-csharp HttpTransportHandler
// ReceiveAsync).
const lockTimeoutParam = "iothub-messagelocktimeout"

// maxLockTimeout bounds the lock a device may ask for.
const maxLockTimeout = 300 * time.Second

// deviceReceive locks and returns the next C2D message: 204 when there
// is none, else 200 with the body, the lock token as ETag and the
// properties in headers.
func (h *Hub) deviceReceive(w http.ResponseWriter, r *http.Request, id core.Identity) {
	fail := func(err error) { rest.WriteError(w, err, h.now()) }
	var lock time.Duration
	if v := r.URL.Query().Get(lockTimeoutParam); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || time.Duration(n)*time.Second > maxLockTimeout {
			fail(deviceError(registry.ErrArgumentInvalid, "%s=%q: give a lock timeout in whole seconds from 1 to %d", lockTimeoutParam, v, int(maxLockTimeout/time.Second)))
			return
		}
		lock = time.Duration(n) * time.Second
	}
	m, err := h.core.ReceiveC2D(id, lock)
	if err != nil {
		fail(err)
		return
	}
	if m == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	hdr := w.Header()
	message.EncodeHTTP(core.ToMessage(m), hdr)
	hdr.Set("ETag", `"`+m.LockToken+`"`)
	hdr.Set("iothub-sequencenumber", strconv.FormatUint(m.SequenceNumber, 10))
	hdr.Set("iothub-enqueuedtime", m.EnqueuedTime.UTC().Format(time.RFC3339Nano))
	hdr.Set("iothub-deliverycount", strconv.Itoa(m.DeliveryCount))
	// The C SDK reads a C2D message's content type and encoding from
	// headers named ContentType and ContentEncoding
	// (azure-iot-sdk-c iothubtransporthttp.c, IOTHUB_CONTENT_TYPE_C2D).
	if m.ContentType != "" {
		hdr.Set("ContentType", m.ContentType)
	}
	if m.ContentEncoding != "" {
		hdr.Set("ContentEncoding", m.ContentEncoding)
	}
	hdr.Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(m.Body)
}

// deviceSettle completes, rejects or abandons a received message by
// its lock token: 204, or 412 DeviceMessageLockLost for a token that
// is unknown or whose lock expired (the queue is left as it was).
func (h *Hub) deviceSettle(w http.ResponseWriter, rt deviceRoute, o core.Outcome) {
	err := h.core.SettleC2D(rt.id.DeviceID, rt.id.ModuleID, rt.lock, o)
	if err != nil {
		if errors.Is(err, registry.ErrDeviceMessageLockLost) {
			err = deviceError(registry.ErrDeviceMessageLockLost, "cannot %s: %v; receive the message again (a lock lasts one minute)", o, err)
		}
		rest.WriteError(w, err, h.now())
		return
	}
	if o == core.Abandon {
		h.core.C2DEnqueued(rt.id.DeviceID, rt.id.ModuleID)
	}
	w.WriteHeader(http.StatusNoContent)
}
