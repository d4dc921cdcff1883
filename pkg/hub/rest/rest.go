package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/auth"
	"github.com/iotctl/iotctl/pkg/hub/registry"
)

const contentType = "application/json; charset=utf-8"

// Methods invokes direct methods through devices' MQTT connections.
type Methods interface {
	// Invoke calls method name on a device (moduleID "") or module with
	// a JSON payload and returns the device's status and JSON result.
	// connectTimeout is how long to wait for the device to come online
	// (0: it must be online now); responseTimeout how long to wait for
	// its answer. It returns ErrDeviceNotOnline or ErrTimeout (possibly
	// wrapped), or ctx's error when the HTTP client goes away.
	Invoke(ctx context.Context, deviceID, moduleID, name string, payload json.RawMessage, connectTimeout, responseTimeout time.Duration) (status int, result json.RawMessage, err error)
}

// Presence tells which devices and modules are connected.
type Presence interface {
	// State returns whether the identity is connected, since when
	// (connect or disconnect time; zero if never) and when it was last
	// active (zero if never).
	State(deviceID, moduleID string) (connected bool, since, lastActivity time.Time)
	// Connected is the number of connected devices.
	Connected() int
}

// Twins pushes desired-property changes to connected devices.
type Twins interface {
	// DesiredChanged is called after a twin PATCH or PUT changed the
	// desired properties: patch is the JSON merge patch with "$version",
	// version its $version. It must not block for long.
	DesiredChanged(deviceID, moduleID string, patch json.RawMessage, version int64)
}

// Authorizer checks service tokens; *auth.Authorizer implements it.
type Authorizer interface {
	Service(token string, need registry.Rights) (policy string, err error)
	// Bearer checks a Microsoft Entra ID token ("Bearer eyJ...") and
	// its principal's role for action.
	Bearer(token string, action auth.Action) (*auth.Principal, error)
}

// Options configure a Handler. Store and Auth are required.
type Options struct {
	// Store holds identities, twins and queues. Required.
	Store *registry.Store
	// Auth checks the Authorization header. Required.
	Auth Authorizer
	// Methods runs direct methods. Default: nil, every device is offline
	// (404103).
	Methods Methods
	// Presence fills connectionState, connectionStateUpdatedTime and
	// lastActivityTime. Default: nil, every identity is disconnected.
	Presence Presence
	// Twins is told about desired-property changes. Default: nil.
	Twins Twins
	// Logger gets one debug line per request (never the Authorization
	// header) and server errors. Default: discard.
	Logger *slog.Logger
	// Now is the clock for error time stamps. Default: time.Now.
	Now func() time.Time
}

// Handler is the hub's HTTPS service API (PROTOCOL.md §4–5) as an
// http.Handler. It is safe for concurrent use.
type Handler struct {
	store    *registry.Store
	auth     Authorizer
	methods  Methods
	presence Presence
	twins    Twins
	log      *slog.Logger
	now      func() time.Time
}

