package fileupload

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/iothub"
	"github.com/iotctl/iotctl/pkg/sas"
	"github.com/iotctl/iotctl/pkg/service"
)

// APIVersion is the api-version the requests to the hub carry, as
// azure-iot-sdk-node device/core/src/blob_upload/file_upload_api.ts
// sends it.
const APIVersion = "2021-04-12"

// Options say who the device is and how to reach the hub and the
// storage account.
type Options struct {
	// ConnectionString is the device's: with SharedAccessKey (a token
	// is signed for each request), SharedAccessSignature (used as is),
	// or x509=true with Certificate. Required unless HostName and
	// DeviceID are set with Certificate.
	ConnectionString *connstr.ConnectionString
	// HostName ("host[:port]") and DeviceID name an X.509 device
	// without a connection string.
	HostName, DeviceID string
	// Certificate is the device's client certificate, for X.509.
	Certificate *tls.Certificate
	// RootCAs are the CAs trusted for the hub and the storage account.
	// Default: the system's roots.
	RootCAs *x509.CertPool
	// Proxy is the HTTP proxy of every request. Default: nil, the
	// environment's (HTTPS_PROXY, NO_PROXY).
	Proxy *url.URL
	// TokenTTL is the lifetime of the SAS tokens signed with the key.
	// Default: one hour.
	TokenTTL time.Duration
	// Logger gets debug messages (never a key, token or SAS). Default:
	// discard.
	Logger *slog.Logger
}

// Result is a finished upload.
type Result struct {
	// CorrelationID is the hub's id of the upload.
	CorrelationID string `json:"correlationId"`
	// BlobName is the blob's name in the container,
	// "{deviceId}/{name asked for}".
	BlobName string `json:"blobName"`
	// Container is the container the hub chose.
	Container string `json:"container"`
	// BlobURL is the blob's URL, without the SAS token.
	BlobURL string `json:"blobUrl"`
	// Size is the bytes written.
	Size int64 `json:"size"`
}

// StorageError is a failed write to the storage account. The hub was
// told (isSuccess false, with StatusCode) before it is returned.
type StorageError struct {
	// StatusCode is the storage account's HTTP status, or 0 when it
	// was not reached.
	StatusCode int
	// Code is its error code (e.g. "AuthenticationFailed"), if any.
	Code string
	// CorrelationID is the upload's id at the hub, which was told it
	// failed.
	CorrelationID string
	// Err is the underlying error.
	Err error
	// text is Err's message with the SAS token taken out.
	text string
}

func (e *StorageError) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("fileupload: the storage account refused the blob: %d %s", e.StatusCode, e.Code)
	}
	return "fileupload: cannot write the blob to the storage account: " + e.text
}

// Unwrap returns Err.
func (e *StorageError) Unwrap() error { return e.Err }

// Upload uploads r as blob name ({deviceId}/{name} in the hub's
// container) and reports the outcome to the hub. Errors: the hub's
// refusals as *service.StatusError (401 for credentials, 400
// DefaultStorageEndpointNotConfigured for a hub without storage), a
// failed write as *StorageError; ctx bounds the whole upload.
func Upload(ctx context.Context, opts *Options, name string, r io.Reader) (*Result, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("fileupload: empty blob name")
	}
	var sasURI iothub.FileUploadResponse
	if err := c.post(ctx, "/files", iothub.FileUploadRequest{BlobName: name}, &sasURI); err != nil {
		return nil, err
	}
	res := &Result{CorrelationID: sasURI.CorrelationID, BlobName: sasURI.BlobName, Container: sasURI.ContainerName}
	// Every SDK writes to https://{hostName}/{containerName}/{blobName}{sasToken}
	// (azure-iot-sdk-node device/core/src/blob_upload/blob_uploader.ts).
	blobURL := &url.URL{Scheme: "https", Host: sasURI.HostName}
	if host, path, ok := strings.Cut(sasURI.HostName, "/"); ok {
		// An emulator's path-style endpoint: host:port/account.
		blobURL.Host, blobURL.Path = host, "/"+path
	}
	blobURL = blobURL.JoinPath(sasURI.ContainerName, sasURI.BlobName)
	res.BlobURL = blobURL.String()
	c.log.Debug("file upload: writing the blob", "blob", res.BlobURL, "correlationId", res.CorrelationID)

	cr := &countingReader{r: r}
	upErr := c.write(ctx, res.BlobURL, sasURI.SASToken, cr)
	res.Size = cr.n
	done := iothub.FileUploadCompletion{CorrelationID: res.CorrelationID, IsSuccess: upErr == nil, StatusCode: http.StatusOK,
		StatusDescription: "uploaded " + fmt.Sprint(res.Size) + " bytes"}
	if upErr != nil {
		upErr.CorrelationID = res.CorrelationID
		done.StatusCode, done.StatusDescription = http.StatusInternalServerError, upErr.Error()
		if upErr.StatusCode != 0 {
			done.StatusCode = upErr.StatusCode
		}
	}
	// Report even when ctx ended: the hub should not wait for an upload
	// that will not come.
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	notifyErr := c.post(nctx, "/files/notifications", done, nil)
	if upErr != nil {
		return nil, upErr
	}
	if notifyErr != nil {
		return nil, fmt.Errorf("fileupload: the blob is written, but the hub was not told: %w", notifyErr)
	}
	return res, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// client makes the device's requests.
