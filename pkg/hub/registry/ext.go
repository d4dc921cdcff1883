package registry

import (
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// extPrefix marks the top-level buckets other parts of the hub keep in
// the registry's file, so that they never collide with the registry's
// own buckets.
const extPrefix = "ext:"

// extBucketName checks an extension name and returns its bucket name.
func extBucketName(name string) ([]byte, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return nil, fmt.Errorf("registry: extension bucket name %q is not valid", name)
	}
	return []byte(extPrefix + name), nil
}

// UpdateExtension runs fn in a read-write transaction on the top-level
// bucket of the extension called name, creating it when missing. It is
// for the hub's other parts (the Device Provisioning Service) that keep
// their state in the same file as the registry: one file, one lock, one
// fsync per batch, and OpenMemory covers them too. Writes are batched
// as the registry's own are, so fn may run more than once and must not
// have effects outside the transaction. fn never sees the registry's
// own buckets. An error from fn is returned as it is.
func (s *Store) UpdateExtension(name string, fn func(b *bolt.Bucket) error) error {
	bn, err := extBucketName(name)
	if err != nil {
		return err
	}
	return s.db.Batch(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bn)
		if err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		return fn(b)
	})
}

// ViewExtension runs fn in a read-only transaction on the bucket of the
// extension called name; fn gets nil when UpdateExtension never made it.
func (s *Store) ViewExtension(name string, fn func(b *bolt.Bucket) error) error {
	bn, err := extBucketName(name)
	if err != nil {
		return err
	}
	return s.db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(bn)) })
}