// New returns a Handler. It fails when opts, opts.Store or opts.Auth is nil.
func New(opts *Options) (*Handler, error) {
	if opts == nil || opts.Store == nil || opts.Auth == nil {
		return nil, errors.New("rest: Options.Store and Options.Auth are required")
	}
	h := &Handler{
		store:    opts.Store,
		auth:     opts.Auth,
		methods:  opts.Methods,
		presence: opts.Presence,
		twins:    opts.Twins,
		log:      opts.Logger,
		now:      opts.Now,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// Body limits. Bodies over them get 413 / 413001 MessageTooLarge, the
// code IoT Hub uses for a request entity too large (the C# service
// SDK's IotHubServiceErrorCode.MessageTooLarge, under "RequestEntityTooLarge
// - 413").
const (
	maxIdentityBody = 64 * 1024
	// maxTwinBody leaves room for a whole twin sent back with PUT: IoT
	// Hub keeps tags to 8 KB and desired and reported properties to
	// 32 KB each, without $metadata and $version ("Device twin size" in
	// iot-hub-devguide-device-twins.md); the registry enforces those.
	maxTwinBody   = 128 * 1024
	maxMethodBody = 256 * 1024 // the payload itself is limited to 128 KB
	maxQueryBody  = 16 * 1024
	// maxDrain is how much of a too-large body the handler reads and
	// throws away before it answers 413, so that a client that sends
	// its whole body before reading the answer (Python's http.client)
	// reads the 413 instead of a connection reset. Beyond it the
	// connection is closed after the answer.
	maxDrain = 64 << 20
	// MaxMethodPayload is the largest direct-method payload, as IoT Hub.
	MaxMethodPayload = 128 * 1024
	// maxTop is the most devices GET /devices returns, as IoT Hub.
	maxTop = 1000
	// defaultQueryPage and maxQueryPage bound a page of query results
	// (x-ms-max-item-count), as IoT Hub does.
	defaultQueryPage = 100
	maxQueryPage     = 1000
)

// request is a matched route.
type request struct {
	w        http.ResponseWriter
	r        *http.Request
	deviceID string
	moduleID string
}

type endpoint struct {
	// need lists alternatives: any one of them is enough.
	need []registry.Rights
	// action is the Entra ID data action a bearer token's principal
	// needs.
	action  auth.Action
	handler func(h *Handler, q *request)
}

// route finds the endpoints of a path: a map from HTTP method to
// endpoint, with the ids found in the path. nil means no such path.
func route(segs []string) (map[string]endpoint, string, string) {
	is := func(i int, s string) bool { return i < len(segs) && strings.EqualFold(segs[i], s) }
	n := len(segs)
	for _, s := range segs {
		if s == "" {
			return nil, "", ""
		}
	}
	read := []registry.Rights{registry.RegistryRead}
	write := []registry.Rights{registry.RegistryWrite}
	twinRead := []registry.Rights{registry.RegistryRead, registry.ServiceConnect}
	twinWrite := []registry.Rights{registry.RegistryWrite, registry.ServiceConnect}
	service := []registry.Rights{registry.ServiceConnect}
	switch {
	case n == 1 && is(0, "devices"):
		return map[string]endpoint{"GET": {read, auth.ActionDevicesRead, (*Handler).listDevices}}, "", ""
	case n == 2 && is(0, "devices"):
		m := map[string]endpoint{
			"GET":    {read, auth.ActionDevicesRead, (*Handler).getDevice},
			"PUT":    {write, auth.ActionDevicesWrite, (*Handler).putDevice},
			"DELETE": {write, auth.ActionDevicesDelete, (*Handler).deleteDevice},
		}
		if is(1, "query") {
			m["POST"] = endpoint{twinRead, auth.ActionTwinsRead, (*Handler).query}
		}
		return m, segs[1], ""
	case n == 3 && is(0, "devices") && is(2, "modules"):
		return map[string]endpoint{"GET": {read, auth.ActionDevicesRead, (*Handler).listModules}}, segs[1], ""
	case n == 3 && is(0, "devices") && is(2, "commands"):
		return map[string]endpoint{"DELETE": {service, auth.ActionC2DPurge, (*Handler).purgeCommands}}, segs[1], ""
	case n == 4 && is(0, "devices") && is(2, "modules"):
		return map[string]endpoint{
			"GET":    {read, auth.ActionDevicesRead, (*Handler).getModule},
			"PUT":    {write, auth.ActionDevicesWrite, (*Handler).putModule},
			"DELETE": {write, auth.ActionDevicesDelete, (*Handler).deleteModule},
		}, segs[1], segs[3]
	case n == 2 && is(0, "twins"), n == 4 && is(0, "twins") && is(2, "modules"):
		mid := ""
		if n == 4 {
			mid = segs[3]
		}
		return map[string]endpoint{
			"GET":   {twinRead, auth.ActionTwinsRead, (*Handler).getTwin},
			"PATCH": {twinWrite, auth.ActionTwinsWrite, (*Handler).patchTwin},
			"PUT":   {twinWrite, auth.ActionTwinsWrite, (*Handler).replaceTwin},
		}, segs[1], mid
	case n == 3 && is(0, "twins") && is(2, "methods"):
		return map[string]endpoint{"POST": {service, auth.ActionMethodsInvoke, (*Handler).invoke}}, segs[1], ""
	case n == 5 && is(0, "twins") && is(2, "modules") && is(4, "methods"):
		return map[string]endpoint{"POST": {service, auth.ActionMethodsInvoke, (*Handler).invoke}}, segs[1], segs[3]
	case n == 2 && is(0, "statistics") && is(1, "devices"):
		return map[string]endpoint{"GET": {read, auth.ActionStatisticsRead, (*Handler).deviceStats}}, "", ""
	case n == 2 && is(0, "statistics") && is(1, "service"):
		return map[string]endpoint{"GET": {service, auth.ActionStatisticsRead, (*Handler).serviceStats}}, "", ""
	}
	return nil, "", ""
}

// SplitPath splits an escaped URL path into decoded segments, so that an
// id containing an encoded "/" or "?" stays one segment. A trailing
// slash is ignored.
func SplitPath(escaped string) ([]string, bool) {
	escaped = strings.TrimPrefix(escaped, "/")
	escaped = strings.TrimSuffix(escaped, "/")
	if escaped == "" {
		return nil, true
	}
	parts := strings.Split(escaped, "/")
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = s
	}
	return parts, true
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	start := h.now()
	h.serve(sw, r)
	h.log.Debug("rest request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", h.now().Sub(start))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	segs, ok := SplitPath(r.URL.EscapedPath())
	if !ok {
		h.writeError(w, newError(registry.ErrArgumentInvalid, "the path is not valid percent-encoding"))
		return
	}
	eps, deviceID, moduleID := route(segs)
	if eps == nil {
		h.writeError(w, newError(errNotFound, "no resource at "+r.URL.Path))
		return
	}
	ep, ok := eps[r.Method]
	if !ok {
		var allow []string
		for _, m := range []string{"GET", "PUT", "PATCH", "POST", "DELETE"} {
			if _, ok := eps[m]; ok {
				allow = append(allow, m)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.writeError(w, newError(errMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path))
		return
	}
	if err := h.authorize(r, ep.need, ep.action); err != nil {
		h.writeError(w, newError(registry.ErrUnauthorized, err.Error()))
		return
	}
	ep.handler(h, &request{w: w, r: r, deviceID: deviceID, moduleID: moduleID})
}

// authorize accepts the request when its SAS token grants any one of
// the alternatives in need, or its bearer token's principal has a role
// that allows action.
func (h *Handler) authorize(r *http.Request, need []registry.Rights, action auth.Action) error {
	tok := r.Header.Get("Authorization")
	if tok == "" {
		return errors.New("no Authorization header")
	}
	if auth.IsBearer(tok) {
		_, err := h.auth.Bearer(tok, action)
		return err
	}
	var first error
	for _, n := range need {
		_, err := h.auth.Service(tok, n)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
		var ae *auth.Error
		if !errors.As(err, &ae) || ae.Reason != auth.ReasonPermission {
			break // only a missing permission is worth another try
		}
	}
	return first
}

// readJSON reads a body of at most limit bytes into v. It answers the
// request itself and returns false on failure.
func (h *Handler) readJSON(q *request, limit int64, v any) bool {
	body, ok := h.readBody(q, limit)
	if !ok {
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		h.writeError(q.w, newError(registry.ErrArgumentInvalid, "the request has no body"))
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		h.writeError(q.w, newError(registry.ErrArgumentInvalid, "the body is not valid JSON for this request: "+err.Error()))
		return false
	}
	return true
}

func (h *Handler) readBody(q *request, limit int64) ([]byte, bool) {
	r := q.r
	if r.ContentLength > limit {
		// Answer before reading. A client waiting for "100 Continue"
		// gets the 413 instead and never sends the body.
		h.tooLarge(q, limit, !expectsContinue(r))
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		h.writeError(q.w, newError(registry.ErrArgumentInvalid, "cannot read the request body"))
		return nil, false
	}
	if int64(len(body)) > limit {
		h.tooLarge(q, limit, true)
		return nil, false
	}
	return body, true
}

// tooLarge answers 413 MessageTooLarge for a body over limit. With
// drain, it first reads and discards the rest of the body (up to
// maxDrain), which the client is sending: closing the connection on
// unread data would reset it, and a client still writing would lose
// the answer.
func (h *Handler) tooLarge(q *request, limit int64, drain bool) {
	if drain {
		n, _ := io.CopyN(io.Discard, q.r.Body, maxDrain)
		if n == maxDrain {
			q.w.Header().Set("Connection", "close")
		}
	}
	h.writeError(q.w, newError(registry.ErrMessageTooLarge, fmt.Sprintf(
		"the request body is over %d bytes, the most %s %s accepts: send a smaller one", limit, q.r.Method, routeName(q.r.URL.Path))))
}

// expectsContinue reports whether the client waits for "100 Continue"
// before it sends the body.
func expectsContinue(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Expect"), "100-continue")
}

// routeName is the path for messages: the first segment and "/..."
// when there are more ("/twins/..."), so that no id is echoed.
func routeName(p string) string {
	p = strings.TrimPrefix(p, "/")
	first, _, more := strings.Cut(p, "/")
	if more {
		return "/" + first + "/..."
	}
	return "/" + first
}

// writeJSON answers status with v as JSON and, when etag is set, an
// ETag header with the quoted etag.
func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any, etag string) {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("rest encode", "err", err)
		h.writeError(w, asError(err))
		return
	}
	w.Header().Set("Content-Type", contentType)
	if etag != "" {
		w.Header().Set("ETag", `"`+etag+`"`)
	}
	w.WriteHeader(status)
	w.Write(b)
}

// fail answers with err mapped to an IoT Hub error, logging server errors.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	e := asError(err)
	if e.HTTPStatus() >= 500 {
		h.log.Error("rest", "err", err)
	}
	h.writeError(w, e)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
