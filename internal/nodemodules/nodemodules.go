// Package nodemodules installs the pinned Node packages of a directory
// (its package.json and package-lock.json) for the tests and benchmarks
// that run the official Node SDKs, once, whichever process asks first.
//
// `npm ci` deletes node_modules before it installs, so two processes
// running it in one directory at once (go test runs test packages in
// parallel: the interop tests and the examples both use
// test/interop's packages) would each see the other's half-made tree.
// Ensure takes an exclusive lock on a file beside package.json for the
// check and the install.
package nodemodules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Ensure checks that node is on PATH and that every dependency that
// dir/package.json names is in dir/node_modules; when one is missing
// it runs `npm ci` in dir, holding dir/.npm-ci.lock so that no other
// process checks or installs meanwhile. Cancelling ctx kills npm.
func Ensure(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not on PATH: install Node.js 20 or newer (and npm)")
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("locking %s for npm ci: %w", dir, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s for npm ci: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	missing, err := Missing(dir)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s (to install %s) failed: %v\n%s", dir, missing[0], err, out)
	}
	if missing, err = Missing(dir); err != nil || len(missing) > 0 {
		return fmt.Errorf("npm ci in %s left %v missing (%v)", dir, missing, err)
	}
	return nil
}

// Missing lists the dependencies of dir/package.json that are not in
// dir/node_modules.
func Missing(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, err
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "package.json"), err)
	}
	var missing []string
	for name := range pkg.Dependencies {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", filepath.FromSlash(name), "package.json")); err != nil {
			missing = append(missing, name)
		}
	}
	return missing, nil
}
