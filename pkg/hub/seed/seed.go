package seed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iotctl/iotctl/pkg/hub/amqpfront"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/iothub"
)

// Seed is a parsed seed file. The zero Seed declares nothing.
type Seed struct {
	// File is the path it was read from ("" when parsed from bytes).
	File string
	// Policies are the shared access policies, in file order.
	Policies []Policy
	// ConsumerGroups are consumer groups besides $Default.
	ConsumerGroups []string
	// Devices are the devices, in file order.
	Devices []Device
	// Enrollments and EnrollmentGroups are the Device Provisioning
	// Service's, in file order (see ApplyDPS).
	Enrollments      []Enrollment
	EnrollmentGroups []EnrollmentGroup
}

// Policy is a shared access policy. Empty keys are generated when the
// policy is made and kept afterwards.
type Policy struct {
	KeyName      string
	Rights       registry.Rights
	PrimaryKey   string
	SecondaryKey string
	// Line is where the policy starts in the file.
	Line int
}

// Device is a device identity with its twin and modules.
type Device struct {
	DeviceID string
	// Status is enabled or disabled. Default: enabled.
	Status string
	// Auth is the authentication: type sas (default), selfSigned or
	// certificateAuthority. Empty sas keys are generated when the
	// device is made and kept afterwards.
	Auth iothub.Authentication
	Twin
	Modules []Module
	// Line is where the device starts in the file.
	Line int
}

// Module is a module identity of a Device, with its twin.
type Module struct {
	ModuleID string
	Auth     iothub.Authentication
	Twin
	Line int
}

// Twin holds the tags and desired properties of a device or module
// twin as JSON objects; nil means the file does not give them (they
// are left as they are).
type Twin struct {
	Tags    json.RawMessage
	Desired json.RawMessage
}

// Error is a problem with a seed file, at a line and column (0 when
// unknown) of File ("" when parsed from bytes).
type Error struct {
	File         string
	Line, Column int
	// Msg says what is wrong and how to put it right.
	Msg string
	// Err is the underlying error, if any (a *registry.Error when the
	// registry refused a value).
	Err error
}

