package provisioning

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/sas"
)

// ServiceAPIVersion is the api-version of the DPS service API that
// azure-iot-provisioning-service sends
// (azure-iot-sdk-node provisioning/service/src/provisioningserviceclient.ts).
const ServiceAPIVersion = "2021-10-01"

// ServiceOptions configure a Service. A nil *ServiceOptions means the
// defaults.
type ServiceOptions struct {
	// RootCAs verify the server. Default: the system's.
	RootCAs *x509.CertPool
	// Proxy is the HTTP proxy function. Default: http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)
	// Now is the clock of token expiry. Default: time.Now.
	Now func() time.Time
	// After waits before retrying a throttled (429) or failed (5xx)
	// request. Default: time.After.
	After func(time.Duration) <-chan time.Time
}

// Service is a client of the DPS service API (enrollments, enrollment
// groups, registration states), authenticated with a shared access
// policy of the DPS instance (provisioningserviceowner), as
// azure-iot-provisioning-service and `az iot dps` use it. It is safe
// for concurrent use. Errors are *Error values with DPS's status
// (404 for a missing enrollment, 401 for a refused token, 412 for an
// etag mismatch).
type Service struct {
	c *client
}

// NewService returns a client of the DPS service API of the
// connection string "HostName={dps host};SharedAccessKeyName={policy};SharedAccessKey={key}".
// It wraps ErrUsage when the connection string is not a policy's.
func NewService(connectionString string, opts *ServiceOptions) (*Service, error) {
	cs, err := connstr.Parse(connectionString)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err := cs.Require(connstr.KindService); err != nil {
		return nil, fmt.Errorf("%w: the DPS connection string must be a shared access policy's (HostName, SharedAccessKeyName, SharedAccessKey): %w", ErrUsage, err)
	}
	key, err := cs.Key()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	var o ServiceOptions
	if opts != nil {
		o = *opts
	}
	c := &client{o: Options{Host: cs.HostName, Now: o.Now, After: o.After, Proxy: o.Proxy, RootCAs: o.RootCAs}, apiVersion: ServiceAPIVersion}
	if c.o.Now == nil {
		c.o.Now = time.Now
	}
	if c.o.After == nil {
		c.o.After = time.After
	}
	if c.o.Proxy == nil {
		c.o.Proxy = http.ProxyFromEnvironment
	}
	tc := &tls.Config{RootCAs: c.o.RootCAs, MinVersion: tls.VersionTLS12}
	if h, _, err := net.SplitHostPort(cs.HostName); err == nil {
		tc.ServerName = h
	}
	// A token per request, signed for the DPS host (sr = HostName), as
	// the Node service SDK signs it.
	c.token = func() (string, error) {
		t, err := sas.Sign(cs.HostName, key, &sas.SignOptions{KeyName: cs.SharedAccessKeyName, TTL: time.Hour, Now: c.o.Now})
		if err != nil {
			return "", err
		}
		return t.Encode(), nil
	}
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: c.o.Proxy}}
	c.base = "https://" + cs.HostName
	return &Service{c: c}, nil
}

// HostName is the DPS service host of the connection string.
func (s *Service) HostName() string { return s.c.o.Host }

// Close releases the client's idle connections.
func (s *Service) Close() { s.c.http.CloseIdleConnections() }

// PutEnrollment creates or replaces an individual enrollment (with
// If-Match when e.Etag is set) and returns it as DPS stored it, with
// generated keys for a symmetric key attestation that had none.
func (s *Service) PutEnrollment(ctx context.Context, e *dps.IndividualEnrollment) (*dps.IndividualEnrollment, error) {
	var out dps.IndividualEnrollment
	return &out, s.put(ctx, "/enrollments/"+url.PathEscape(e.RegistrationID), e, e.Etag, &out)
}

