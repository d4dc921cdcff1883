package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/hub/rest"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// File upload, as IoT Hub does it
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-file-upload):
// a device asks the hub for a SAS URI of a blob in the storage account
// the hub is given (POST /devices/{id}/files), writes the blob there
// itself, and reports the outcome (POST /devices/{id}/files/notifications);
// a success becomes a file upload notification that the service side
// receives on /messages/serviceBound/filenotifications.

// Defaults of FileUploadOptions.
const (
	// DefaultFileUploadContainer is the container blobs go to when none
	// is named. IoT Hub has no default (the portal makes the user pick
	// one); this name is the emulator's choice.
	DefaultFileUploadContainer = "fileupload"
	// DefaultFileUploadSASTTL is how long a SAS URI is valid: one hour,
	// the default of "az iot hub update --fileupload-sas-ttl"
	// (https://learn.microsoft.com/cli/azure/iot/hub#az-iot-hub-update).
	DefaultFileUploadSASTTL = time.Hour
	// MaxFileUploadSASTTL is the longest SAS TTL IoT Hub allows (24 h,
	// https://learn.microsoft.com/azure/iot-hub/iot-hub-configure-file-upload).
	MaxFileUploadSASTTL = 24 * time.Hour
	// correlationGrace is how long after its SAS expires a correlation
	// id is still accepted: a device that wrote its blob just before
	// the expiry can still report it. IoT Hub does not document it.
	correlationGrace = time.Hour
	// storageTimeout bounds each call to the storage account.
	storageTimeout = 10 * time.Second
)

// FileUploadOptions configure file upload. They are IoT Hub's file
// upload settings (ARM properties.storageEndpoints["$default"] and
// messagingEndpoints.fileNotifications).
type FileUploadOptions struct {
	// StorageConnectionString is the connection string of the storage
	// account, with AccountName and AccountKey (the hub signs SAS
	// tokens with the key), and BlobEndpoint for an emulator such as
	// Azurite. Required.
	StorageConnectionString string
	// Container is the blob container. Default: DefaultFileUploadContainer.
	Container string
	// SASTTL is how long the SAS URIs the hub hands out are valid.
	// Default: DefaultFileUploadSASTTL (1 hour); at most 24 hours.
	SASTTL time.Duration
	// Notifications makes a device's successful upload a file upload
	// notification. Default: false, as a new hub's
	// enableFileUploadNotifications.
	Notifications bool
	// NotificationTTL, NotificationLock and NotificationMaxDeliveries
	// are the notification queue's settings (see registry.Options).
	// Defaults: 1 hour, 1 minute, 100, as IoT Hub's.
	NotificationTTL           time.Duration
	NotificationLock          time.Duration
	NotificationMaxDeliveries int
	// Transport reaches the storage account (to read an uploaded blob's
	// size, and to make the container when it is missing). Default: an
	// HTTP transport that trusts the system's roots and the hub's own
	// CA, so that Azurite can serve with the hub's server certificate.
	Transport policy.Transporter
}

// FileUploadConfigError is file upload settings the hub cannot use: a
// storage connection string it cannot sign SAS tokens with, a container
// name Azure Storage does not allow, a SAS TTL out of range.
type FileUploadConfigError struct{ Err error }

func (e *FileUploadConfigError) Error() string { return "hub: file upload: " + e.Err.Error() }

// Unwrap returns Err.
func (e *FileUploadConfigError) Unwrap() error { return e.Err }

// fileUploads is the hub's file upload service, made at Start from
// Options.FileUpload.
type fileUploads struct {
	opts FileUploadOptions
	// endpoint is the blob service URL with a trailing slash.
	endpoint *url.URL
	// hostName is what devices get as hostName: the endpoint's host and
	// path (for an emulator, "127.0.0.1:10000/devstoreaccount1").
	hostName string
	// containerMu guards containerMade.
	containerMu   sync.Mutex
	containerMade bool
}

// newFileUploads checks the settings and the storage connection string
// (that the hub can sign SAS tokens with it) without reaching the
// account.
func newFileUploads(o FileUploadOptions, caFile string) (*fileUploads, error) {
	fu, err := makeFileUploads(o, caFile)
	if err != nil {
		return nil, &FileUploadConfigError{Err: err}
	}
	return fu, nil
}

func makeFileUploads(o FileUploadOptions, caFile string) (*fileUploads, error) {
	if o.Container == "" {
		o.Container = DefaultFileUploadContainer
	}
	if o.SASTTL == 0 {
		o.SASTTL = DefaultFileUploadSASTTL
	}
	if o.SASTTL < time.Minute || o.SASTTL > MaxFileUploadSASTTL {
		return nil, fmt.Errorf("SAS TTL %s: give a duration from 1m to 24h, as IoT Hub allows", o.SASTTL)
	}
	if err := validContainer(o.Container); err != nil {
		return nil, err
	}
	if o.Transport == nil {
		t, err := storageTransport(caFile)
		if err != nil {
			return nil, err
		}
		o.Transport = t
	}
	fu := &fileUploads{opts: o}
	c, err := fu.container()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.URL())
	if err != nil {
		return nil, fmt.Errorf("storage connection string: blob endpoint %q: %w", c.URL(), err)
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/"+o.Container) + "/"
	u.RawPath = ""
	fu.endpoint = u
	fu.hostName = u.Host + strings.TrimSuffix(u.Path, "/")
	if _, err := fu.sasURL("check/check", time.Now().Add(time.Minute)); err != nil {
		return nil, fmt.Errorf("storage connection string: cannot sign SAS tokens with it (%w): give one with AccountName and AccountKey", err)
	}
	return fu, nil
}

