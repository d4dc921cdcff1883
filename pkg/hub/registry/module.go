package registry

import (
	"bytes"
	"encoding/json"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// CreateModule adds a module identity (and its empty twin) to an
// existing device. Of m it reads DeviceID, ModuleID, Authentication
// (as for CreateDevice) and ManagedBy. Errors match ErrArgumentInvalid,
// ErrDeviceNotFound or ErrModuleAlreadyExistsOnDevice.
func (s *Store) CreateModule(m *iothub.Module) (*iothub.Module, error) {
	if m == nil {
		return nil, newErr(ErrArgumentInvalid, "no module")
	}
	if err := checkDeviceID(m.DeviceID); err != nil {
		return nil, err
	}
	if err := checkModuleID(m.ModuleID); err != nil {
		return nil, err
	}
	auth, err := normalizeAuth(m.Authentication, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	nm := &iothub.Module{
		DeviceID:       m.DeviceID,
		ModuleID:       m.ModuleID,
		GenerationID:   s.newGenerationID(),
		Etag:           s.newEtag(),
		Authentication: auth,
		ManagedBy:      m.ManagedBy,
	}
	tw := newTwinRecord(now)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		if _, err := getDevice(tx, nm.DeviceID); err != nil {
			return err
		}
		key := identityKey(nm.DeviceID, nm.ModuleID)
		b := tx.Bucket(bucketModules)
		if b.Get(key) != nil {
			return newErr(ErrModuleAlreadyExistsOnDevice, "module %q already exists on device %q", nm.ModuleID, nm.DeviceID)
		}
		if err := putJSON(b, key, nm); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketTwins), key, tw)
	})
	if err != nil {
		return nil, err
	}
	return decorateModule(nm, 0), nil
}

// Module returns a module, or an error matching ErrDeviceNotFound or
// ErrModuleNotFound.
func (s *Store) Module(deviceID, moduleID string) (*iothub.Module, error) {
	var m *iothub.Module
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if m, err = getModule(tx, deviceID, moduleID); err != nil {
			return err
		}
		decorateModule(m, c2dCount(tx, identityKey(deviceID, moduleID)))
		return nil
	})
	return m, err
}

// Modules lists the modules of a device in id order, or returns an
// error matching ErrDeviceNotFound.
func (s *Store) Modules(deviceID string) ([]*iothub.Module, error) {
	out := []*iothub.Module{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if _, err := getDevice(tx, deviceID); err != nil {
			return err
		}
		prefix := append([]byte(deviceID), 0)
		c := tx.Bucket(bucketModules).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m iothub.Module
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			out = append(out, decorateModule(&m, c2dCount(tx, k)))
		}
		return nil
	})
	return out, err
}

// UpdateModule replaces a module's Authentication (nil keeps it; empty
// sas keys keep the current ones) and ManagedBy when ifMatch is "",
// "*" or its etag. Errors match ErrDeviceNotFound, ErrModuleNotFound,
// ErrPreconditionFailed or ErrArgumentInvalid.
func (s *Store) UpdateModule(m *iothub.Module, ifMatch string) (*iothub.Module, error) {
	if m == nil {
		return nil, newErr(ErrArgumentInvalid, "no module")
	}
	etag := s.newEtag()
	var out *iothub.Module
	var count int
	err := s.db.Batch(func(tx *bolt.Tx) error {
		old, err := getModule(tx, m.DeviceID, m.ModuleID)
		if err != nil {
			return err
		}
		if !matchEtag(ifMatch, old.Etag) {
			return newErr(ErrPreconditionFailed, "etag %s does not match module %q", ifMatch, m.ModuleID)
		}
		nm := *old
		if m.Authentication != nil {
			if nm.Authentication, err = normalizeAuth(m.Authentication, old.Authentication); err != nil {
				return err
			}
		}
		nm.ManagedBy = m.ManagedBy
		nm.Etag = etag
		key := identityKey(nm.DeviceID, nm.ModuleID)
		if err := putJSON(tx.Bucket(bucketModules), key, &nm); err != nil {
			return err
		}
		out = &nm
		count = c2dCount(tx, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return decorateModule(out, count), nil
}

// DeleteModule removes a module with its twin and cloud-to-device
// queue when ifMatch is "", "*" or its etag. Errors match
// ErrDeviceNotFound, ErrModuleNotFound or ErrPreconditionFailed.
func (s *Store) DeleteModule(deviceID, moduleID, ifMatch string) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		old, err := getModule(tx, deviceID, moduleID)
		if err != nil {
			return err
		}
		if !matchEtag(ifMatch, old.Etag) {
			return newErr(ErrPreconditionFailed, "etag %s does not match module %q", ifMatch, moduleID)
		}
		key := identityKey(deviceID, moduleID)
		if err := tx.Bucket(bucketModules).Delete(key); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTwins).Delete(key); err != nil {
			return err
		}
		if err := deletePresence(tx, key); err != nil {
			return err
		}
		return deleteC2DQueue(tx, key)
	})
}

func getModule(tx *bolt.Tx, deviceID, moduleID string) (*iothub.Module, error) {
	if _, err := getDevice(tx, deviceID); err != nil {
		return nil, err
	}
	v := tx.Bucket(bucketModules).Get(identityKey(deviceID, moduleID))
	if v == nil {
		return nil, newErr(ErrModuleNotFound, "module %q not found on device %q", clip(moduleID), clip(deviceID))
	}
	var m iothub.Module
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

func decorateModule(m *iothub.Module, c2d int) *iothub.Module {
	m.ConnectionState = iothub.Disconnected
	m.CloudToDeviceMessageCount = c2d
	if m.Authentication == nil {
		m.Authentication = &iothub.Authentication{Type: iothub.AuthNone}
	}
	return m
}
