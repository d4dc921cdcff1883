package seed

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// Result lists what Apply did, one entry per item: "policy NAME",
// "device ID", "module ID/MODULE", "twin ID" or "twin ID/MODULE".
type Result struct {
	Created, Updated, Unchanged []string
}

// Apply makes the registry hold what the seed declares: policies,
// devices and modules are created, or updated where they differ from
// the file (keys, rights, status, authentication); twins get the
// file's tags and desired properties, by a patch of only what differs.
// Nothing else is touched, and applying a seed a second time changes
// nothing. Consumer groups are not kept in the registry: the hub reads
// s.ConsumerGroups. A value the registry refuses is an *Error naming
// the item's line; Load checks them all beforehand.
func (s *Seed) Apply(st *registry.Store) (*Result, error) {
	res := &Result{}
	for _, p := range s.Policies {
		if err := s.applyPolicy(st, p, res); err != nil {
			return res, err
		}
	}
	for i := range s.Devices {
		if err := s.applyDevice(st, &s.Devices[i], res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Check applies the seed to an empty registry in memory, so that every
// value the registry would refuse (keys that are not base64 of 16 to 64
// bytes, thumbprints, twin keys and sizes) is found before anything is
// written to the real one.
func (s *Seed) Check() error {
	st, err := registry.OpenMemory(nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer st.Close()
	if _, err = s.Apply(st); err != nil {
		return err
	}
	return s.checkDPS()
}

// ConsumerGroupsWith returns groups followed by the seed's consumer
// groups that are not among them (case-insensitively).
func (s *Seed) ConsumerGroupsWith(groups []string) []string {
	out := append([]string(nil), groups...)
next:
	for _, g := range s.ConsumerGroups {
		for _, o := range out {
			if strings.EqualFold(o, g) {
				continue next
			}
		}
		out = append(out, g)
	}
	return out
}

func (s *Seed) fail(line int, what string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "registry: ")
	return &Error{File: s.File, Line: line, Msg: what + ": " + msg, Err: err}
}

func (s *Seed) applyPolicy(st *registry.Store, p Policy, res *Result) error {
	name := "policy " + p.KeyName
	cur, err := st.Policy(p.KeyName)
	if errors.Is(err, registry.ErrUnauthorized) {
		if _, err := st.PutPolicy(registry.Policy{KeyName: p.KeyName, Rights: p.Rights, PrimaryKey: p.PrimaryKey, SecondaryKey: p.SecondaryKey}); err != nil {
			return s.fail(p.Line, name, err)
		}
		res.Created = append(res.Created, name)
		return nil
	}
	if err != nil {
		return err
	}
	want := *cur
	want.Rights = p.Rights
	if p.PrimaryKey != "" {
		want.PrimaryKey = p.PrimaryKey
	}
	if p.SecondaryKey != "" {
		want.SecondaryKey = p.SecondaryKey
	}
	if want == *cur {
		res.Unchanged = append(res.Unchanged, name)
		return nil
	}
	if _, err := st.PutPolicy(want); err != nil {
		return s.fail(p.Line, name, err)
	}
	res.Updated = append(res.Updated, name)
	return nil
}

func (s *Seed) applyDevice(st *registry.Store, d *Device, res *Result) error {
	name := "device " + d.DeviceID
	status := d.Status
	if status == "" {
		status = iothub.StatusEnabled
	}
	cur, err := st.Device(d.DeviceID)
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound):
		auth := d.Auth
		if _, err := st.CreateDevice(&iothub.Device{DeviceID: d.DeviceID, Status: status, Authentication: &auth}); err != nil {
			return s.fail(d.Line, name, err)
		}
		res.Created = append(res.Created, name)
	case err != nil:
		return err
	case cur.Status != status || !sameAuth(cur.Authentication, &d.Auth):
		u := *cur
		auth := d.Auth
		u.Status, u.Authentication = status, &auth
		if _, err := st.UpdateDevice(&u, "*"); err != nil {
			return s.fail(d.Line, name, err)
		}
		res.Updated = append(res.Updated, name)
	default:
		res.Unchanged = append(res.Unchanged, name)
	}
	if err := s.applyTwin(st, d.DeviceID, "", d.Twin, d.Line, res); err != nil {
		return err
	}
	for _, m := range d.Modules {
		if err := s.applyModule(st, d.DeviceID, m, res); err != nil {
			return err
		}
	}
	return nil
}

func (s *Seed) applyModule(st *registry.Store, deviceID string, m Module, res *Result) error {
	name := "module " + deviceID + "/" + m.ModuleID
	auth := m.Auth
	cur, err := st.Module(deviceID, m.ModuleID)
	switch {
	case errors.Is(err, registry.ErrModuleNotFound):
		if _, err := st.CreateModule(&iothub.Module{DeviceID: deviceID, ModuleID: m.ModuleID, Authentication: &auth}); err != nil {
			return s.fail(m.Line, name, err)
		}
		res.Created = append(res.Created, name)
	case err != nil:
		return err
	case !sameAuth(cur.Authentication, &m.Auth):
		u := *cur
		u.Authentication = &auth
		if _, err := st.UpdateModule(&u, "*"); err != nil {
			return s.fail(m.Line, name, err)
		}
		res.Updated = append(res.Updated, name)
	default:
		res.Unchanged = append(res.Unchanged, name)
	}
	return s.applyTwin(st, deviceID, m.ModuleID, m.Twin, m.Line, res)
}

// sameAuth reports whether the registry's authentication already is
// what the file asks for. Keys and thumbprints the file leaves out
// match any.
func sameAuth(cur, want *iothub.Authentication) bool {
	if cur == nil || !strings.EqualFold(cur.Type, want.Type) {
		return false
	}
	switch want.Type {
	case iothub.AuthSAS:
		k, w := cur.Keys(), want.SymmetricKey
		if k == nil {
			return false
		}
		return w == nil || (w.PrimaryKey == "" || w.PrimaryKey == k.PrimaryKey) && (w.SecondaryKey == "" || w.SecondaryKey == k.SecondaryKey)
	case iothub.AuthSelfSigned:
		var c iothub.X509Thumbprint
		if cur.X509Thumbprint != nil {
			c = *cur.X509Thumbprint
		}
		return sameThumb(c.PrimaryThumbprint, want.X509Thumbprint.PrimaryThumbprint) &&
			(want.X509Thumbprint.SecondaryThumbprint == nil || sameThumb(c.SecondaryThumbprint, want.X509Thumbprint.SecondaryThumbprint))
	}
	return true
}

func sameThumb(a, b *string) bool {
	var x, y string
	if a != nil {
		x = *a
	}
	if b != nil {
		y = *b
	}
	return strings.EqualFold(x, y)
}

// applyTwin patches the twin's tags and desired properties to the
// file's, sending only the differences (a JSON merge patch, RFC 7386):
// no patch, no new etag or $version.
func (s *Seed) applyTwin(st *registry.Store, deviceID, moduleID string, t Twin, line int, res *Result) error {
	if t.Tags == nil && t.Desired == nil {
		return nil
	}
	name := "twin " + deviceID
	if moduleID != "" {
		name += "/" + moduleID
	}
	cur, err := st.Twin(deviceID, moduleID)
	if err != nil {
		return err
	}
	var u iothub.TwinUpdate
	if t.Tags != nil {
		p, err := mergePatch(cur.Tags, t.Tags)
		if err != nil {
			return err
		}
		u.Tags = p
	}
	if t.Desired != nil {
		p, err := mergePatch(cur.Properties.Desired, t.Desired)
		if err != nil {
			return err
		}
		if p != nil {
			u.Properties = &iothub.TwinUpdateProperties{Desired: p}
		}
	}
	if u.Tags == nil && u.Properties == nil {
		res.Unchanged = append(res.Unchanged, name)
		return nil
	}
	if _, _, err := st.PatchTwin(deviceID, moduleID, &u, "*"); err != nil {
		return s.fail(line, name, err)
	}
	res.Updated = append(res.Updated, name)
	return nil
}

// mergePatch returns the JSON merge patch that turns the object cur
// into want, or nil when they are equal. The twin's own "$metadata"
// and "$version" in cur are not properties and are ignored.
func mergePatch(cur, want json.RawMessage) (json.RawMessage, error) {
	var c, w map[string]any
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, &c); err != nil {
			return nil, fmt.Errorf("seed: reading the twin: %w", err)
		}
	}
	delete(c, "$metadata")
	delete(c, "$version")
	if err := json.Unmarshal(want, &w); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	p := diff(c, w)
	if len(p) == 0 {
		return nil, nil
	}
	return json.Marshal(p)
}

func diff(cur, want map[string]any) map[string]any {
	p := map[string]any{}
	for k := range cur {
		if _, ok := want[k]; !ok {
			p[k] = nil
		}
	}
	for k, wv := range want {
		cv, ok := cur[k]
		cm, cIsObj := cv.(map[string]any)
		wm, wIsObj := wv.(map[string]any)
		switch {
		case ok && cIsObj && wIsObj:
			if sub := diff(cm, wm); len(sub) > 0 {
				p[k] = sub
			}
		case !ok || !reflect.DeepEqual(cv, wv):
			p[k] = wv
		}
	}
	return p
}
