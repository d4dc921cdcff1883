package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// How a flag gets its value when the command line does not give it,
// for every flag of every command, in this order:
//
//  1. IOTCTL_<COMMAND>_<KEY>, the command's own environment variable
//     (IOTCTL_DEVICE_SIMULATE_INTERVAL);
//  2. IOTCTL_<KEY> (IOTCTL_INTERVAL), unless the key is scoped in that
//     command;
//  3. the key in the config file's section of the command
//     ("device simulate:" then "interval: 3s");
//  4. the key at the top of the config file ("interval: 3s"), unless
//     the key is scoped in that command;
//  5. the flag's default.
//
// A flag's key is its name, or the name set with SetConfigKey. In
// environment variable names the command path and the key are in upper
// case with '_' for ' ' and '-'.

// configKeyAnnotation is the flag annotation SetConfigKey sets.
const configKeyAnnotation = "iotctl_config_key"

// sourceAnnotation marks a flag that the environment or the config file
// set, with where the value came from.
const sourceAnnotation = "iotctl_value_source"

// FromCommandLine reports whether the flag name of fset was given on the
// command line, not set from the environment or the config file. Load
// marks those as changed too, so that commands see their values as they
// see a flag's; where a flag given on the command line must win over
// another set from the environment (--host over IOTCTL_DEVICE_CONNECTION_STRING),
// this tells the two apart.
func FromCommandLine(fset *pflag.FlagSet, name string) bool {
	fl := fset.Lookup(name)
	return fl != nil && fl.Changed && len(fl.Annotations[sourceAnnotation]) == 0
}

// ValueSource says where the value of the flag name of fset came from:
// "the command line", the environment variable, or the config file's key.
func ValueSource(fset *pflag.FlagSet, name string) string {
	fl := fset.Lookup(name)
	if fl == nil || !fl.Changed {
		return "the default"
	}
	if src := fl.Annotations[sourceAnnotation]; len(src) == 1 {
		return src[0]
	}
	return "the command line"
}

// scopedKeys are keys that mean something else in these commands than in
// the others: a top-level key or IOTCTL_<KEY> set for the other commands
// does not reach them, only the command's section and
// IOTCTL_<COMMAND>_<KEY> do.
var scopedKeys = map[string][]string{
	// The identity of an X.509 device with --host, not the device a
	// back-end command acts on.
	"device send":     {KeyDeviceID},
	"device simulate": {KeyDeviceID},
	// A glob of devices whose events are printed.
	"hub monitor": {KeyDeviceID},
	// The identity the token is for: with a hub's string it changes the
	// token's scope.
	"hub sas": {KeyDeviceID, "module-id", "expiry"},
	// The server's certificate, not a device's.
	"hub serve": {"cert", "key"},
	// The CA's common name, not a method name.
	"hub device-ca create": {"name"},
}

// extraKeys are configuration keys that are not flags of every command
// that reads them: the device connection string, and the service
// connection string a device fleet through DPS takes the local hub's
// host from.
var extraKeys = []string{KeyDeviceConnectionString, KeyConnectionString}

// SetConfigKey makes key the configuration key (config file and
// IOTCTL_ variable) of the flag name in fs instead of the flag's name;
// for a flag whose name means one thing in some commands and another in
// others under a key of its own (the device commands' --connection-string
// is device-connection-string). It panics if fs has no such flag: that
// is a mistake in the command's code.
func SetConfigKey(fs *pflag.FlagSet, name, key string) {
	if err := fs.SetAnnotation(name, configKeyAnnotation, []string{key}); err != nil {
		panic(err)
	}
}

// ConfigKey is the configuration key of fl: its name unless SetConfigKey
// gave it another.
func ConfigKey(fl *pflag.Flag) string {
	if k := fl.Annotations[configKeyAnnotation]; len(k) == 1 {
		return k[0]
	}
	return fl.Name
}

// Scoped reports whether key is read only from the command's own
// section and environment variable in the command at path ("hub serve").
func Scoped(path, key string) bool {
	return slices.Contains(scopedKeys[path], key)
}

