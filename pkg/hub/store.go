package hub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	berrors "go.etcd.io/bbolt/errors"

	"github.com/iotctl/iotctl/pkg/hub/core"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// RegistryFile is the bbolt file the hub keeps in its data directory.
const RegistryFile = "registry.db"

// hubStore is what the hub itself reads from the registry: the keys of
// the connection strings it prints.
type hubStore interface {
	policyKey(policy string) (string, error)
	identityKey(deviceID, moduleID string) (string, error)
}

// regStore adapts *registry.Store to hubStore.
type regStore struct{ *registry.Store }

// PIDFile is the file in the data directory that holds the process id
// of the hub that has it open, while it has.
const PIDFile = "hub.pid"

// DataDirInUseError is a data directory whose registry another process
// holds open (bbolt locks the file): another hub.
type DataDirInUseError struct {
	// Dir is the data directory.
	Dir string
	// PID is the process that holds it, from its PIDFile; 0 when not
	// known.
	PID int
	// Err is the registry's error.
	Err error
}

func (e *DataDirInUseError) Error() string {
	by := "another process"
	if e.PID > 0 {
		by = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("hub: data directory %s is in use by %s (another hub holds %s)", e.Dir, by, RegistryFile)
}

// Unwrap returns Err.
func (e *DataDirInUseError) Unwrap() error { return e.Err }

func (h *Hub) openStore(dataDir string) error {
	ropts := &registry.Options{Now: h.now, Logger: h.log.With("component", "registry")}
	if fo := h.opts.FileUpload; fo != nil {
		ropts.FileNotificationTTL, ropts.FileNotificationLock, ropts.FileNotificationMaxDeliveries = fo.NotificationTTL, fo.NotificationLock, fo.NotificationMaxDeliveries
	}
	var s *registry.Store
	var err error
	if h.opts.InMemory {
		s, err = registry.OpenMemory(ropts)
	} else {
		s, err = registry.Open(filepath.Join(dataDir, RegistryFile), ropts)
	}
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return &DataDirInUseError{Dir: dataDir, PID: readPID(filepath.Join(dataDir, PIDFile)), Err: err}
		}
		return fmt.Errorf("hub: registry: %w", err)
	}
	h.reg = s
	h.store = regStore{s}
	h.closeDB = s.Close
	if !h.opts.InMemory {
		// The registry is locked now: say who holds it, for the next
		// hub that finds it locked.
		pidFile := filepath.Join(dataDir, PIDFile)
		pid := os.Getpid()
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
			h.log.Warn("cannot write the pid file", "file", pidFile, "err", err)
		}
		h.closeDB = func() error {
			if readPID(pidFile) == pid {
				_ = os.Remove(pidFile)
			}
			return s.Close()
		}
	}
	return nil
}

// readPID returns the process id in file, or 0.
func readPID(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func (r regStore) policyKey(policy string) (string, error) {
	p, err := r.Policy(policy)
	if err != nil {
		return "", err
	}
	return p.PrimaryKey, nil
}

func (r regStore) identityKey(deviceID, moduleID string) (string, error) {
	var a *iothub.Authentication
	if moduleID != "" {
		m, err := r.Module(deviceID, moduleID)
		if err != nil {
			return "", err
		}
		a = m.Authentication
	} else {
		d, err := r.Device(deviceID)
		if err != nil {
			return "", err
		}
		a = d.Authentication
	}
	k := a.Keys()
	if k == nil {
		return "", fmt.Errorf("hub: %s has no symmetric key (authentication %q)", core.Identity{DeviceID: deviceID, ModuleID: moduleID}.Key(), a.Type)
	}
	return k.PrimaryKey, nil
}
