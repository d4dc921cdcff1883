package dps

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/iotctl/iotctl/pkg/sas"
)

const contentType = "application/json; charset=utf-8"

// maxBody bounds a request body.
const maxBody = 256 * 1024

// HandlerOptions configure the HTTPS front end. A nil *HandlerOptions
// means the defaults.
type HandlerOptions struct {
	// PeerCertificates returns the client certificates of a request's
	// TLS connection, leaf first (nil when it sent none), for X.509
	// devices. Default: r.TLS.PeerCertificates.
	PeerCertificates func(r *http.Request) []*x509.Certificate
}

// Handler returns the HTTPS device and service APIs of the service:
//
//	PUT  /{idScope}/registrations/{id}/register             register (202 assigning, retry-after)
//	GET  /{idScope}/registrations/{id}/operations/{opId}     operation status (200 assigned/failed)
//	POST /{idScope}/registrations/{id}                       the device's registration state
//	PUT|GET|DELETE /enrollments/{id}, POST /enrollments (bulk), POST /enrollments/query,
//	POST /enrollments/{id}/attestationmechanism, the same under /enrollmentGroups,
//	GET|DELETE /registrations/{id}, POST /registrations/{groupId}/query
//
// as azure-iot-provisioning-device-http and azure-iot-provisioning-service
// send them (azure-iot-sdk-node provisioning/transport/http/src/http.ts,
// provisioning/service/src/provisioningserviceclient.ts). Paths are
// matched case-insensitively; any api-version is accepted. Use IsPath to
// tell these paths from IoT Hub's.
func (s *Service) Handler(opts *HandlerOptions) http.Handler {
	h := &handler{s: s, peer: func(r *http.Request) []*x509.Certificate {
		if r.TLS == nil {
			return nil
		}
		return r.TLS.PeerCertificates
	}}
	if opts != nil && opts.PeerCertificates != nil {
		h.peer = opts.PeerCertificates
	}
	return h
}

// iotHubRoots are the first path segments of IoT Hub's own APIs, which
// are never DPS's.
var iotHubRoots = []string{"devices", "twins", "statistics", "jobs", "configurations", "digitaltwins", "health", "$iothub", "$servicebus"}

// serviceRoots are the first path segments of the DPS service API.
var serviceRoots = []string{"enrollments", "enrollmentgroups", "registrations"}

// IsPath reports whether an escaped request path is one of DPS's: the
// service API (/enrollments, /enrollmentGroups, /registrations) or the
// device API (/{idScope}/registrations/...), and not one of IoT Hub's.
func IsPath(escapedPath string) bool {
	segs := strings.Split(strings.Trim(escapedPath, "/"), "/")
	first := strings.ToLower(segs[0])
	for _, r := range iotHubRoots {
		if first == r {
			return false
		}
	}
	for _, r := range serviceRoots {
		if first == r {
			return true
		}
	}
	return len(segs) >= 3 && strings.EqualFold(segs[1], "registrations")
}

type handler struct {
	s    *Service
	peer func(r *http.Request) []*x509.Certificate
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	h.reply(w, h.s.ErrorReply(err))
}

// reply writes a device API reply, with Retry-After when it has one.
func (h *handler) reply(w http.ResponseWriter, rep *Reply) {
	w.Header().Set("Content-Type", contentType)
	if rep.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(rep.RetryAfter))
	}
	w.WriteHeader(rep.Status)
	w.Write(rep.Body)
}

func (h *handler) ok(w http.ResponseWriter, status int, v any, etag string) {
	b, err := json.Marshal(v)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	if etag != "" {
		w.Header().Set("ETag", `"`+etag+`"`)
	}
	w.WriteHeader(status)
	w.Write(b)
}

