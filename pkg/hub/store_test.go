package hub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A second hub on a data directory in use fails with a
// *DataDirInUseError that names the process holding it; once that hub
// closes, its pid file is gone and the directory can be used again.
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first := New(&Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := first.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := New(&Options{Addr: "127.0.0.1:0", DataDir: dir})
	err := second.Start(context.Background())
	var de *DataDirInUseError
	if !errors.As(err, &de) || de.Dir != dir || de.PID != os.Getpid() {
		t.Fatalf("second Start = %v; want a *DataDirInUseError for %s naming process %d", err, dir, os.Getpid())
	}
	second.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, PIDFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", PIDFile, err)
	}
	third := New(&Options{Addr: "127.0.0.1:0", DataDir: dir})
	if err := third.Start(context.Background()); err != nil {
		t.Fatalf("Start after the first hub closed: %v", err)
	}
	third.Close()
}