// validContainer checks a container name as Azure Storage names them
// (https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata).
func validContainer(name string) error {
	ok := len(name) >= 3 && len(name) <= 63 && name[0] != '-' && name[len(name)-1] != '-' && !strings.Contains(name, "--")
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("storage container %q: give 3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit", name)
	}
	return nil
}

// storageTransport is an HTTP client that trusts the system's roots
// and the CA in caFile ("" for none).
func storageTransport(caFile string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("hub: %w", err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: storageTimeout}, nil
}

func (fu *fileUploads) clientOptions() policy.ClientOptions {
	return policy.ClientOptions{Transport: fu.opts.Transport, Retry: policy.RetryOptions{MaxRetries: -1}}
}

func (fu *fileUploads) container() (*container.Client, error) {
	c, err := container.NewClientFromConnectionString(fu.opts.StorageConnectionString, fu.opts.Container,
		&container.ClientOptions{ClientOptions: fu.clientOptions()})
	if err != nil {
		return nil, fmt.Errorf("hub: storage connection string: %w", err)
	}
	return c, nil
}

func (fu *fileUploads) blob(name string) (*blob.Client, error) {
	c, err := blob.NewClientFromConnectionString(fu.opts.StorageConnectionString, fu.opts.Container, name,
		&blob.ClientOptions{ClientOptions: fu.clientOptions()})
	if err != nil {
		return nil, fmt.Errorf("hub: storage connection string: %w", err)
	}
	return c, nil
}

// sasURL is the URL of blob name with a SAS token that lets its holder
// read, create and write that one blob until expiry.
func (fu *fileUploads) sasURL(name string, expiry time.Time) (*url.URL, error) {
	b, err := fu.blob(name)
	if err != nil {
		return nil, err
	}
	s, err := b.GetSASURL(sas.BlobPermissions{Read: true, Create: true, Write: true}, expiry, nil)
	if err != nil {
		return nil, err
	}
	return url.Parse(s)
}

// blobURI is the URL of blob name without a SAS token.
func (fu *fileUploads) blobURI(name string) string {
	u := *fu.endpoint
	return u.JoinPath(fu.opts.Container, name).String()
}

// ensureContainer makes the container once, if it is missing: Azure
// needs it made beforehand, an emulator starts empty.
func (fu *fileUploads) ensureContainer(ctx context.Context) error {
	fu.containerMu.Lock()
	defer fu.containerMu.Unlock()
	if fu.containerMade {
		return nil
	}
	c, err := fu.container()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return err
	}
	fu.containerMade = true
	return nil
}

// fileRoute is a matched file upload path.
type fileRoute struct {
	notify bool
	// correlationID is the one in the path (Node's SDK puts it there).
	correlationID string
}

// matchFilePath matches rest, the segments after devices/{id} (or
// devices/{id}/modules/{mid}): "files", "files/notifications" and
// "files/notifications/{correlationId}".
func matchFilePath(rest []string) (fileRoute, bool) {
	isr := func(i int, s string) bool { return i < len(rest) && strings.EqualFold(rest[i], s) }
	switch {
	case len(rest) == 1 && isr(0, "files"):
		return fileRoute{}, true
	case len(rest) == 2 && isr(0, "files") && isr(1, "notifications"):
		return fileRoute{notify: true}, true
	case len(rest) == 3 && isr(0, "files") && isr(1, "notifications") && rest[2] != "":
		return fileRoute{notify: true, correlationID: rest[2]}, true
	}
	return fileRoute{}, false
}

// maxFileUploadBody bounds the JSON body of a file upload request.
const maxFileUploadBody = 64 * 1024

// maxBlobName is the longest blob name Azure Storage takes.
const maxBlobName = 1024