// Error implements error: "seed: FILE:LINE:COLUMN: MSG" (without the
// parts that are unknown).
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("seed: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		if e.File == "" {
			b.WriteString("line ")
		}
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, "%d:", e.Column)
		}
	}
	if b.Len() > len("seed: ") {
		b.WriteString(" ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Load reads a seed file (YAML or JSON), parses it and checks it
// against the registry's rules (ids, keys, thumbprints, twin limits),
// so that Apply does not fail half-way on a bad value. Every problem
// in the file is an *Error naming its line; an unreadable file is a
// plain error.
func Load(path string) (*Seed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	s, err := Parse(data)
	if err != nil {
		var se *Error
		if errors.As(err, &se) {
			se.File = path
		}
		return nil, err
	}
	s.File = path
	if err := s.Check(); err != nil {
		return nil, err
	}
	return s, nil
}

// Parse reads a seed from YAML or JSON (one document). Unknown fields,
// fields given twice, values of the wrong kind and repeated ids are
// errors (*Error) that name the line.
func Parse(data []byte) (*Seed, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Seed{}, nil // an empty file declares nothing
		}
		return nil, &Error{Msg: "not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errAt(&extra, "a seed file holds one document; remove the second one (after ---)")
	}
	s := &Seed{}
	root := resolve(&doc)
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return s, nil
		}
		root = resolve(root.Content[0])
	}
	if root.Tag == "!!null" {
		return s, nil
	}
	err := fields(root, "the seed file", map[string]func(*yaml.Node) error{
		"sharedAccessPolicies": func(n *yaml.Node) error { return each(n, "sharedAccessPolicies", s.addPolicy) },
		"consumerGroups":       func(n *yaml.Node) error { return each(n, "consumerGroups", s.addConsumerGroup) },
		"devices":              func(n *yaml.Node) error { return each(n, "devices", s.addDevice) },
		"enrollments":          func(n *yaml.Node) error { return each(n, "enrollments", s.addEnrollment) },
		"enrollmentGroups":     func(n *yaml.Node) error { return each(n, "enrollmentGroups", s.addEnrollmentGroup) },
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Seed) addPolicy(n *yaml.Node) error {
	p := Policy{Line: n.Line}
	var hasRights bool
	err := fields(n, "a shared access policy", map[string]func(*yaml.Node) error{
		"keyName":      func(v *yaml.Node) error { return str(v, "keyName", &p.KeyName) },
		"primaryKey":   func(v *yaml.Node) error { return str(v, "primaryKey", &p.PrimaryKey) },
		"secondaryKey": func(v *yaml.Node) error { return str(v, "secondaryKey", &p.SecondaryKey) },
		"rights": func(v *yaml.Node) error {
			hasRights = true
			return rights(v, &p.Rights)
		},
	})
	if err != nil {
		return err
	}
	if p.KeyName == "" {
		return errAt(n, "a shared access policy needs a keyName")
	}
	if !hasRights {
		return errAt(n, "policy %q needs rights (RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect)", p.KeyName)
	}
	for _, q := range s.Policies {
		if q.KeyName == p.KeyName {
			return errAt(n, "policy %q is declared twice (first at line %d)", p.KeyName, q.Line)
		}
	}
	s.Policies = append(s.Policies, p)
	return nil
}

func (s *Seed) addConsumerGroup(n *yaml.Node) error {
	var name string
	if n.Kind == yaml.MappingNode {
		// {name: archive}, as the Event Hubs emulator's Config.json
		// lists them.
		err := fields(n, "a consumer group", map[string]func(*yaml.Node) error{
			"name": func(v *yaml.Node) error { return str(v, "name", &name) },
		})
		if err != nil {
			return err
		}
	} else if err := str(n, "a consumer group", &name); err != nil {
		return err
	}
	if strings.EqualFold(name, amqpfront.DefaultConsumerGroup) {
		return errAt(n, "$Default always exists; remove it from consumerGroups")
	}
	if err := amqpfront.ValidConsumerGroup(name); err != nil {
		return errAt(n, "%v", err)
	}
	for _, g := range s.ConsumerGroups {
		if strings.EqualFold(g, name) {
			return errAt(n, "consumer group %q is declared twice (names are case-insensitive)", name)
		}
	}
	s.ConsumerGroups = append(s.ConsumerGroups, name)
	return nil
}

func (s *Seed) addDevice(n *yaml.Node) error {
	d := Device{Line: n.Line, Auth: iothub.Authentication{Type: iothub.AuthSAS}}
	err := fields(n, "a device", map[string]func(*yaml.Node) error{
		"deviceId":       func(v *yaml.Node) error { return str(v, "deviceId", &d.DeviceID) },
		"status":         func(v *yaml.Node) error { return status(v, &d.Status) },
		"authentication": func(v *yaml.Node) error { return authentication(v, &d.Auth) },
		"tags":           func(v *yaml.Node) error { return object(v, "tags", &d.Tags) },
		"properties":     func(v *yaml.Node) error { return properties(v, &d.Twin) },
		"modules": func(v *yaml.Node) error {
			return each(v, "modules", func(m *yaml.Node) error { return d.addModule(m) })
		},
	})
	if err != nil {
		return err
	}
	if err := checkID(n, "a device", "deviceId", d.DeviceID); err != nil {
		return err
	}
	for _, e := range s.Devices {
		if e.DeviceID == d.DeviceID {
			return errAt(n, "device %q is declared twice (first at line %d)", d.DeviceID, e.Line)
		}
	}
	s.Devices = append(s.Devices, d)
	return nil
}

func (d *Device) addModule(n *yaml.Node) error {
	m := Module{Line: n.Line, Auth: iothub.Authentication{Type: iothub.AuthSAS}}
	err := fields(n, "a module", map[string]func(*yaml.Node) error{
		"moduleId":       func(v *yaml.Node) error { return str(v, "moduleId", &m.ModuleID) },
		"authentication": func(v *yaml.Node) error { return authentication(v, &m.Auth) },
		"tags":           func(v *yaml.Node) error { return object(v, "tags", &m.Tags) },
		"properties":     func(v *yaml.Node) error { return properties(v, &m.Twin) },
	})
	if err != nil {
		return err
	}
	if err := checkID(n, "a module", "moduleId", m.ModuleID); err != nil {
		return err
	}
	for _, e := range d.Modules {
		if e.ModuleID == m.ModuleID {
			return errAt(n, "module %q of device %q is declared twice (first at line %d)", m.ModuleID, d.DeviceID, e.Line)
		}
	}
	d.Modules = append(d.Modules, m)
	return nil
}

// checkID checks the id of the item at n: given, and valid for IoT Hub.
func checkID(n *yaml.Node, what, field, id string) error {
	if id == "" {
		return errAt(n, "%s needs a %s", what, field)
	}
	if !registry.ValidID(id) {
		return errAt(n, "%s %q is not valid: up to 128 ASCII letters, digits and - . + %% _ # * ? ! ( ) , : = @ $ '", field, id)
	}
	return nil
}

// authentication reads {type, symmetricKey: {primaryKey, secondaryKey},
// x509Thumbprint: {primaryThumbprint, secondaryThumbprint}}.
func authentication(n *yaml.Node, a *iothub.Authentication) error {
	var keys iothub.SymmetricKey
	var thumbs iothub.X509Thumbprint
	var hasKeys, hasThumbs bool
	a.Type = ""
	err := fields(n, "authentication", map[string]func(*yaml.Node) error{
		"type": func(v *yaml.Node) error { return authType(v, &a.Type) },
		"symmetricKey": func(v *yaml.Node) error {
			hasKeys = true
			return fields(v, "symmetricKey", map[string]func(*yaml.Node) error{
				"primaryKey":   func(k *yaml.Node) error { return str(k, "primaryKey", &keys.PrimaryKey) },
				"secondaryKey": func(k *yaml.Node) error { return str(k, "secondaryKey", &keys.SecondaryKey) },
			})
		},
		"x509Thumbprint": func(v *yaml.Node) error {
			hasThumbs = true
			return fields(v, "x509Thumbprint", map[string]func(*yaml.Node) error{
				"primaryThumbprint":   func(k *yaml.Node) error { return optStr(k, "primaryThumbprint", &thumbs.PrimaryThumbprint) },
				"secondaryThumbprint": func(k *yaml.Node) error { return optStr(k, "secondaryThumbprint", &thumbs.SecondaryThumbprint) },
			})
		},
	})
	if err != nil {
		return err
	}
	if a.Type == "" {
		a.Type = iothub.AuthSAS
		if hasThumbs {
			a.Type = iothub.AuthSelfSigned
		}
	}
	switch a.Type {
	case iothub.AuthSAS:
		if hasThumbs {
			return errAt(n, "authentication type sas takes a symmetricKey, not an x509Thumbprint")
		}
		a.SymmetricKey = &keys
	case iothub.AuthSelfSigned:
		if hasKeys {
			return errAt(n, "authentication type selfSigned takes an x509Thumbprint, not a symmetricKey")
		}
		if thumbs.PrimaryThumbprint == nil {
			return errAt(n, "authentication type selfSigned needs x509Thumbprint.primaryThumbprint (the certificate's SHA-1 or SHA-256 thumbprint in hex)")
		}
		a.X509Thumbprint = &thumbs
	case iothub.AuthCertificateAuthority:
		if hasKeys || hasThumbs {
			return errAt(n, "authentication type certificateAuthority takes no keys or thumbprints: the device's certificate chains to a --device-ca")
		}
	}
	return nil
}

var authTypes = []string{iothub.AuthSAS, iothub.AuthSelfSigned, iothub.AuthCertificateAuthority}

func authType(n *yaml.Node, t *string) error {
	var s string
	if err := str(n, "type", &s); err != nil {
		return err
	}
	for _, a := range authTypes {
		if strings.EqualFold(s, a) {
			*t = a
			return nil
		}
	}
	return errAt(n, "authentication type %q is not one of %s", s, strings.Join(authTypes, ", "))
}

func status(n *yaml.Node, s *string) error {
	var v string
	if err := str(n, "status", &v); err != nil {
		return err
	}
	for _, st := range []string{iothub.StatusEnabled, iothub.StatusDisabled} {
		if strings.EqualFold(v, st) {
			*s = st
			return nil
		}
	}
	return errAt(n, "status %q is not enabled or disabled", v)
}

// rights reads "RegistryRead, ServiceConnect" (as IoT Hub writes them)
// or a list of names.
func rights(n *yaml.Node, r *registry.Rights) error {
	var names []string
	switch n = resolve(n); n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			var s string
			if err := str(c, "a right", &s); err != nil {
				return err
			}
			names = append(names, s)
		}
	default:
		var s string
		if err := str(n, "rights", &s); err != nil {
			return err
		}
		names = strings.Split(s, ",")
	}
	var all registry.Rights
	for _, name := range names {
		v, ok := registry.ParseRights(name)
		if !ok {
			return errAt(n, "unknown right %q: use RegistryRead, RegistryWrite, ServiceConnect or DeviceConnect", strings.TrimSpace(name))
		}
		all |= v
	}
	if all == 0 {
		return errAt(n, "rights is empty: give one or more of RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect")
	}
	*r = all
	return nil
}