// CommandPath is the command's path without the program's name: its
// config-file section ("device simulate"); "" for the root.
func CommandPath(c *cobra.Command) string {
	p := c.CommandPath()
	if i := strings.IndexByte(p, ' '); i >= 0 {
		return p[i+1:]
	}
	return ""
}

// EnvName is the environment variable of key: IOTCTL_<KEY>, or with a
// command path IOTCTL_<PATH>_<KEY>.
func EnvName(path, key string) string {
	r := strings.NewReplacer("-", "_", " ", "_", ".", "_")
	if path == "" {
		return "IOTCTL_" + strings.ToUpper(r.Replace(key))
	}
	return "IOTCTL_" + strings.ToUpper(r.Replace(path)) + "_" + strings.ToUpper(r.Replace(key))
}

// configFile is a parsed config file.
type configFile struct {
	path string
	top  map[string]any
}

// section returns the command section at path, or nil.
func (c *configFile) section(path string) map[string]any {
	if c == nil || path == "" {
		return nil
	}
	m, _ := c.top[path].(map[string]any)
	return m
}

// readConfig reads the config file: the named one (a missing named file
// is an error), else the default one when it exists. It returns nil for
// no file.
func readConfig(named string) (*configFile, error) {
	file := named
	if file == "" {
		file = DefaultConfigFile()
		if file == "" {
			return nil, nil
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		if named == "" && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, Usagef("config file %s: %v", file, err)
	}
	top := map[string]any{}
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, Usagef("config file %s: not valid YAML: %v", file, err)
	}
	return &configFile{path: file, top: top}, nil
}

// source is where a configured value came from, for messages.
type source struct {
	env  string // the variable's name, or ""
	file string // the config file, or ""
	sect string // the file's section, or ""
	key  string
}

func (s source) String() string {
	if s.env != "" {
		return s.env
	}
	if s.sect != "" {
		return fmt.Sprintf("%s in section %q of %s", s.key, s.sect, s.file)
	}
	return fmt.Sprintf("%s in %s", s.key, s.file)
}

// lookup finds the configured value of key for the command at path, in
// the order of the package comment, with getenv for the environment.
// raw is a string from the environment, or what YAML decoded.
func lookup(getenv func(string) string, cfg *configFile, path, key string) (raw any, src source, ok bool) {
	scoped := Scoped(path, key)
	if path != "" {
		if v := getenv(EnvName(path, key)); v != "" {
			return v, source{env: EnvName(path, key)}, true
		}
	}
	if !scoped {
		if v := getenv(EnvName("", key)); v != "" {
			return v, source{env: EnvName("", key)}, true
		}
	}
	if cfg == nil {
		return nil, source{}, false
	}
	if v, found := cfg.section(path)[key]; found && v != nil {
		return v, source{file: cfg.path, sect: path, key: key}, true
	}
	if !scoped {
		if v, found := cfg.top[key]; found && v != nil {
			if _, isSection := v.(map[string]any); !isSection {
				return v, source{file: cfg.path, key: key}, true
			}
		}
	}
	return nil, source{}, false
}

// scalar renders a YAML scalar as a flag would read it.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("want a single value, not %T", v)
}

// isList reports whether fl takes repeated values.
func isList(fl *pflag.Flag) bool {
	_, ok := fl.Value.(pflag.SliceValue)
	return ok
}

// apply sets fl in fset from a configured value: a string from the
// environment as if it were given once on the command line, a YAML
// list value by value.
func apply(fset *pflag.FlagSet, fl *pflag.Flag, raw any, src source) error {
	fail := func(err error) error {
		return Usagef("%s: for --%s: %v", src, fl.Name, err)
	}
	list, isSeq := raw.([]any)
	if isSeq && !isList(fl) {
		return fail(errors.New("a list, but the flag takes one value"))
	}
	if !isSeq {
		list = []any{raw}
	}
	for _, v := range list {
		s, err := scalar(v)
		if err != nil {
			return fail(err)
		}
		if err := fset.Set(fl.Name, s); err != nil {
			return fail(errors.Unwrap(err))
		}
	}
	return fset.SetAnnotation(fl.Name, sourceAnnotation, []string{src.String()})
}

