package examples

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/iotctl/iotctl/internal/nodemodules"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/fileupload"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/service"
)

// Examples of file upload get a world whose hub uploads to Azurite, the
// storage emulator (pinned in test/interop/package.json, installed
// there with npm ci when missing), with notifications on.

// devstoreKey is the key of Azurite's development account
// (https://learn.microsoft.com/azure/storage/common/storage-use-azurite#http-connection-strings).
const devstoreKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// needsStorage reports whether an example uploads files, reads their
// notifications or names a storage account.
func needsStorage(script string) bool {
	return strings.Contains(script, "device upload") || strings.Contains(script, "file-notifications") ||
		strings.Contains(script, "AZURE_STORAGE_CONNECTION_STRING")
}

var (
	npmOnce sync.Once
	npmErr  error
)

// azuriteBin is Azurite's blob service from test/interop's node_modules.
func azuriteBin() (string, error) {
	interop := filepath.Join("..", "interop")
	bin := filepath.Join(interop, "node_modules", ".bin", "azurite-blob")
	npmOnce.Do(func() {
		if err := nodemodules.Ensure(context.Background(), interop); err != nil {
			npmErr = fmt.Errorf("the file upload examples need Azurite: %v", err)
		}
	})
	if npmErr != nil {
		return "", npmErr
	}
	return filepath.Abs(bin)
}

// storageOptions are the file upload settings of a world's hub, with
// Azurite to listen on a free port of 127.0.0.1 (startAzurite).
func storageOptions() (*hub.FileUploadOptions, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cs := "DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=" + devstoreKey +
		";BlobEndpoint=https://127.0.0.1:" + port + "/devstoreaccount1;"
	return &hub.FileUploadOptions{StorageConnectionString: cs, Notifications: true}, port, nil
}

// startAzurite runs Azurite on port with the hub's server certificate
// until the world closes, and returns once it listens.
func (w *world) startAzurite(port string) error {
	bin, err := azuriteBin()
	if err != nil {
		return err
	}
	tlsDir := filepath.Dir(w.hub.CAFile())
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--blobHost", "127.0.0.1", "--blobPort", port, "--inMemoryPersistence",
		"--skipApiVersionCheck", "--loose", "--cert", filepath.Join(tlsDir, hub.ServerFile), "--key", filepath.Join(tlsDir, "server-key.pem"))
	cmd.Dir = w.dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return fmt.Errorf("starting azurite: %w", err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		var once sync.Once
		for sc.Scan() {
			if strings.Contains(sc.Text(), "successfully listens") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	w.closers = append(w.closers, func() { cancel(); <-done })
	select {
	case <-ready:
		return nil
	case <-done:
		return fmt.Errorf("azurite exited before listening on 127.0.0.1:%s", port)
	case <-time.After(90 * time.Second):
		return fmt.Errorf("azurite did not listen on 127.0.0.1:%s within 90 s", port)
	}
}

// uploadForNotification has MyGoDevice upload a file, whose
// notification a "hub file-notifications" example then reads.
func (w *world) uploadForNotification(ctx context.Context) error {
	cs, err := connstr.Parse(w.deviceCS)
	if err != nil {
		return err
	}
	tlsConf, err := service.TLSConfig(w.caFile, nil)
	if err != nil {
		return err
	}
	uctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, err = fileupload.Upload(uctx, &fileupload.Options{ConnectionString: cs, RootCAs: tlsConf.RootCAs}, "engine.log", strings.NewReader("engine log\n"))
	return err
}