// Enrollment returns an individual enrollment, keys included.
func (s *Service) Enrollment(ctx context.Context, registrationID string) (*dps.IndividualEnrollment, error) {
	var out dps.IndividualEnrollment
	_, err := s.c.exchange(ctx, http.MethodGet, "/enrollments/"+url.PathEscape(registrationID), nil, nil, &out)
	return &out, err
}

// DeleteEnrollment deletes an individual enrollment.
func (s *Service) DeleteEnrollment(ctx context.Context, registrationID string) error {
	_, err := s.c.exchange(ctx, http.MethodDelete, "/enrollments/"+url.PathEscape(registrationID), nil, nil, nil)
	return err
}

// Enrollments returns every individual enrollment (query "*", page by
// page).
func (s *Service) Enrollments(ctx context.Context) ([]dps.IndividualEnrollment, error) {
	return queryAll[dps.IndividualEnrollment](ctx, s, "/enrollments/query")
}

// PutGroup creates or replaces an enrollment group (with If-Match when
// g.Etag is set) and returns it as DPS stored it.
func (s *Service) PutGroup(ctx context.Context, g *dps.EnrollmentGroup) (*dps.EnrollmentGroup, error) {
	var out dps.EnrollmentGroup
	return &out, s.put(ctx, "/enrollmentGroups/"+url.PathEscape(g.EnrollmentGroupID), g, g.Etag, &out)
}

// Group returns an enrollment group, keys included.
func (s *Service) Group(ctx context.Context, groupID string) (*dps.EnrollmentGroup, error) {
	var out dps.EnrollmentGroup
	_, err := s.c.exchange(ctx, http.MethodGet, "/enrollmentGroups/"+url.PathEscape(groupID), nil, nil, &out)
	return &out, err
}

// DeleteGroup deletes an enrollment group.
func (s *Service) DeleteGroup(ctx context.Context, groupID string) error {
	_, err := s.c.exchange(ctx, http.MethodDelete, "/enrollmentGroups/"+url.PathEscape(groupID), nil, nil, nil)
	return err
}

// Groups returns every enrollment group.
func (s *Service) Groups(ctx context.Context) ([]dps.EnrollmentGroup, error) {
	return queryAll[dps.EnrollmentGroup](ctx, s, "/enrollmentGroups/query")
}

// RegistrationState returns a device's registration state.
func (s *Service) RegistrationState(ctx context.Context, registrationID string) (*dps.RegistrationState, error) {
	var out dps.RegistrationState
	_, err := s.c.exchange(ctx, http.MethodGet, "/registrations/"+url.PathEscape(registrationID), nil, nil, &out)
	return &out, err
}

// DeleteRegistrationState deletes a device's registration state (the
// device in the hub stays).
func (s *Service) DeleteRegistrationState(ctx context.Context, registrationID string) error {
	_, err := s.c.exchange(ctx, http.MethodDelete, "/registrations/"+url.PathEscape(registrationID), nil, nil, nil)
	return err
}

func (s *Service) put(ctx context.Context, path string, v any, etag string, out any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var hdr map[string]string
	if etag != "" {
		hdr = map[string]string{"If-Match": `"` + etag + `"`}
	}
	_, err = s.c.exchange(ctx, http.MethodPut, path, body, hdr, out)
	return err
}

// queryPageSize is the x-ms-max-item-count of a query page.
const queryPageSize = 100

// queryAll runs the query "*" on path and gathers every page, following
// the x-ms-continuation header.
func queryAll[T any](ctx context.Context, s *Service, path string) ([]T, error) {
	var all []T
	cont := ""
	for {
		hdr := map[string]string{"x-ms-max-item-count": strconv.Itoa(queryPageSize)}
		if cont != "" {
			hdr["x-ms-continuation"] = cont
		}
		var page []T
		h, err := s.c.exchange(ctx, http.MethodPost, path, []byte(`{"query":"*"}`), hdr, &page)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if cont = h.Get("x-ms-continuation"); cont == "" || len(page) == 0 {
			return all, nil
		}
	}
}
