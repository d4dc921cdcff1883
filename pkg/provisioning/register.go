package provisioning

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/iotctl/iotctl/pkg/hub/dps"
	"github.com/iotctl/iotctl/pkg/sas"
)

// GlobalHost is Azure's global device endpoint of DPS (Azure docs,
// articles/iot-dps/how-to-control-access.md).
const GlobalHost = "global.azure-devices-provisioning.net"

// APIVersion is the api-version the device SDKs send
// (azure-iot-sdk-node provisioning/device/src/constants.ts).
const APIVersion = "2019-03-31"

// DefaultRetryAfter is how long Register waits between polls when DPS
// sends no retry-after, as the Node SDK's default polling interval.
const DefaultRetryAfter = 2 * time.Second

// Options say how to register. IDScope, RegistrationID and one of
// SymmetricKey or Certificate are required.
type Options struct {
	// Host is the DPS device endpoint, host[:port]. Default: GlobalHost.
	Host string
	// IDScope is the DPS instance's ID scope.
	IDScope string
	// RegistrationID is the device's registration id.
	RegistrationID string
	// SymmetricKey is the device's key (base64): its individual
	// enrollment's, or the one derived from a group key (dps.DeriveKey).
	SymmetricKey string
	// Certificate is the device's X.509 certificate and key, for X.509
	// attestation (its CN is the registration id).
	Certificate *tls.Certificate
	// Payload is custom JSON data sent with the registration. Default: none.
	Payload json.RawMessage
	// RootCAs verify the server. Default: the system's.
	RootCAs *x509.CertPool
	// Proxy is the HTTP proxy function. Default: http.ProxyFromEnvironment.
	Proxy func(*http.Request) (*url.URL, error)
	// TokenTTL is the lifetime of the SAS token. Default: one hour, as
	// the Node SDK's (azure-iot-sdk-node provisioning/.../symmetric_key.ts).
	TokenTTL time.Duration
	// Now is the clock of token expiry. Default: time.Now.
	Now func() time.Time
	// After waits between polls. Default: time.After.
	After func(time.Duration) <-chan time.Time
}

// Result is a finished registration.
type Result struct {
	// OperationID is the operation DPS gave the registration.
	OperationID string
	// State is the registration state: status assigned, assignedHub,
	// deviceId, and the rest DPS returned.
	State dps.RegistrationState
}

// Error is DPS's refusal of a request, or a registration that ended in
// status failed (HTTPStatus 200). It never carries key material.
type Error struct {
	// HTTPStatus is the response status (200 for a failed registration).
	HTTPStatus int
	// Code is DPS's error code, e.g. 401002 (0 when none was sent).
	Code int
	// Message is DPS's message.
	Message string
}

func (e *Error) Error() string {
	if e.HTTPStatus == http.StatusOK {
		return fmt.Sprintf("provisioning: registration failed (%d): %s", e.Code, e.Message)
	}
	if e.Code != 0 {
		return fmt.Sprintf("provisioning: %d %s (%d): %s", e.HTTPStatus, http.StatusText(e.HTTPStatus), e.Code, e.Message)
	}
	return fmt.Sprintf("provisioning: %d %s: %s", e.HTTPStatus, http.StatusText(e.HTTPStatus), e.Message)
}

// Refused reports whether DPS refused the device itself: its
// credentials, its enrollment (disabled or missing) or its ID scope
// (HTTP 401, 403 or 404).
func (e *Error) Refused() bool {
	return e.HTTPStatus == http.StatusUnauthorized || e.HTTPStatus == http.StatusForbidden || e.HTTPStatus == http.StatusNotFound
}

// ErrUsage is wrapped by errors in Options.
var ErrUsage = errors.New("provisioning: bad options")

type client struct {
	o     Options
	http  *http.Client
	base  string
	token func() (string, error)
	// apiVersion is the api-version sent. Default: APIVersion.
	apiVersion string
}

// Register registers the device and polls until DPS assigns it (or the
// registration fails), waiting retry-after between requests and
// retrying 429 and 5xx answers, until ctx ends. It returns an *Error for
// a refusal or a failed registration, ctx's error when it ends first,
// or a network error.
func Register(ctx context.Context, opts *Options) (*Result, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	defer c.http.CloseIdleConnections()
	body, _ := json.Marshal(struct {
		RegistrationID string          `json:"registrationId"`
		Payload        json.RawMessage `json:"payload,omitempty"`
	}{c.o.RegistrationID, c.o.Payload})
	path := "/" + url.PathEscape(c.o.IDScope) + "/registrations/" + url.PathEscape(c.o.RegistrationID)
	var op dps.OperationStatus
	wait, err := c.do(ctx, http.MethodPut, path+"/register", body, &op)
	for err == nil && (op.Status == dps.RegAssigning || op.Status == dps.RegUnassigned || op.Status == "") {
		if err = c.sleep(ctx, wait); err != nil {
			break
		}
		wait, err = c.do(ctx, http.MethodGet, path+"/operations/"+url.PathEscape(op.OperationID), nil, &op)
	}
	if err != nil {
		return nil, err
	}
	res := &Result{OperationID: op.OperationID}
	if op.RegistrationState != nil {
		res.State = *op.RegistrationState
	}
	if op.Status != dps.RegAssigned {
		msg := res.State.ErrorMessage
		if msg == "" {
			msg = "status " + op.Status
		}
		return res, &Error{HTTPStatus: http.StatusOK, Code: res.State.ErrorCode, Message: msg}
	}
	return res, nil
}

