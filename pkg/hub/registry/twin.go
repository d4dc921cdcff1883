package registry

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iotctl/iotctl/pkg/iothub"
)

// twinRecord is a twin as stored.
type twinRecord struct {
	Version         int64 `json:"version"`
	Tags            *node `json:"tags"`
	Desired         *node `json:"desired"`
	Reported        *node `json:"reported"`
	DesiredVersion  int64 `json:"dv"`
	ReportedVersion int64 `json:"rv"`
}

func newTwinRecord(now time.Time) *twinRecord {
	return &twinRecord{
		Version:         1,
		Tags:            newObject(now, 0),
		Desired:         newObject(now, 1),
		Reported:        newObject(now, 0),
		DesiredVersion:  1,
		ReportedVersion: 1,
	}
}

// desiredOf returns the desired properties of u, nil if none.
func desiredOf(u *iothub.TwinUpdate) json.RawMessage {
	if u == nil || u.Properties == nil {
		return nil
	}
	return u.Properties.Desired
}

// DesiredDelta is a change of desired properties to push to the device:
// Patch is the JSON merge patch including "$version", as IoT Hub sends
// it on $iothub/twin/PATCH/properties/desired/?$version={Version}.
type DesiredDelta struct {
	Patch   json.RawMessage
	Version int64
}

// Twin returns the twin of a device (moduleID "") or module, or an
// error matching ErrDeviceNotFound or ErrModuleNotFound.
func (s *Store) Twin(deviceID, moduleID string) (*iothub.Twin, error) {
	var t *iothub.Twin
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		t, err = readTwin(tx, deviceID, moduleID)
		return err
	})
	return t, err
}

// PatchTwin merges tags and desired properties into a twin (JSON merge
// patch: null deletes) when ifMatch is "", "*" or the twin's etag. The
// twin's version goes up by one, and the desired $version too when the
// patch has desired properties; then delta is the change to send to
// the device (nil otherwise). The result must stay within IoT Hub's
// limits (key characters and length, depth 10, strings 4 KB, tags 8 KB,
// desired 32 KB). Errors match ErrDeviceNotFound, ErrModuleNotFound,
// ErrPreconditionFailed or ErrArgumentInvalid.
func (s *Store) PatchTwin(deviceID, moduleID string, u *iothub.TwinUpdate, ifMatch string) (*iothub.Twin, *DesiredDelta, error) {
	return s.writeTwin(deviceID, moduleID, u, ifMatch, false)
}

// ReplaceTwin replaces a twin's tags and desired properties (absent
// means empty) when ifMatch is "", "*" or the twin's etag. delta holds
// the whole new desired document, with null for each removed top-level
// property, so that a device merging it ends with the same document.
// Errors as for PatchTwin.
func (s *Store) ReplaceTwin(deviceID, moduleID string, u *iothub.TwinUpdate, ifMatch string) (*iothub.Twin, *DesiredDelta, error) {
	if u == nil {
		u = &iothub.TwinUpdate{}
	}
	return s.writeTwin(deviceID, moduleID, u, ifMatch, true)
}