// read reads a JSON body into v; an empty body leaves v as it is when
// optional.
func (h *handler) read(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, ok := h.body(w, r)
	if !ok {
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return true
		}
		h.fail(w, errf(ErrBadRequest, "the request has no body"))
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		h.fail(w, errf(ErrBadRequest, "the body is not valid JSON for this request: %v", err))
		return false
	}
	return true
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for i, p := range segs {
		v, err := url.PathUnescape(p)
		if err != nil || v == "" {
			h.fail(w, errf(ErrBadRequest, "the path %q is not valid", r.URL.EscapedPath()))
			return
		}
		segs[i] = v
	}
	is := func(i int, s string) bool { return i < len(segs) && strings.EqualFold(segs[i], s) }
	n := len(segs)
	switch {
	case is(0, "enrollments"), is(0, "enrollmentGroups"):
		h.serveEnrollments(w, r, segs)
	case is(0, "registrations"):
		h.serveRegistrations(w, r, segs)
	case n == 4 && is(1, "registrations") && is(3, "register") && r.Method == http.MethodPut:
		h.register(w, r, segs[0], segs[2])
	case n == 5 && is(1, "registrations") && is(3, "operations") && r.Method == http.MethodGet:
		h.operation(w, r, segs[0], segs[2], segs[4])
	case n == 3 && is(1, "registrations") && r.Method == http.MethodPost:
		h.deviceState(w, r, segs[0], segs[2])
	case n >= 3 && is(1, "registrations"):
		h.fail(w, errf(ErrMethodNotAllowed, "%s %s is not part of the DPS device API", r.Method, r.URL.Path))
	default:
		h.fail(w, errf(ErrNotFound, "no DPS resource at %s", r.URL.Path))
	}
}

func (h *handler) credentials(r *http.Request) Credentials {
	if a := r.Header.Get("Authorization"); a != "" {
		return Credentials{Token: a}
	}
	return Credentials{Certificates: h.peer(r)}
}

// body reads a request body of at most maxBody bytes, or answers the
// error and returns false.
func (h *handler) body(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, errf(ErrTooLarge, "the request body is larger than %d bytes", maxBody))
		} else {
			h.fail(w, errf(ErrBadRequest, "cannot read the request body"))
		}
		return nil, false
	}
	return body, true
}

func (h *handler) register(w http.ResponseWriter, r *http.Request, scope, regID string) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	rep := h.s.RegisterReply(scope, regID, body, h.credentials(r))
	if rep.Err == nil {
		w.Header().Set("Location", "https://"+r.Host+"/"+url.PathEscape(scope)+"/registrations/"+url.PathEscape(regID)+"/register")
	}
	h.reply(w, rep)
}

func (h *handler) operation(w http.ResponseWriter, r *http.Request, scope, regID, opID string) {
	h.reply(w, h.s.OperationReply(scope, regID, opID, h.credentials(r)))
}

func (h *handler) deviceState(w http.ResponseWriter, r *http.Request, scope, regID string) {
	cred := h.credentials(r)
	st, err := h.s.DeviceRegistrationState(scope, regID, &cred)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.ok(w, http.StatusOK, st, st.Etag)
}

// authorize checks a service request's SAS token: a policy (skn) of
// this service, signed with its key, unexpired, scoped to one of the
// service's host names, with the right need.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, need Rights) bool {
	err := h.s.authorizeService(r.Header.Get("Authorization"), need)
	if err != nil {
		h.fail(w, err)
		return false
	}
	return true
}

func (s *Service) authorizeService(header string, need Rights) error {
	if header == "" {
		return errf(ErrUnauthorized, "no Authorization header: sign a SAS token with the %s policy's key (its connection string)", OwnerPolicy)
	}
	tok, err := sas.Parse(header)
	if err != nil {
		return errf(ErrUnauthorized, "the Authorization header is not a SharedAccessSignature token: %v", err)
	}
	if tok.KeyName == "" {
		return errf(ErrUnauthorized, "the token names no shared access policy (skn)")
	}
	p, err := s.Policy(tok.KeyName)
	if err != nil {
		return err
	}
	if err := verifyToken(tok, s.now(), p.PrimaryKey, p.SecondaryKey); err != nil {
		return err
	}
	if len(s.hosts) > 0 {
		covered := false
		for _, host := range s.hosts {
			covered = covered || sas.Covers(host, tok.Scope())
		}
		if !covered {
			return errf(ErrUnauthorized, "the token is signed for %q, which is not this service's host", tok.Scope())
		}
	}
	if !p.Rights.Has(need) {
		return errf(ErrUnauthorized, "the policy %s lacks %s", p.KeyName, (need &^ p.Rights).String())
	}
	return nil
}

