package fileupload_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/fileupload"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/service"
)

// devstoreKey is Azurite's well-known development account key
// (https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings).
const devstoreKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// startHub starts a hub whose storage account is an HTTP server that
// answers the hub's own calls but that a device cannot write to (it
// speaks plain HTTP; devices use https, as every SDK). The successful
// path is tested against Azurite in test/interop.
func startHub(t *testing.T, withStorage bool) (*hub.Hub, *connstr.ConnectionString, *x509.CertPool) {
	t.Helper()
	opts := &hub.Options{Addr: "127.0.0.1:0", InMemory: true}
	if withStorage {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) }))
		t.Cleanup(srv.Close)
		opts.FileUpload = &hub.FileUploadOptions{Transport: srv.Client(),
			StorageConnectionString: "AccountName=devstoreaccount1;AccountKey=" + devstoreKey + ";BlobEndpoint=" + srv.URL + "/devstoreaccount1"}
	}
	h := hub.New(opts)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}
	s, err := h.DeviceConnectionString("dev1", "")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(h.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return h, connstr.MustParse(s), pool
}

// A write the storage account does not take is reported to the hub as
// a failure (its correlation id is then spent), and the error says
// what failed without the SAS token.
func TestUploadFailureReportedAndRedacted(t *testing.T) {
	h, cs, pool := startHub(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := fileupload.Upload(ctx, &fileupload.Options{ConnectionString: cs, RootCAs: pool}, "x.txt", strings.NewReader("data"))
	var se *fileupload.StorageError
	if !errors.As(err, &se) {
		t.Fatalf("Upload = %v; want a *StorageError", err)
	}
	if msg := err.Error(); strings.Contains(msg, "sig=") || !strings.Contains(msg, "storage account") {
		t.Errorf("error %q shows the SAS token or does not say the storage account failed", msg)
	}
	// The hub was told: the upload is no longer pending.
	if _, err := h.Registry().FileUploadOf("dev1", se.CorrelationID); !errors.Is(err, registry.ErrInvalidFileUploadCorrelationID) {
		t.Errorf("after the failure, the hub's pending upload %q = %v; want it ended (InvalidFileUploadCorrelationId)", se.CorrelationID, err)
	}
}

// A hub without storage refuses with IoT Hub's error, as a
// *service.StatusError; a module's connection string is refused before
// any request.
func TestUploadRefused(t *testing.T) {
	_, cs, pool := startHub(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := fileupload.Upload(ctx, &fileupload.Options{ConnectionString: cs, RootCAs: pool}, "x.txt", strings.NewReader("data"))
	var st *service.StatusError
	if !errors.As(err, &st) || st.HTTPStatus != 400 || st.Name != registry.ErrDefaultStorageEndpointNotConfigured.Name {
		t.Errorf("Upload on a hub without storage = %v; want 400 DefaultStorageEndpointNotConfigured", err)
	}
	mod := *cs
	mod.ModuleID = "m1"
	if _, err := fileupload.Upload(ctx, &fileupload.Options{ConnectionString: &mod, RootCAs: pool}, "x.txt", strings.NewReader("data")); err == nil || !strings.Contains(err.Error(), "module") {
		t.Errorf("Upload as a module = %v; want a refusal naming the module", err)
	}
}
