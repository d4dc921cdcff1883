package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// fakeBlobs answers the two storage calls the hub makes: Create
// Container and Get Blob Properties. The upload itself, between
// device and storage, is tested against Azurite (test/interop).
type fakeBlobs struct {
	mu         sync.Mutex
	containers []string
}

func (f *fakeBlobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPut && r.URL.Query().Get("restype") == "container":
		f.mu.Lock()
		f.containers = append(f.containers, r.URL.Path)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodHead:
		w.Header().Set("Content-Length", "11")
		w.Header().Set("Last-Modified", "Mon, 01 Jan 2024 10:00:00 GMT")
		w.Header().Set("x-ms-blob-type", "BlockBlob")
		w.WriteHeader(http.StatusOK)
	default:
		w.WriteHeader(http.StatusBadRequest)
	}
}

// devstoreKey is Azurite's well-known development account key
// (https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings).
const devstoreKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

func startUploadHub(t *testing.T, notifications bool) (*Hub, *fakeBlobs) {
	t.Helper()
	fb := &fakeBlobs{}
	srv := httptest.NewServer(fb)
	t.Cleanup(srv.Close)
	return startUploadHubIn(t, "", srv, notifications), fb
}

// startUploadHubIn starts a hub that uploads to srv, with its data in
// dir ("": in memory).
func startUploadHubIn(t *testing.T, dir string, srv *httptest.Server, notifications bool) *Hub {
	t.Helper()
	cs := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devstoreKey + ";BlobEndpoint=" + srv.URL + "/devstoreaccount1;"
	h := New(&Options{Addr: "127.0.0.1:0", InMemory: dir == "", DataDir: dir,
		FileUpload: &FileUploadOptions{StorageConnectionString: cs, Container: "uploads", Notifications: notifications, Transport: srv.Client()}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// An upload the hub acknowledged is not lost by a restart: the device
// reports on it to the next hub on the same data directory, whose
// notification queue has it.
func TestFileUploadSurvivesRestart(t *testing.T) {
	srv := httptest.NewServer(&fakeBlobs{})
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	h := startUploadHubIn(t, dir, srv, true)
	cs := createDevice(t, h, "dev1")
	d := newHTTPDevice(t, h, cs)
	st, _, body := d.do("POST", "/devices/dev1/files", nil, `{"blobName":"before.txt"}`)
	if st != 200 {
		t.Fatalf("POST files: %d %s", st, body)
	}
	var res iothub.FileUploadResponse
	_ = json.Unmarshal([]byte(body), &res)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h = startUploadHubIn(t, dir, srv, true)
	d = newHTTPDevice(t, h, cs)
	if st, _, body := d.do("POST", "/devices/dev1/files/notifications", nil, `{"correlationId":"`+res.CorrelationID+`","isSuccess":true,"statusCode":200}`); st != 204 {
		t.Fatalf("report after restart: %d %s; want 204", st, body)
	}
	n, err := h.reg.TakeFileNotification()
	if err != nil || n == nil || n.Notification.BlobName != "dev1/before.txt" {
		t.Fatalf("notification after restart = %+v, %v; want the one of dev1/before.txt", n, err)
	}
}

// The hub answers an upload request with a SAS token for that one blob,
// signed with the account key, and makes the container.
func TestFileUploadSASURI(t *testing.T) {
	h, fb := startUploadHub(t, false)
	d := newHTTPDevice(t, h, createDevice(t, h, "dev1"))
	st, _, body := d.do("POST", "/devices/dev1/files", http.Header{"Content-Type": {"application/json"}}, `{"blobName":"logs/today.txt"}`)
	if st != 200 {
		t.Fatalf("POST files: %d %s; want 200", st, body)
	}
	var res iothub.FileUploadResponse
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(h.files.endpoint.String(), "http://")
	if res.CorrelationID == "" || res.HostName+"/" != host || res.ContainerName != "uploads" || res.BlobName != "dev1/logs/today.txt" || !strings.HasPrefix(res.SASToken, "?") {
		t.Fatalf("response %+v; want a correlation id, hostName %s, container uploads, blob dev1/logs/today.txt, a token starting with ?", res, host)
	}
	q, err := url.ParseQuery(res.SASToken[1:])
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("sr") != "b" || q.Get("sp") != "rcw" {
		t.Errorf("SAS %s: want sr=b (one blob) and sp=rcw", res.SASToken)
	}
	se, err := time.Parse(time.RFC3339, q.Get("se"))
	if err != nil || se.Before(time.Now().Add(59*time.Minute)) || se.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("SAS expiry %q; want an hour from now", q.Get("se"))
	}
	// The signature is the account key's over that blob and no other.
	cred, err := azblob.NewSharedKeyCredential("devstoreaccount1", devstoreKey)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(blobName string) string {
		v, err := sas.BlobSignatureValues{Version: q.Get("sv"), ExpiryTime: se, Permissions: q.Get("sp"), ContainerName: "uploads", BlobName: blobName}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return v.Signature()
	}
	if got := q.Get("sig"); got != sign("dev1/logs/today.txt") || got == sign("dev1/other.txt") {
		t.Errorf("SAS signature %q does not sign blob dev1/logs/today.txt with the account key", got)
	}
	if _, err := base64.StdEncoding.DecodeString(q.Get("sig")); err != nil {
		t.Errorf("sig %q is not base64: %v", q.Get("sig"), err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.containers) != 1 || fb.containers[0] != "/devstoreaccount1/uploads" {
		t.Errorf("containers made: %v; want /devstoreaccount1/uploads once", fb.containers)
	}
}

// The outcome is taken from the body or (Node's SDK) the path; a
// success makes a notification with the blob's size, and a correlation
// id is good once.
func TestFileUploadNotification(t *testing.T) {
	h, _ := startUploadHub(t, true)
	d := newHTTPDevice(t, h, createDevice(t, h, "dev1"))
	start := func(name string) string {
		st, _, body := d.do("POST", "/devices/dev1/files/", nil, `{"blobName":"`+name+`"}`)
		if st != 200 {
			t.Fatalf("POST files: %d %s", st, body)
		}
		var res iothub.FileUploadResponse
		_ = json.Unmarshal([]byte(body), &res)
		return res.CorrelationID
	}
	a, b := start("a.bin"), start("b.bin")
	if st, hdr, body := d.do("POST", "/devices/dev1/files/notifications", nil, `{"correlationId":"nope","isSuccess":true,"statusCode":200}`); st != 400 ||
		hdr.Get("iothub-errorcode") != "InvalidFileUploadCorrelationId" || !strings.Contains(body, "nope") {
		t.Fatalf("unknown correlation id: %d %s %s; want 400 InvalidFileUploadCorrelationId naming it", st, hdr.Get("iothub-errorcode"), body)
	}
	if st, _, body := d.do("POST", "/devices/dev1/files/notifications/"+url.PathEscape(a), nil, `{"isSuccess":true,"statusCode":200,"statusDescription":"ok"}`); st != 204 {
		t.Fatalf("notify in path: %d %s; want 204", st, body)
	}
	if st, _, body := d.do("POST", "/devices/dev1/files/notifications", nil, `{"correlationId":"`+b+`","isSuccess":false,"statusCode":500,"statusDescription":"disk"}`); st != 204 {
		t.Fatalf("notify in body: %d %s; want 204", st, body)
	}
	if st, hdr, _ := d.do("POST", "/devices/dev1/files/notifications", nil, `{"correlationId":"`+a+`","isSuccess":true}`); st != 400 || hdr.Get("iothub-errorcode") != "InvalidFileUploadCorrelationId" {
		t.Fatalf("second report: %d %s; want 400 InvalidFileUploadCorrelationId", st, hdr.Get("iothub-errorcode"))
	}
	n, err := h.reg.TakeFileNotification()
	if err != nil || n == nil {
		t.Fatalf("TakeFileNotification = %v, %v; want the notification of a.bin", n, err)
	}
	got := n.Notification
	if got.DeviceID != "dev1" || got.BlobName != "dev1/a.bin" || got.BlobSizeInBytes != 11 || !strings.HasSuffix(got.BlobURI, "/devstoreaccount1/uploads/dev1/a.bin") ||
		!got.LastUpdatedTime.Equal(time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("notification %+v", got)
	}
	if n, _ := h.reg.PendingFileNotifications(); n != 1 {
		t.Errorf("%d notifications pending; want 1 (the failure of b.bin makes none)", n)
	}
}

// Without a storage account, and for a module, the request is refused
// with an error that says what to do.
func TestFileUploadRefused(t *testing.T) {
	h := startHub(t)
	d := newHTTPDevice(t, h, createDevice(t, h, "dev1"))
	st, hdr, body := d.do("POST", "/devices/dev1/files", nil, `{"blobName":"x"}`)
	if st != 400 || hdr.Get("iothub-errorcode") != "DefaultStorageEndpointNotConfigured" || !strings.Contains(body, "--storage-connection-string") {
		t.Fatalf("no storage: %d %s %s; want 400 DefaultStorageEndpointNotConfigured naming --storage-connection-string", st, hdr.Get("iothub-errorcode"), body)
	}
	h2, _ := startUploadHub(t, false)
	d2 := newHTTPDevice(t, h2, createDevice(t, h2, "dev1"))
	if st, _, body := d2.do("POST", "/devices/dev1/files", nil, `{"blobName":""}`); st != 400 || !strings.Contains(body, "blobName") {
		t.Fatalf("empty blob name: %d %s; want 400 naming blobName", st, body)
	}
	if st, _, body := d2.do("POST", "/devices/dev1/files", nil, `not json`); st != 400 {
		t.Fatalf("bad body: %d %s; want 400", st, body)
	}
	if st, _, _ := d2.do("GET", "/devices/dev1/files", nil, ``); st != 405 {
		t.Fatalf("GET files: %d; want 405", st)
	}
}

// Settings IoT Hub would not take are refused at Start.
func TestFileUploadOptionsChecked(t *testing.T) {
	for _, o := range []FileUploadOptions{
		{StorageConnectionString: "nonsense"},
		{StorageConnectionString: "BlobEndpoint=https://x.example/;SharedAccessSignature=sv=1&sig=abc"},
		{StorageConnectionString: "AccountName=a;AccountKey=" + devstoreKey, Container: "Bad_Name"},
		{StorageConnectionString: "AccountName=a;AccountKey=" + devstoreKey, SASTTL: 48 * time.Hour},
	} {
		h := New(&Options{Addr: "127.0.0.1:0", InMemory: true, FileUpload: &o})
		if err := h.Start(context.Background()); err == nil {
			h.Close()
			t.Errorf("Start with %+v succeeded; want an error", o)
		} else if strings.Contains(err.Error(), devstoreKey) {
			t.Errorf("Start error %q shows the account key", err)
		}
	}
}
