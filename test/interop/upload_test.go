package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/iotctl/iotctl/pkg/hub"
)

// devstoreKey is the key of Azurite's development account
// devstoreaccount1 (https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings).
const devstoreKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// uploadEnv is a hub with file upload to Azurite (the storage
// emulator, from npm, pinned in package-lock.json) and notifications
// on, both on the test's loopback address. Azurite serves HTTPS, as
// the device SDKs reach storage only over https, with the hub's own
// server certificate, which every client of the hub trusts already.
type uploadEnv struct {
	*env
	storageCS string
}

func newUploadEnv(t *testing.T) *uploadEnv {
	t.Helper()
	requireNode(t)
	ip := loopbackIP()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	storageCS := "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=" + devstoreKey +
		";BlobEndpoint=https://" + net.JoinHostPort(ip, port) + "/devstoreaccount1;"
	e := startHubOn(t, ip, hub.Options{FileUpload: &hub.FileUploadOptions{StorageConnectionString: storageCS, Notifications: true}})
	tlsDir := filepath.Dir(e.hub.CAFile())
	startAzurite(t, ip, port, filepath.Join(tlsDir, hub.ServerFile), filepath.Join(tlsDir, "server-key.pem"))
	return &uploadEnv{env: e, storageCS: storageCS}
}

// startAzurite runs Azurite's blob service on ip:port with TLS, in
// memory, until the test ends; it returns once Azurite listens.
func startAzurite(t *testing.T, ip, port, cert, key string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(dir(), "node_modules", ".bin", "azurite-blob"),
		"--blobHost", ip, "--blobPort", port, "--inMemoryPersistence", "--skipApiVersionCheck", "--loose",
		"--cert", cert, "--key", key)
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var said bytes.Buffer
	cmd.Stderr = &lockedWriter{mu: &mu, w: &said}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting azurite: %v", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			said.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), "successfully listens") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	output := func() string { mu.Lock(); defer mu.Unlock(); return said.String() }
	select {
	case <-ready:
	case <-done:
		t.Fatalf("azurite exited before listening on %s:%s:\n%s", ip, port, output())
	case <-time.After(90 * time.Second):
		t.Fatalf("azurite did not listen on %s:%s within 90 s:\n%s", ip, port, output())
	}
}

// blob reads a blob back from Azurite with the account key.
func (u *uploadEnv) blob(container, name string) string {
	u.t.Helper()
	pemData, err := os.ReadFile(u.hub.CAFile())
	if err != nil {
		u.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemData)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := azblob.NewClientFromConnectionString(u.storageCS, &azblob.ClientOptions{ClientOptions: policy.ClientOptions{Transport: hc}})
	if err != nil {
		u.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.DownloadStream(ctx, container, name, nil)
	if err != nil {
		u.t.Fatalf("reading blob %s/%s from azurite: %v", container, name, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		u.t.Fatal(err)
	}
	return string(b)
}

// nodeUpload runs one operation of js/upload.js and decodes its answer.
func (e *env) nodeUpload(cs, op string, args any) (json.RawMessage, map[string]any) {
	e.t.Helper()
	b, _ := json.Marshal(args)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	out, err := e.nodeCmd(ctx, "upload.js", cs, op, string(b)).Output()
	if err != nil {
		e.t.Fatalf("node upload.js %s %s: %v\n%s%s", op, b, err, out, stderrOf(err))
	}
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  map[string]any  `json:"error"`
	}
	if err := json.Unmarshal(lastLine(out), &res); err != nil {
		e.t.Fatalf("node upload.js %s printed %q: %v", op, out, err)
	}
	return res.Result, res.Error
}

// notification is a file upload notification as iotctl prints it with
// -o json, and as the Node receiver gets it.
type notification struct {
	Type            string `json:"type"`
	DeviceID        string `json:"deviceId"`
	BlobURI         string `json:"blobUri"`
	BlobName        string `json:"blobName"`
	LastUpdatedTime string `json:"lastUpdatedTime"`
	BlobSizeInBytes int64  `json:"blobSizeInBytes"`
	EnqueuedTimeUTC string `json:"enqueuedTimeUtc"`
}

func (n notification) check(t *testing.T, who, device, blob string, size int) {
	t.Helper()
	if n.DeviceID != device || n.BlobName != device+"/"+blob || n.BlobSizeInBytes != int64(size) ||
		!strings.HasSuffix(n.BlobURI, "/devstoreaccount1/"+hub.DefaultFileUploadContainer+"/"+device+"/"+blob) ||
		n.LastUpdatedTime == "" || n.EnqueuedTimeUTC == "" {
		t.Errorf("%s: notification %+v; want device %s, blob %s/%s of %d bytes in container %s", who, n, device, device, blob, size, hub.DefaultFileUploadContainer)
	}
}

// The official Node device uploads with uploadToBlob (SAS URI from the
// hub, blob written to Azurite by the SDK's storage client, outcome
// reported); iotctl hub file-notifications prints its notification,
// and the blob holds what the device wrote.
func TestNodeUploadToBlobToIotctlFileNotifications(t *testing.T) {
	u := newUploadEnv(t)
	cs := u.createDevice("node-up")
	content := "reading from the Node device\n"
	if _, nerr := u.nodeUpload(cs, "upload", map[string]any{"blobName": "logs/node.txt", "content": content}); nerr != nil {
		t.Fatalf("node uploadToBlob: %v", nerr)
	}
	if got := u.blob(hub.DefaultFileUploadContainer, "node-up/logs/node.txt"); got != content {
		t.Errorf("blob node-up/logs/node.txt holds %q; want %q", got, content)
	}
	out, errOut, code := u.iotctl("hub", "file-notifications", "--count", "1", "--timeout", "60s", "-o", "json")
	if code != 0 {
		t.Fatalf("iotctl hub file-notifications: exit %d\n%s%s", code, out, errOut)
	}
	var n notification
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &n); err != nil || n.Type != "fileNotification" {
		t.Fatalf("iotctl printed %q (%v); want one fileNotification line", out, err)
	}
	n.check(t, "iotctl hub file-notifications", "node-up", "logs/node.txt", len(content))
}