// bindFlags sets every flag of cmd that the command line did not set
// from the environment (getenv) or cfg. It returns the keys it visited.
func bindFlags(cmd *cobra.Command, cfg *configFile, getenv func(string) string) (map[string]bool, error) {
	path := CommandPath(cmd)
	fset := cmd.Flags()
	keys := map[string]bool{}
	var err error
	fset.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Name == "help" || fl.Name == KeyConfig || fl.Deprecated != "" {
			return
		}
		key := ConfigKey(fl)
		keys[key] = true
		if fl.Changed {
			return
		}
		if raw, src, ok := lookup(getenv, cfg, path, key); ok {
			err = apply(fset, fl, raw, src)
		}
	})
	return keys, err
}

// knownKeys returns, for the whole command tree under root, the keys of
// every runnable command by path ("" holds the keys some command reads
// from the top level).
func knownKeys(root *cobra.Command) map[string]map[string]bool {
	known := map[string]map[string]bool{"": {}}
	for _, k := range extraKeys {
		known[""][k] = true
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Name() != "help" {
			path := CommandPath(c)
			m := map[string]bool{}
			add := func(fl *pflag.Flag) {
				if fl.Name == "help" || fl.Name == KeyConfig || fl.Deprecated != "" {
					return
				}
				k := ConfigKey(fl)
				m[k] = true
				if !Scoped(path, k) {
					known[""][k] = true
				}
			}
			VisitFlags(c, add)
			if path != "" {
				known[path] = m
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return known
}

// VisitFlags calls fn for every flag c takes, the flags of cobra's
// LocalFlags and InheritedFlags (a flag of c's own before a parent's of
// the same name, a nearer parent's before a farther one's). It reads the
// flag sets as they are, where those two build new sets on every call,
// a cost that every command of the tree added to each command line.
func VisitFlags(c *cobra.Command, fn func(*pflag.Flag)) {
	seen := map[string]bool{}
	visit := func(fl *pflag.Flag) {
		if !seen[fl.Name] {
			seen[fl.Name] = true
			fn(fl)
		}
	}
	c.Flags().VisitAll(visit)
	c.PersistentFlags().VisitAll(visit)
	for p := c.Parent(); p != nil; p = p.Parent() {
		p.PersistentFlags().VisitAll(visit)
	}
}

// checkKeys writes a line to w for each key of cfg that no command reads,
// with the closest known one.
func checkKeys(w io.Writer, root *cobra.Command, cfg *configFile) {
	if cfg == nil {
		return
	}
	known := knownKeys(root)
	warn := func(where, key string, candidates []string) {
		msg := fmt.Sprintf("iotctl: config file %s: %sunknown key %q, ignored", cfg.path, where, key)
		if s := closest(key, candidates); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		fmt.Fprintln(w, msg)
	}
	var sections []string
	for p := range known {
		if p != "" {
			sections = append(sections, p)
		}
	}
	top := sortedKeys(known[""])
	for _, key := range sortedKeys(cfg.top) {
		v := cfg.top[key]
		if sect, isMap := v.(map[string]any); isMap {
			keys, ok := known[key]
			if !ok || key == "" {
				msg := fmt.Sprintf("iotctl: config file %s: section %q is not a command, ignored", cfg.path, key)
				if s := closest(key, sections); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				fmt.Fprintln(w, msg)
				continue
			}
			for _, k := range sortedKeys(sect) {
				if !keys[k] {
					warn(fmt.Sprintf("section %q: ", key), k, sortedKeys(keys))
				}
			}
			continue
		}
		if !known[""][key] {
			warn("", key, top)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closest returns the candidate nearest to s in edit distance, when it
// is near enough to be what was meant, else "".
func closest(s string, candidates []string) string {
	best, bestD := "", len(s)/2+2
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
