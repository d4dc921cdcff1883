package registry

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestExtensionBucketsPersistAndStayApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ViewExtension("dps", func(b *bolt.Bucket) error {
		if b != nil {
			return errors.New("bucket exists before any update")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateExtension("dps", func(b *bolt.Bucket) error { return b.Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateExtension("", func(*bolt.Bucket) error { return nil }); err == nil {
		t.Error(`UpdateExtension("") = nil; want an error`)
	}
	s.Close()
	s, err = Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got string
	if err := s.ViewExtension("dps", func(b *bolt.Bucket) error {
		got = string(b.Get([]byte("k")))
		// The registry's own buckets are not reachable from here.
		if b.Bucket(bucketDevices) != nil || b.Get([]byte("schema")) != nil {
			return errors.New("the extension bucket shows the registry's buckets")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got != "v" {
		t.Errorf("after reopening, ext bucket k = %q; want v", got)
	}
	if _, err := s.Devices(0); err != nil {
		t.Errorf("Devices after an extension write: %v", err)
	}
}