// iotctl device upload writes through the hub's SAS URI; the official
// Node service client's getFileNotificationReceiver gets the
// notification with IoT Hub's content type.
func TestIotctlUploadToNodeFileNotificationReceiver(t *testing.T) {
	u := newUploadEnv(t)
	cs := u.createDevice("cli-up")
	file := filepath.Join(t.TempDir(), "frame.bin")
	content := strings.Repeat("0123456789", 1000)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := u.iotctl("device", "upload", file, "--blob-name", "cam/frame.bin", "--connection-string", cs, "-o", "json")
	if code != 0 {
		t.Fatalf("iotctl device upload: exit %d\n%s%s", code, out, errOut)
	}
	var res struct {
		BlobName string `json:"blobName"`
		Size     int    `json:"size"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.BlobName != "cli-up/cam/frame.bin" || res.Size != len(content) {
		t.Fatalf("iotctl device upload printed %s (%v); want blobName cli-up/cam/frame.bin, size %d", out, err, len(content))
	}
	if got := u.blob(hub.DefaultFileUploadContainer, "cli-up/cam/frame.bin"); got != content {
		t.Errorf("the blob holds %d bytes that differ from the file's %d", len(got), len(content))
	}
	raw, nerr := u.nodeUpload(u.cs, "notifications", map[string]any{"count": 1, "timeoutSeconds": 60})
	if nerr != nil {
		t.Fatalf("node getFileNotificationReceiver: %v", nerr)
	}
	var got []struct {
		ContentType  string       `json:"contentType"`
		Notification notification `json:"notification"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || len(got) != 1 {
		t.Fatalf("node receiver got %s (%v); want one notification", raw, err)
	}
	if got[0].ContentType != "application/vnd.microsoft.iothub.filenotification.json" {
		t.Errorf("content type %q; want application/vnd.microsoft.iothub.filenotification.json", got[0].ContentType)
	}
	got[0].Notification.check(t, "node getFileNotificationReceiver", "cli-up", "cam/frame.bin", len(content))
}

// A hub without a storage account refuses the Node device's upload
// with IoT Hub's error, and so iotctl device upload, saying what to do.
func TestUploadWithoutStorageRefused(t *testing.T) {
	e := newEnv(t)
	cs := e.createDevice("no-storage")
	_, nerr := e.nodeUpload(cs, "upload", map[string]any{"blobName": "x.txt", "content": "x"})
	if said := fmt.Sprint(nerr); nerr == nil || !strings.Contains(said, "DefaultStorageEndpointNotConfigured") {
		t.Errorf("node uploadToBlob on a hub without storage: %v; want the 400014 DefaultStorageEndpointNotConfigured answer", nerr)
	}
	file := filepath.Join(t.TempDir(), "x.txt")
	_ = os.WriteFile(file, []byte("x"), 0o600)
	out, errOut, code := e.iotctl("device", "upload", file, "--connection-string", cs)
	if code != 1 || !strings.Contains(errOut, "DefaultStorageEndpointNotConfigured") || !strings.Contains(errOut, "--storage-connection-string") {
		t.Errorf("iotctl device upload on a hub without storage: exit %d\n%s%s\nwant exit 1 naming DefaultStorageEndpointNotConfigured and --storage-connection-string", code, out, errOut)
	}
}

// The official Python device uploads as Microsoft's quickstart does
// (get_storage_info_for_blob, azure-storage-blob, notify_blob_upload_status);
// iotctl hub file-notifications prints the notification. A report on a
// correlation id the hub never gave is refused.
func TestPythonFileUpload(t *testing.T) {
	py := requirePython(t)
	u := newUploadEnv(t)
	cs := u.createDevice("py-up")
	content := "reading from the Python device"
	_, res, perr := pyLines(t, py, "upload.py", cs, u.hub.CAFile(), "py/report.json", content)
	if perr != nil {
		t.Fatalf("python upload: %v", perr)
	}
	if res["blobName"] != "py-up/py/report.json" || res["containerName"] != hub.DefaultFileUploadContainer {
		t.Errorf("python get_storage_info_for_blob: %v; want blobName py-up/py/report.json in %s", res, hub.DefaultFileUploadContainer)
	}
	if got := u.blob(hub.DefaultFileUploadContainer, "py-up/py/report.json"); got != content {
		t.Errorf("blob holds %q; want %q", got, content)
	}
	out, errOut, code := u.iotctl("hub", "file-notifications", "--count", "1", "--timeout", "60s", "-o", "json")
	if code != 0 {
		t.Fatalf("iotctl hub file-notifications: exit %d\n%s%s", code, out, errOut)
	}
	var n notification
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &n); err != nil {
		t.Fatalf("iotctl printed %q: %v", out, err)
	}
	n.check(t, "iotctl hub file-notifications", "py-up", "py/report.json", len(content))

	_, res, perr = pyLines(t, py, "upload.py", cs, u.hub.CAFile(), "--notify-unknown", "no-such-upload")
	t.Logf("python notify_blob_upload_status of an unknown correlation id: %v", perr)
	if perr == nil || !strings.Contains(fmt.Sprint(perr["cause"]), "400") {
		t.Errorf("python notify_blob_upload_status of an unknown correlation id: result %v, error %v; want the hub's 400 refusal", res, perr)
	}
}
