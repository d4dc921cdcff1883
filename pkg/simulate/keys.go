package simulate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/iotctl/iotctl/pkg/sas"
)

// Registry gives a fleet device its shared access key, creating the
// identity if needed. The command layer supplies one backed by the
// service client; KeyMap is one backed by a keys file.
type Registry interface {
	// EnsureDevice returns the primary key of device id, creating the
	// device when it does not exist.
	EnsureDevice(ctx context.Context, id string) (primaryKey string, err error)
}

// CARegistry creates the identities of a certificate fleet (see
// Options.Issuer): devices authenticated by a CA-signed certificate.
// The command layer's service-backed Registry implements it too.
type CARegistry interface {
	// EnsureCADevice creates device id with certificateAuthority
	// authentication when it does not exist, and fails when it exists
	// with another kind of authentication.
	EnsureCADevice(ctx context.Context, id string) error
}

// ErrNoKey is returned by KeyMap.EnsureDevice for an id it lacks.
var ErrNoKey = errors.New("simulate: no key for device")

// KeyMap is device id → base64 primary key. It implements Registry
// without creating anything.
type KeyMap map[string]string

// EnsureDevice returns the key of id, or an error wrapping ErrNoKey.
func (k KeyMap) EnsureDevice(_ context.Context, id string) (string, error) {
	if key, ok := k[id]; ok {
		return key, nil
	}
	return "", fmt.Errorf("%w %q in the keys file", ErrNoKey, id)
}

// IDs returns the device ids in k, sorted.
func (k KeyMap) IDs() []string {
	ids := make([]string, 0, len(k))
	for id := range k {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ReadKeys reads a keys file in either of two forms:
//
//   - a JSON object of device id to key: {"sim-00001": "base64key", ...}
//   - lines "deviceId key", separated by spaces or tabs; blank lines and
//     lines starting with '#' are skipped.
//
// Every key must be valid base64. Errors are *SpecError naming the line
// (or the JSON error), never the key.
func ReadKeys(r io.Reader) (KeyMap, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	keys := KeyMap{}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		if err := json.Unmarshal(t, (*map[string]string)(&keys)); err != nil {
			return nil, &SpecError{What: "keys file", Reason: "not a JSON object of device id to key: " + err.Error()}
		}
		for id, k := range keys {
			if err := checkKey(id, k, "keys file entry "+strconv.Quote(id)); err != nil {
				return nil, err
			}
		}
		return keys, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		what := "keys file line " + strconv.Itoa(n)
		if len(f) != 2 {
			return nil, &SpecError{What: what, Reason: "want \"deviceId key\""}
		}
		if _, dup := keys[f[0]]; dup {
			return nil, &SpecError{What: what, Reason: "device " + strconv.Quote(f[0]) + " appears twice"}
		}
		if err := checkKey(f[0], f[1], what); err != nil {
			return nil, err
		}
		keys[f[0]] = f[1]
	}
	if len(keys) == 0 {
		return nil, &SpecError{What: "keys file", Reason: "no devices in it"}
	}
	return keys, nil
}

func checkKey(id, key, what string) error {
	if id == "" {
		return &SpecError{What: what, Reason: "empty device id"}
	}
	if _, err := sas.DecodeKey(key); err != nil {
		return &SpecError{What: what, Reason: "the key is not valid base64"}
	}
	return nil
}

// FleetIDs returns n device ids: prefix followed by 1..n zero-padded to
// at least five digits ("sim-00001", "sim-00002", ...).
func FleetIDs(prefix string, n int) []string {
	return FleetIDRange(prefix, n, 0, n)
}
