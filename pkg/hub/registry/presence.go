package registry

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketPresence holds, per identity key, the Presence of its last
// connection.
var bucketPresence = []byte("presence")

// Presence is what the registry keeps of an identity's last connection,
// so that its connectionStateUpdatedTime and lastActivityTime survive
// the disconnect (and a restart), as IoT Hub reports them for a
// disconnected device (the Device and Twin resources of the REST API,
// https://learn.microsoft.com/rest/api/iothub/service/devices/get-identity).
type Presence struct {
	// StateUpdated is when the connection state last changed: when it
	// disconnected.
	StateUpdated time.Time `json:"connectionStateUpdatedTime"`
	// LastActivity is when it last connected or sent a message.
	LastActivity time.Time `json:"lastActivityTime"`
}

// SetPresence records the Presence of a device (moduleID "") or module
// that has disconnected. Errors match ErrDeviceNotFound or
// ErrModuleNotFound when the identity no longer exists.
func (s *Store) SetPresence(deviceID, moduleID string, p Presence) error {
	p.StateUpdated, p.LastActivity = p.StateUpdated.UTC(), p.LastActivity.UTC()
	return s.db.Batch(func(tx *bolt.Tx) error {
		if err := checkIdentity(tx, deviceID, moduleID); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketPresence), identityKey(deviceID, moduleID), &p)
	})
}

// Presence returns what SetPresence recorded for a device (moduleID
// "") or module, or zero times when nothing was (it never connected).
func (s *Store) Presence(deviceID, moduleID string) (Presence, error) {
	var p Presence
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketPresence).Get(identityKey(deviceID, moduleID))
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &p)
	})
	return p, err
}

func deletePresence(tx *bolt.Tx, key []byte) error {
	return tx.Bucket(bucketPresence).Delete(key)
}