// pageHeaders reads x-ms-max-item-count and x-ms-continuation.
func pageHeaders(r *http.Request) (string, int) {
	max, _ := strconv.Atoi(r.Header.Get("x-ms-max-item-count"))
	return r.Header.Get("x-ms-continuation"), max
}

func writePage[T any](h *handler, w http.ResponseWriter, p *Page[T], err error) {
	if err != nil {
		h.fail(w, err)
		return
	}
	if p.Continuation != "" {
		w.Header().Set("x-ms-continuation", p.Continuation)
	}
	h.ok(w, http.StatusOK, p.Items, "")
}

type queryBody struct {
	Query string `json:"query"`
}

func (h *handler) serveEnrollments(w http.ResponseWriter, r *http.Request, segs []string) {
	group := strings.EqualFold(segs[0], "enrollmentGroups")
	n := len(segs)
	need := map[string]Rights{http.MethodGet: EnrollmentRead, http.MethodPut: EnrollmentWrite, http.MethodDelete: EnrollmentWrite}
	switch {
	case n == 1 && r.Method == http.MethodPost && !group:
		if h.authorize(w, r, EnrollmentWrite) {
			h.bulk(w, r)
		}
	case n == 2 && strings.EqualFold(segs[1], "query") && r.Method == http.MethodPost:
		var q queryBody
		if !h.authorize(w, r, EnrollmentRead) || !h.read(w, r, &q, false) {
			return
		}
		cont, max := pageHeaders(r)
		if group {
			p, err := h.s.QueryGroups(q.Query, cont, max)
			writePage(h, w, p, err)
		} else {
			p, err := h.s.QueryEnrollments(q.Query, cont, max)
			writePage(h, w, p, err)
		}
	case n == 3 && strings.EqualFold(segs[2], "attestationmechanism") && r.Method == http.MethodPost:
		if !h.authorize(w, r, EnrollmentRead) {
			return
		}
		var a *Attestation
		var err error
		if group {
			var g *EnrollmentGroup
			if g, err = h.s.Group(segs[1]); err == nil {
				a = g.Attestation
			}
		} else {
			var e *IndividualEnrollment
			if e, err = h.s.Enrollment(segs[1]); err == nil {
				a = e.Attestation
			}
		}
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, http.StatusOK, a, "")
	case n == 2 && need[r.Method] != 0:
		if !h.authorize(w, r, need[r.Method]) {
			return
		}
		if group {
			h.groupItem(w, r, segs[1])
		} else {
			h.enrollmentItem(w, r, segs[1])
		}
	default:
		h.fail(w, errf(ErrMethodNotAllowed, "%s %s is not part of the DPS service API", r.Method, r.URL.Path))
	}
}

func (h *handler) enrollmentItem(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodGet:
		e, err := h.s.Enrollment(id)
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, http.StatusOK, e, e.Etag)
	case http.MethodDelete:
		if err := h.s.DeleteEnrollment(id, r.Header.Get("If-Match")); err != nil {
			h.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		var e IndividualEnrollment
		if !h.read(w, r, &e, false) {
			return
		}
		if e.RegistrationID == "" {
			e.RegistrationID = id
		} else if !strings.EqualFold(e.RegistrationID, id) {
			h.fail(w, errIDMismatch("registrationId", e.RegistrationID, id))
			return
		}
		out, err := h.s.PutEnrollment(&e, ifMatch(r, e.Etag))
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, http.StatusOK, out, out.Etag)
	}
}