type client struct {
	opts     Options
	host     string // host[:port] of the hub
	deviceID string
	key      []byte
	token    string
	http     *http.Client
	log      *slog.Logger
}

func newClient(o *Options) (*client, error) {
	if o == nil {
		return nil, errors.New("fileupload: no options: give the device's connection string")
	}
	c := &client{opts: *o, log: o.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.opts.TokenTTL <= 0 {
		c.opts.TokenTTL = time.Hour
	}
	tlsConf := &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
	if cs := o.ConnectionString; cs != nil {
		if cs.ModuleID != "" {
			return nil, errors.New("fileupload: a module cannot upload files (IoT Hub's file upload is for devices): use the device's connection string")
		}
		c.host, c.deviceID = cs.HostName, cs.DeviceID
		switch cs.Auth() {
		case connstr.AuthKey:
			k, err := cs.Key()
			if err != nil {
				return nil, err
			}
			c.key = k
		case connstr.AuthToken:
			c.token = cs.SharedAccessSignature
		case connstr.AuthX509:
			if o.Certificate == nil {
				return nil, errors.New("fileupload: the connection string says x509=true: give the device's certificate")
			}
		default:
			return nil, errors.New("fileupload: the connection string has no SharedAccessKey, SharedAccessSignature or x509=true")
		}
	} else {
		if o.HostName == "" || o.DeviceID == "" || o.Certificate == nil {
			return nil, errors.New("fileupload: give a connection string, or a host name, device id and certificate")
		}
		c.host, c.deviceID = o.HostName, o.DeviceID
	}
	if c.deviceID == "" {
		return nil, errors.New("fileupload: the connection string has no DeviceId: give a device's")
	}
	if o.Certificate != nil {
		cert := o.Certificate
		tlsConf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	if o.Proxy != nil {
		tr.Proxy = http.ProxyURL(o.Proxy)
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// authorization is the Authorization header of a request, "" for X.509.
func (c *client) authorization() (string, error) {
	switch {
	case c.token != "":
		return c.token, nil
	case c.key != nil:
		hostOnly, _, _ := strings.Cut(c.host, ":")
		t, err := sas.Sign(sas.DeviceResource(hostOnly, c.deviceID), c.key, &sas.SignOptions{TTL: c.opts.TokenTTL})
		if err != nil {
			return "", err
		}
		return t.Encode(), nil
	}
	return "", nil
}

// post sends body as JSON to /devices/{id}{path} and decodes the answer
// into out (nil: none expected).
func (c *client) post(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	u := "https://" + c.host + "/devices/" + url.PathEscape(c.deviceID) + path + "?api-version=" + APIVersion
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("fileupload: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	auth, err := c.authorization()
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("fileupload: %w", err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("fileupload: reading the hub's answer: %w", err)
	}
	if res.StatusCode >= 300 {
		return service.ParseError(res.StatusCode, res.Header, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("fileupload: the hub's answer to POST %s is not JSON: %w", path, err)
	}
	return nil
}

// write uploads r to the blob at blobURL with azblob, authorized by
// the SAS token (which no error it returns contains).
func (c *client) write(ctx context.Context, blobURL, sasToken string, r io.Reader) *StorageError {
	fail := func(err error) *StorageError {
		text := err.Error()
		if q := strings.TrimPrefix(sasToken, "?"); q != "" {
			text = strings.ReplaceAll(text, q, "<SAS token>")
		}
		return &StorageError{Err: err, text: text}
	}
	bc, err := blockblob.NewClientWithNoCredential(blobURL+sasToken, &blockblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: c.http}})
	if err != nil {
		return fail(err)
	}
	if _, err := bc.UploadStream(ctx, r, nil); err != nil {
		se := fail(err)
		var re *azcore.ResponseError
		if errors.As(err, &re) {
			se.StatusCode, se.Code = re.StatusCode, re.ErrorCode
		}
		return se
	}
	return nil
}