// properties reads {desired: {...}}; reported properties belong to the
// device and cannot be seeded.
func properties(n *yaml.Node, t *Twin) error {
	return fields(n, "properties", map[string]func(*yaml.Node) error{
		"desired": func(v *yaml.Node) error { return object(v, "properties.desired", &t.Desired) },
	})
}

// object reads a JSON object (tags, desired properties) as compact
// JSON. null values are refused: in a twin, null deletes.
func object(n *yaml.Node, what string, out *json.RawMessage) error {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return errAt(n, "%s must be an object (a mapping), not %s", what, kindName(n))
	}
	if err := noNulls(n, what); err != nil {
		return err
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return errAt(n, "%s: %v", what, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return errAt(n, "%s is not a JSON object: %v (keys must be strings)", what, err)
	}
	*out = b
	return nil
}

func noNulls(n *yaml.Node, path string) error {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := noNulls(n.Content[i+1], path+"."+n.Content[i].Value); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := noNulls(c, path+"[]"); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return errAt(n, "%s is null: a twin holds no nulls (null deletes a property); remove it", path)
		}
	}
	return nil
}

// fields walks a mapping, calling the function of each known key;
// unknown and repeated keys are errors naming the line.
func fields(n *yaml.Node, what string, known map[string]func(*yaml.Node) error) error {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return errAt(n, "%s must be a mapping of fields, not %s", what, kindName(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, ok := known[k.Value]
		if !ok {
			names := make([]string, 0, len(known))
			for name := range known {
				if strings.EqualFold(name, k.Value) {
					return errAt(k, "unknown field %q in %s: did you mean %q?", k.Value, what, name)
				}
				names = append(names, name)
			}
			slices.Sort(names)
			return errAt(k, "unknown field %q in %s; the fields are %s", k.Value, what, strings.Join(names, ", "))
		}
		if seen[k.Value] {
			return errAt(k, "field %q is given twice in %s", k.Value, what)
		}
		seen[k.Value] = true
		if err := f(v); err != nil {
			return err
		}
	}
	return nil
}

// each calls f on every item of a sequence.
func each(n *yaml.Node, what string, f func(*yaml.Node) error) error {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		if n.Tag == "!!null" {
			return nil
		}
		return errAt(n, "%s must be a list, not %s", what, kindName(n))
	}
	for _, c := range n.Content {
		if err := f(resolve(c)); err != nil {
			return err
		}
	}
	return nil
}

// str reads a scalar as a string; numbers are taken as written (a
// deviceId of 007 stays "007").
func str(n *yaml.Node, what string, out *string) error {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return errAt(n, "%s must be a string, not %s", what, kindName(n))
	}
	*out = n.Value
	return nil
}

func optStr(n *yaml.Node, what string, out **string) error {
	if resolve(n).Tag == "!!null" {
		return nil
	}
	var s string
	if err := str(n, what, &s); err != nil {
		return err
	}
	*out = &s
	return nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "empty"
}

func errAt(n *yaml.Node, format string, args ...any) *Error {
	return &Error{Line: n.Line, Column: n.Column, Msg: fmt.Sprintf(format, args...)}
}
