package registry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// CreateDevice adds a device identity and its empty twin. Of d it
// reads DeviceID, Status (default enabled), StatusReason,
// Authentication (default sas; empty sas keys are generated, as IoT
// Hub does when the Node SDK sends empty strings), Capabilities,
// DeviceScope and ParentScopes; the etag and generationId are made
// here. It returns the stored device, or an error matching
// ErrArgumentInvalid or ErrDeviceAlreadyExists.
func (s *Store) CreateDevice(d *iothub.Device) (*iothub.Device, error) {
	if d == nil {
		return nil, newErr(ErrArgumentInvalid, "no device")
	}
	if err := checkDeviceID(d.DeviceID); err != nil {
		return nil, err
	}
	status, err := normalizeStatus(d.Status, iothub.StatusEnabled)
	if err != nil {
		return nil, err
	}
	auth, err := normalizeAuth(d.Authentication, nil)
	if err != nil {
		return nil, err
	}
	now := s.now()
	nd := &iothub.Device{
		DeviceID:       d.DeviceID,
		GenerationID:   s.newGenerationID(),
		Etag:           s.newEtag(),
		Status:         status,
		StatusReason:   d.StatusReason,
		Authentication: auth,
		Capabilities:   d.Capabilities,
		DeviceScope:    d.DeviceScope,
		ParentScopes:   d.ParentScopes,
	}
	if nd.Capabilities == nil {
		nd.Capabilities = &iothub.Capabilities{}
	}
	tw := newTwinRecord(now)
	err = s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		key := []byte(nd.DeviceID)
		if b.Get(key) != nil {
			return newErr(ErrDeviceAlreadyExists, "a device with id %q already exists", nd.DeviceID)
		}
		if err := putJSON(b, key, nd); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketTwins), key, tw)
	})
	if err != nil {
		return nil, err
	}
	return s.decorateDevice(nd, 0), nil
}

// Device returns the device with id deviceID, or an error matching
// ErrDeviceNotFound.
func (s *Store) Device(deviceID string) (*iothub.Device, error) {
	var d *iothub.Device
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, err = getDevice(tx, deviceID)
		if err != nil {
			return err
		}
		s.decorateDevice(d, c2dCount(tx, identityKey(deviceID, "")))
		return nil
	})
	return d, err
}

// Devices lists the devices in id order, at most top of them when top
// is positive.
func (s *Store) Devices(top int) ([]*iothub.Device, error) {
	var out []*iothub.Device
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDevices).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if top > 0 && len(out) >= top {
				break
			}
			var d iothub.Device
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			out = append(out, s.decorateDevice(&d, c2dCount(tx, k)))
		}
		return nil
	})
	if out == nil {
		out = []*iothub.Device{}
	}
	return out, err
}

// UpdateDevice replaces the updatable fields of an existing device
// (Status, StatusReason, Authentication, Capabilities, DeviceScope,
// ParentScopes) when ifMatch is "", "*" or its current etag (quoted
// or not). A nil Authentication or Capabilities, or an empty Status,
// keeps the current value; sas keys left empty keep the current keys
// (or are generated when the device had none). The etag changes.
// Errors match ErrDeviceNotFound, ErrPreconditionFailed or
// ErrArgumentInvalid.
func (s *Store) UpdateDevice(d *iothub.Device, ifMatch string) (*iothub.Device, error) {
	if d == nil {
		return nil, newErr(ErrArgumentInvalid, "no device")
	}
	if err := checkDeviceID(d.DeviceID); err != nil {
		return nil, err
	}
	now := s.now()
	etag := s.newEtag()
	var out *iothub.Device
	var count int
	err := s.db.Batch(func(tx *bolt.Tx) error {
		old, err := getDevice(tx, d.DeviceID)
		if err != nil {
			return err
		}
		if !matchEtag(ifMatch, old.Etag) {
			return newErr(ErrPreconditionFailed, "etag %s does not match device %q", ifMatch, d.DeviceID)
		}
		nd := *old
		status, err := normalizeStatus(d.Status, old.Status)
		if err != nil {
			return err
		}
		if status != old.Status {
			nd.StatusUpdatedTime = iothub.Time{Time: now}
		}
		nd.Status = status
		nd.StatusReason = d.StatusReason
		if d.Authentication != nil {
			if nd.Authentication, err = normalizeAuth(d.Authentication, old.Authentication); err != nil {
				return err
			}
		}
		if d.Capabilities != nil {
			nd.Capabilities = d.Capabilities
		}
		nd.DeviceScope = d.DeviceScope
		nd.ParentScopes = d.ParentScopes
		nd.Etag = etag
		if err := putJSON(tx.Bucket(bucketDevices), []byte(nd.DeviceID), &nd); err != nil {
			return err
		}
		out = &nd
		count = c2dCount(tx, identityKey(nd.DeviceID, ""))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.decorateDevice(out, count), nil
}

// DeleteDevice removes a device with its modules, twins and
// cloud-to-device queues, when ifMatch is "", "*" or the device's
// etag. Errors match ErrDeviceNotFound or ErrPreconditionFailed.
func (s *Store) DeleteDevice(deviceID, ifMatch string) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		old, err := getDevice(tx, deviceID)
		if err != nil {
			return err
		}
		if !matchEtag(ifMatch, old.Etag) {
			return newErr(ErrPreconditionFailed, "etag %s does not match device %q", ifMatch, deviceID)
		}
		key := []byte(deviceID)
		if err := tx.Bucket(bucketDevices).Delete(key); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTwins).Delete(key); err != nil {
			return err
		}
		if err := deleteC2DQueue(tx, key); err != nil {
			return err
		}
		if err := deletePresence(tx, key); err != nil {
			return err
		}
		prefix := append([]byte(deviceID), 0)
		mods := tx.Bucket(bucketModules)
		var keys [][]byte
		c := mods.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := mods.Delete(k); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTwins).Delete(k); err != nil {
				return err
			}
			if err := deleteC2DQueue(tx, k); err != nil {
				return err
			}
			if err := deletePresence(tx, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// Stats counts the devices by status.
func (s *Store) Stats() (Stats, error) {
	var st Stats
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(_, v []byte) error {
			var d struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(v, &d); err != nil {
				return err
			}
			st.TotalDeviceCount++
			if d.Status == iothub.StatusDisabled {
				st.DisabledDeviceCount++
			} else {
				st.EnabledDeviceCount++
			}
			return nil
		})
	})
	return st, err
}