func newClient(opts *Options) (*client, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: no options", ErrUsage)
	}
	c := &client{o: *opts}
	if c.o.Host == "" {
		c.o.Host = GlobalHost
	}
	if c.o.IDScope == "" || c.o.RegistrationID == "" {
		return nil, fmt.Errorf("%w: an ID scope and a registration id are required", ErrUsage)
	}
	if (c.o.SymmetricKey == "") == (c.o.Certificate == nil) {
		return nil, fmt.Errorf("%w: give either a symmetric key or a certificate", ErrUsage)
	}
	if c.o.Now == nil {
		c.o.Now = time.Now
	}
	if c.o.After == nil {
		c.o.After = time.After
	}
	if c.o.TokenTTL <= 0 {
		c.o.TokenTTL = time.Hour
	}
	if c.o.Proxy == nil {
		c.o.Proxy = http.ProxyFromEnvironment
	}
	tc := &tls.Config{RootCAs: c.o.RootCAs, MinVersion: tls.VersionTLS12}
	if h, _, err := net.SplitHostPort(c.o.Host); err == nil {
		tc.ServerName = h
	}
	if c.o.Certificate != nil {
		// Always present the certificate, whatever CAs the server names:
		// a self-signed device certificate is issued by none of them.
		cert := c.o.Certificate
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	} else {
		key, err := sas.DecodeKey(c.o.SymmetricKey)
		if err != nil {
			return nil, fmt.Errorf("%w: the symmetric key is not base64", ErrUsage)
		}
		resource := dps.RegistrationResource(c.o.IDScope, c.o.RegistrationID)
		c.token = func() (string, error) {
			t, err := sas.Sign(resource, key, &sas.SignOptions{KeyName: dps.DeviceKeyName, TTL: c.o.TokenTTL, Now: c.o.Now})
			if err != nil {
				return "", err
			}
			return t.Encode(), nil
		}
	}
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc, Proxy: c.o.Proxy, ForceAttemptHTTP2: false}}
	c.base = "https://" + c.o.Host
	return c, nil
}

// do sends one request and decodes a 2xx answer into v; it retries 429
// and 5xx after their retry-after. It returns the retry-after of the
// answer.
func (c *client) do(ctx context.Context, method, path string, body []byte, v any) (time.Duration, error) {
	h, err := c.exchange(ctx, method, path, body, nil, v)
	if err != nil {
		return 0, err
	}
	return retryAfter(h.Get("Retry-After")), nil
}

// exchange sends one request with the extra headers hdr and decodes a
// 2xx answer's body, if any, into v (nil: not decoded); it retries 429
// and 5xx after their retry-after. It returns the answer's headers, or
// an *Error with DPS's status, code and message.
func (c *client) exchange(ctx context.Context, method, path string, body []byte, hdr map[string]string, v any) (http.Header, error) {
	apiVersion := c.apiVersion
	if apiVersion == "" {
		apiVersion = APIVersion
	}
	for {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path+"?api-version="+apiVersion, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		for k, val := range hdr {
			req.Header.Set(k, val)
		}
		if c.token != nil {
			tok, err := c.token()
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", tok)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("provisioning: %s %s: %w", method, c.base, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("provisioning: reading the answer: %w", err)
		}
		switch {
		case resp.StatusCode < 300:
			if v != nil && len(bytes.TrimSpace(data)) > 0 {
				if err := json.Unmarshal(data, v); err != nil {
					return nil, fmt.Errorf("provisioning: the answer to %s %s is not what DPS sends: %w", method, path, err)
				}
			}
			return resp.Header, nil
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			if err := c.sleep(ctx, retryAfter(resp.Header.Get("Retry-After"))); err != nil {
				return nil, err
			}
		default:
			var e struct {
				ErrorCode int    `json:"errorCode"`
				Message   string `json:"message"`
			}
			_ = json.Unmarshal(data, &e)
			if e.Message == "" {
				e.Message = string(bytes.TrimSpace(data))
			}
			return nil, &Error{HTTPStatus: resp.StatusCode, Code: e.ErrorCode, Message: e.Message}
		}
	}
}

func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(h); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return DefaultRetryAfter
}

func (c *client) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.o.After(d):
		return nil
	}
}