func (h *Hub) serveFileUpload(w http.ResponseWriter, r *http.Request, id core.Identity, rt fileRoute) {
	fail := func(err error) { rest.WriteError(w, err, h.now()) }
	if id.ModuleID != "" {
		fail(deviceError(registry.ErrArgumentInvalid, "file upload is for devices: module %s/%s cannot upload (IoT Hub's module clients have no file upload); use the device's identity", id.DeviceID, id.ModuleID))
		return
	}
	if h.files == nil {
		fail(deviceError(registry.ErrDefaultStorageEndpointNotConfigured, "file upload is not configured on this hub: start it with --storage-connection-string (an Azure Storage account or Azurite)"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFileUploadBody+1))
	if err != nil || len(body) > maxFileUploadBody {
		fail(deviceError(registry.ErrArgumentInvalid, "cannot read the request body: send a JSON object of at most %d bytes", maxFileUploadBody))
		return
	}
	if rt.notify {
		h.fileUploadDone(w, r, id.DeviceID, rt.correlationID, body)
		return
	}
	var req iothub.FileUploadRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail(deviceError(registry.ErrArgumentInvalid, "the body is not a file upload request: want {\"blobName\":\"NAME\"} (%v)", err))
		return
	}
	name := id.DeviceID + "/" + req.BlobName
	if req.BlobName == "" || len(name) > maxBlobName || strings.HasSuffix(name, "/") {
		fail(deviceError(registry.ErrArgumentInvalid, "blobName %q: give a name that does not end in '/' and with the device id prefix is at most %d characters", req.BlobName, maxBlobName))
		return
	}
	if err := h.files.ensureContainer(r.Context()); err != nil {
		// The device may still succeed if the container exists and only
		// the check failed: hand out the URI and say why in the log.
		h.log.Warn("file upload: cannot make sure the storage container exists", "container", h.files.opts.Container, "err", err)
	}
	now := h.now()
	expiry := now.Add(h.files.opts.SASTTL)
	u, err := h.files.sasURL(name, expiry)
	if err != nil {
		h.log.Warn("file upload: cannot sign a SAS token", "err", err)
		fail(deviceError(registry.ErrServerError, "cannot sign a SAS token for the blob"))
		return
	}
	up, err := h.reg.StartFileUpload(id.DeviceID, name, expiry.Add(correlationGrace))
	if err != nil {
		fail(err)
		return
	}
	h.log.Debug("file upload started", "device", id.DeviceID, "blob", name, "correlationId", up.CorrelationID)
	resp := iothub.FileUploadResponse{CorrelationID: up.CorrelationID, HostName: h.files.hostName,
		ContainerName: h.files.opts.Container, BlobName: name, SASToken: "?" + u.RawQuery}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(resp)
}

// fileUploadDone records the outcome a device reports: 204, and for a
// success with notifications on, a file upload notification with the
// blob's size and time read from the storage account.
func (h *Hub) fileUploadDone(w http.ResponseWriter, r *http.Request, deviceID, pathCorrelation string, body []byte) {
	fail := func(err error) { rest.WriteError(w, err, h.now()) }
	var done iothub.FileUploadCompletion
	if err := json.Unmarshal(body, &done); err != nil {
		fail(deviceError(registry.ErrArgumentInvalid, "the body is not a file upload status: want {\"correlationId\",\"isSuccess\",\"statusCode\",\"statusDescription\"} (%v)", err))
		return
	}
	cid := pathCorrelation
	if cid == "" {
		cid = done.CorrelationID
	}
	if cid == "" {
		fail(deviceError(registry.ErrArgumentInvalid, "no correlationId: give the one the hub returned for the upload, in the body or the path"))
		return
	}
	up, err := h.reg.FileUploadOf(deviceID, cid)
	if err != nil {
		fail(err)
		return
	}
	var n *iothub.FileNotification
	if done.IsSuccess && h.files.opts.Notifications {
		n = h.files.notification(r.Context(), up, h.now(), h.log)
	}
	if err := h.reg.FinishFileUpload(deviceID, cid, n); err != nil {
		fail(err)
		return
	}
	h.log.Debug("file upload reported", "device", deviceID, "blob", up.BlobName, "success", done.IsSuccess, "statusCode", done.StatusCode, "notified", n != nil)
	w.WriteHeader(http.StatusNoContent)
}

// notification is the file upload notification of up, with the blob's
// size and last-modified time from the storage account; when the blob
// cannot be read the size is 0 and the time now, and the log says why.
func (fu *fileUploads) notification(ctx context.Context, up *registry.FileUpload, now time.Time, log *slog.Logger) *iothub.FileNotification {
	n := &iothub.FileNotification{DeviceID: up.DeviceID, BlobURI: fu.blobURI(up.BlobName), BlobName: up.BlobName,
		LastUpdatedTime: iothub.Time{Time: now}, EnqueuedTimeUTC: iothub.Time{Time: now}}
	err := func() error {
		b, err := fu.blob(up.BlobName)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, storageTimeout)
		defer cancel()
		p, err := b.GetProperties(ctx, nil)
		if err != nil {
			return err
		}
		if p.ContentLength != nil {
			n.BlobSizeInBytes = *p.ContentLength
		}
		if p.LastModified != nil {
			n.LastUpdatedTime = iothub.Time{Time: p.LastModified.UTC()}
		}
		return nil
	}()
	if err != nil {
		log.Warn("file upload: cannot read the uploaded blob; its notification says size 0", "blob", up.BlobName, "err", err)
	}
	return n
}