func (h *handler) groupItem(w http.ResponseWriter, r *http.Request, id string) {
	switch r.Method {
	case http.MethodGet:
		g, err := h.s.Group(id)
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, http.StatusOK, g, g.Etag)
	case http.MethodDelete:
		if err := h.s.DeleteGroup(id, r.Header.Get("If-Match")); err != nil {
			h.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		var g EnrollmentGroup
		if !h.read(w, r, &g, false) {
			return
		}
		if g.EnrollmentGroupID == "" {
			g.EnrollmentGroupID = id
		} else if !strings.EqualFold(g.EnrollmentGroupID, id) {
			h.fail(w, errIDMismatch("enrollmentGroupId", g.EnrollmentGroupID, id))
			return
		}
		out, err := h.s.PutGroup(&g, ifMatch(r, g.Etag))
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, http.StatusOK, out, out.Etag)
	}
}

// ifMatch is the If-Match header, else the etag in the body.
func ifMatch(r *http.Request, bodyEtag string) string {
	if v := r.Header.Get("If-Match"); v != "" {
		return v
	}
	return bodyEtag
}

func (h *handler) serveRegistrations(w http.ResponseWriter, r *http.Request, segs []string) {
	n := len(segs)
	switch {
	case n == 3 && strings.EqualFold(segs[2], "query") && r.Method == http.MethodPost:
		if !h.authorize(w, r, RegistrationStatusRead) {
			return
		}
		cont, max := pageHeaders(r)
		p, err := h.s.QueryGroupRegistrations(segs[1], cont, max)
		writePage(h, w, p, err)
	case n == 2 && r.Method == http.MethodGet:
		if !h.authorize(w, r, RegistrationStatusRead) {
			return
		}
		st, err := h.s.RegistrationState(segs[1])
		if err != nil {
			h.fail(w, err)
			return
		}
		h.ok(w, http.StatusOK, st, st.Etag)
	case n == 2 && r.Method == http.MethodDelete:
		if !h.authorize(w, r, RegistrationStatusWrite) {
			return
		}
		if err := h.s.DeleteRegistrationState(segs[1], r.Header.Get("If-Match")); err != nil {
			h.fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		h.fail(w, errf(ErrMethodNotAllowed, "%s %s is not part of the DPS service API", r.Method, r.URL.Path))
	}
}

// bulkRequest and bulkResult are the bodies of POST /enrollments.
type bulkRequest struct {
	Mode        string                 `json:"mode"`
	Enrollments []IndividualEnrollment `json:"enrollments"`
}

type bulkError struct {
	RegistrationID string `json:"registrationId"`
	ErrorCode      int    `json:"errorCode"`
	ErrorStatus    string `json:"errorStatus"`
}

type bulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []bulkError `json:"errors"`
}

func (h *handler) bulk(w http.ResponseWriter, r *http.Request) {
	var req bulkRequest
	if !h.read(w, r, &req, false) {
		return
	}
	res := bulkResult{IsSuccessful: true, Errors: []bulkError{}}
	for i := range req.Enrollments {
		e := &req.Enrollments[i]
		var err error
		switch strings.ToLower(req.Mode) {
		case "create":
			if _, gerr := h.s.Enrollment(e.RegistrationID); gerr == nil {
				err = errf(ErrConflict, "the enrollment %q exists already", e.RegistrationID)
			} else {
				_, err = h.s.PutEnrollment(e, "")
			}
		case "update":
			_, err = h.s.PutEnrollment(e, "")
		case "updateifmatchetag":
			_, err = h.s.PutEnrollment(e, e.Etag)
		case "delete":
			err = h.s.DeleteEnrollment(e.RegistrationID, "")
		default:
			h.fail(w, errf(ErrBadRequest, "unknown bulk mode %q; use create, update, updateIfMatchEtag or delete", req.Mode))
			return
		}
		if err != nil {
			var de *Error
			code := ErrInternal.Code
			if errors.As(err, &de) {
				code = de.Code
			}
			res.IsSuccessful = false
			res.Errors = append(res.Errors, bulkError{RegistrationID: e.RegistrationID, ErrorCode: code, ErrorStatus: err.Error()})
		}
	}
	h.ok(w, http.StatusOK, res, "")
}