func (s *Store) writeTwin(deviceID, moduleID string, u *iothub.TwinUpdate, ifMatch string, replace bool) (*iothub.Twin, *DesiredDelta, error) {
	if u == nil {
		return nil, nil, newErr(ErrArgumentInvalid, "no twin patch")
	}
	var tags, desired map[string]any
	var tagsNull, desiredNull, hasTags, hasDesired bool
	var err error
	if len(u.Tags) > 0 {
		hasTags = true
		if tags, tagsNull, err = parseSection("tags", u.Tags, true); err != nil {
			return nil, nil, err
		}
	}
	if d := desiredOf(u); len(d) > 0 {
		hasDesired = true
		if desired, desiredNull, err = parseSection("properties.desired", d, true); err != nil {
			return nil, nil, err
		}
	}
	if replace {
		hasTags, hasDesired = true, true
	}
	now := s.now()
	ms := now.UnixMilli()
	var out *iothub.Twin
	var delta *DesiredDelta
	err = s.db.Batch(func(tx *bolt.Tx) error {
		out, delta = nil, nil
		key := identityKey(deviceID, moduleID)
		rec, err := getTwinRecord(tx, deviceID, moduleID)
		if err != nil {
			return err
		}
		if !matchEtag(ifMatch, twinEtag(rec.Version)) {
			return newErr(ErrPreconditionFailed, "etag %s does not match the twin", ifMatch)
		}
		rec.Version++
		if hasTags {
			if replace || tagsNull {
				rec.Tags = newObject(now, 0)
			}
			rec.Tags.merge(tags, ms, 0)
			if n := rec.Tags.size(); n > MaxTagsBytes {
				return newErr(ErrArgumentInvalid, "tags would be %d bytes; the limit is %d", n, MaxTagsBytes)
			}
		}
		if hasDesired {
			rec.DesiredVersion++
			ver := rec.DesiredVersion
			var patch map[string]any
			if replace || desiredNull {
				patch = map[string]any{}
				for k := range rec.Desired.C {
					patch[k] = nil
				}
				for k, v := range desired {
					patch[k] = v
				}
				rec.Desired = newObject(now, ver)
			} else {
				patch = desired
			}
			rec.Desired.merge(desired, ms, ver)
			if n := rec.Desired.size(); n > MaxDesiredBytes {
				return newErr(ErrArgumentInvalid, "desired properties would be %d bytes; the limit is %d", n, MaxDesiredBytes)
			}
			withVer := make(map[string]any, len(patch)+1)
			for k, v := range patch {
				withVer[k] = v
			}
			withVer["$version"] = ver
			b, err := json.Marshal(withVer)
			if err != nil {
				return err
			}
			delta = &DesiredDelta{Patch: b, Version: ver}
		}
		if err := putJSON(tx.Bucket(bucketTwins), key, rec); err != nil {
			return err
		}
		out, err = readTwin(tx, deviceID, moduleID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return out, delta, nil
}

// PatchReported merges a reported-properties patch from a device or
// module (JSON merge patch: null deletes) and returns the new reported
// $version. The twin's version goes up by one. Errors match
// ErrDeviceNotFound, ErrModuleNotFound or ErrArgumentInvalid (not an
// object, or over IoT Hub's limits: reported ≤ 32 KB, depth 10, ...).
func (s *Store) PatchReported(deviceID, moduleID string, patch json.RawMessage) (int64, error) {
	m, _, err := parseSection("properties.reported", patch, false)
	if err != nil {
		return 0, err
	}
	now := s.now()
	var ver int64
	err = s.db.Batch(func(tx *bolt.Tx) error {
		rec, err := getTwinRecord(tx, deviceID, moduleID)
		if err != nil {
			return err
		}
		rec.Version++
		rec.ReportedVersion++
		rec.Reported.merge(m, now.UnixMilli(), rec.ReportedVersion)
		if n := rec.Reported.size(); n > MaxReportedBytes {
			return newErr(ErrArgumentInvalid, "reported properties would be %d bytes; the limit is %d", n, MaxReportedBytes)
		}
		ver = rec.ReportedVersion
		return putJSON(tx.Bucket(bucketTwins), identityKey(deviceID, moduleID), rec)
	})
	return ver, err
}

func getTwinRecord(tx *bolt.Tx, deviceID, moduleID string) (*twinRecord, error) {
	if moduleID == "" {
		if _, err := getDevice(tx, deviceID); err != nil {
			return nil, err
		}
	} else if _, err := getModule(tx, deviceID, moduleID); err != nil {
		return nil, err
	}
	v := tx.Bucket(bucketTwins).Get(identityKey(deviceID, moduleID))
	rec := &twinRecord{}
	if v == nil {
		// A twin lost or never written: start afresh.
		return newTwinRecord(time.Time{}), nil
	}
	if err := decodeJSON(v, rec); err != nil {
		return nil, err
	}
	if rec.Tags == nil {
		rec.Tags = newObject(time.Time{}, 0)
	}
	if rec.Desired == nil {
		rec.Desired = newObject(time.Time{}, 0)
	}
	if rec.Reported == nil {
		rec.Reported = newObject(time.Time{}, 0)
	}
	return rec, nil
}

// readTwin assembles the Twin of an identity inside a transaction.
func readTwin(tx *bolt.Tx, deviceID, moduleID string) (*iothub.Twin, error) {
	rec, err := getTwinRecord(tx, deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	t := &iothub.Twin{
		DeviceID:                  deviceID,
		ModuleID:                  moduleID,
		Etag:                      twinEtag(rec.Version),
		Version:                   rec.Version,
		ConnectionState:           iothub.Disconnected,
		CloudToDeviceMessageCount: c2dCount(tx, identityKey(deviceID, moduleID)),
	}
	var auth *iothub.Authentication
	if moduleID == "" {
		d, err := getDevice(tx, deviceID)
		if err != nil {
			return nil, err
		}
		t.DeviceEtag = d.Etag
		t.Status = d.Status
		t.StatusReason = d.StatusReason
		t.StatusUpdateTime = &iothub.Time{Time: d.StatusUpdatedTime.Time}
		t.Capabilities = d.Capabilities
		t.DeviceScope = d.DeviceScope
		t.ParentScopes = d.ParentScopes
		auth = d.Authentication
	} else {
		m, err := getModule(tx, deviceID, moduleID)
		if err != nil {
			return nil, err
		}
		t.DeviceEtag = m.Etag
		auth = m.Authentication
	}
	t.AuthenticationType = iothub.AuthNone
	if auth != nil {
		t.AuthenticationType = auth.Type
		if auth.X509Thumbprint != nil {
			t.X509Thumbprint = *auth.X509Thumbprint
		}
	}
	if t.Tags, err = json.Marshal(rec.Tags.value()); err != nil {
		return nil, err
	}
	if t.Properties.Desired, err = json.Marshal(rec.Desired.document(rec.DesiredVersion, true)); err != nil {
		return nil, err
	}
	if t.Properties.Reported, err = json.Marshal(rec.Reported.document(rec.ReportedVersion, false)); err != nil {
		return nil, err
	}
	return t, nil
}
