package nodemodules

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMissingNamesEveryAbsentDependency(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("package.json", `{"dependencies":{"azure-iot-device":"1.18.4","@azure/event-hubs":"6.0.4","azurite":"3.37.0"}}`)
	write("node_modules/azure-iot-device/package.json", `{}`)
	write("node_modules/@azure/event-hubs/package.json", `{}`)
	// A directory without its package.json is a half-made install.
	if err := os.MkdirAll(filepath.Join(dir, "node_modules", "azurite"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := Missing(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"azurite"}) {
		t.Errorf("Missing = %v; want [azurite]", got)
	}
	write("node_modules/azurite/package.json", `{}`)
	if got, err := Missing(dir); err != nil || len(got) != 0 {
		t.Errorf("Missing = %v, %v; want none", got, err)
	}
	if _, err := Missing(t.TempDir()); err == nil {
		t.Error("Missing of a directory without package.json: no error")
	}
}

// Two processes' worth of Ensure at once run npm ci once: the second
// waits for the lock, then finds everything installed.
func TestEnsureInstallsOnceUnderConcurrency(t *testing.T) {
	bin, dir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"dependencies":{"azurite":"3.37.0"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// A fake npm that counts its runs and installs slowly enough for
	// the other caller to arrive meanwhile.
	npm := "#!/bin/sh\necho run >> runs\nsleep 0.3\nmkdir -p node_modules/azurite && echo '{}' > node_modules/azurite/package.json\n"
	for name, script := range map[string]string{"npm": npm, "node": "#!/bin/sh\nexit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- Ensure(t.Context(), dir) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	runs, err := os.ReadFile(filepath.Join(dir, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(runs) / len("run\n"); n != 1 {
		t.Errorf("npm ci ran %d times; want once", n)
	}
}