func getDevice(tx *bolt.Tx, deviceID string) (*iothub.Device, error) {
	v := tx.Bucket(bucketDevices).Get([]byte(deviceID))
	if v == nil {
		return nil, newErr(ErrDeviceNotFound, "device %q not found", clip(deviceID))
	}
	var d iothub.Device
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// decorateDevice fills the fields that are not stored.
func (s *Store) decorateDevice(d *iothub.Device, c2d int) *iothub.Device {
	d.ConnectionState = iothub.Disconnected
	d.CloudToDeviceMessageCount = c2d
	if d.Authentication == nil {
		d.Authentication = &iothub.Authentication{Type: iothub.AuthNone}
	}
	return d
}

func normalizeStatus(s, def string) (string, error) {
	switch {
	case s == "":
		return def, nil
	case strings.EqualFold(s, iothub.StatusEnabled):
		return iothub.StatusEnabled, nil
	case strings.EqualFold(s, iothub.StatusDisabled):
		return iothub.StatusDisabled, nil
	}
	return "", newErr(ErrArgumentInvalid, "status %q is not enabled or disabled", clip(s))
}

// normalizeAuth checks an identity's authentication and fills in what
// IoT Hub fills in. old is the current value on update (nil on create).
func normalizeAuth(a, old *iothub.Authentication) (*iothub.Authentication, error) {
	var n iothub.Authentication
	if a != nil {
		n = *a
	}
	switch {
	case n.Type == "" || strings.EqualFold(n.Type, iothub.AuthSAS):
		n.Type = iothub.AuthSAS
	case strings.EqualFold(n.Type, iothub.AuthSelfSigned):
		n.Type = iothub.AuthSelfSigned
	case strings.EqualFold(n.Type, iothub.AuthCertificateAuthority):
		n.Type = iothub.AuthCertificateAuthority
	case strings.EqualFold(n.Type, iothub.AuthNone):
		n.Type = iothub.AuthNone
	default:
		return nil, newErr(ErrArgumentInvalid, "authentication type %q is not sas, selfSigned, certificateAuthority or none", clip(n.Type))
	}
	switch n.Type {
	case iothub.AuthSAS:
		k := iothub.SymmetricKey{}
		if n.SymmetricKey != nil {
			k = *n.SymmetricKey
		}
		oldKeys := old.Keys()
		if k.PrimaryKey == "" {
			if oldKeys != nil && oldKeys.PrimaryKey != "" {
				k.PrimaryKey = oldKeys.PrimaryKey
			} else {
				k.PrimaryKey = NewKey()
			}
		}
		if k.SecondaryKey == "" {
			if oldKeys != nil && oldKeys.SecondaryKey != "" {
				k.SecondaryKey = oldKeys.SecondaryKey
			} else {
				k.SecondaryKey = NewKey()
			}
		}
		if err := checkKey(k.PrimaryKey); err != nil {
			return nil, err
		}
		if err := checkKey(k.SecondaryKey); err != nil {
			return nil, err
		}
		n.SymmetricKey = &k
		n.X509Thumbprint = &iothub.X509Thumbprint{}
	case iothub.AuthSelfSigned:
		t := iothub.X509Thumbprint{}
		if n.X509Thumbprint != nil {
			t = *n.X509Thumbprint
		}
		if t.PrimaryThumbprint == nil || *t.PrimaryThumbprint == "" {
			return nil, newErr(ErrArgumentInvalid, "selfSigned authentication needs a primary thumbprint")
		}
		for _, p := range []**string{&t.PrimaryThumbprint, &t.SecondaryThumbprint} {
			if *p == nil || **p == "" {
				continue
			}
			if !validThumbprint(**p) {
				return nil, newErr(ErrArgumentInvalid, "thumbprint %q is not 40 or 64 hex digits", clip(**p))
			}
			up := strings.ToUpper(**p)
			*p = &up
		}
		n.X509Thumbprint = &t
		n.SymmetricKey = &iothub.SymmetricKey{}
	default:
		n.SymmetricKey = &iothub.SymmetricKey{}
		n.X509Thumbprint = &iothub.X509Thumbprint{}
	}
	return &n, nil
}

func validThumbprint(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
