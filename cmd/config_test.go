package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/internal/clitest"
	"github.com/iotctl/iotctl/pkg/hub"
)

// runnable returns every command of the tree a user can run, by path.
func runnable(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && !c.HasSubCommands() && c.Name() != "help" {
			out = append(out, c)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return out
}

// configurable returns the flags of c that configuration sets (all but
// --help and --config).
func configurable(c *cobra.Command) []*pflag.Flag {
	var out []*pflag.Flag
	c.Flags().VisitAll(func(fl *pflag.Flag) {
		if fl.Name != "help" && fl.Name != cmdutil.KeyConfig {
			out = append(out, fl)
		}
	})
	return out
}

// sample is a value for fl that is not its default: the string to put
// in the environment, the YAML to put in the file, and what the flag's
// Value.String() must then say.
func sample(t *testing.T, fl *pflag.Flag) (env, yaml, want string) {
	switch fl.Value.Type() {
	case "string":
		return "from-config", "from-config", "from-config"
	case "bool":
		if fl.DefValue == "true" {
			return "false", "false", "false"
		}
		return "true", "true", "true"
	case "int", "int64":
		return "7", "7", "7"
	case "float64":
		return "7.5", "7.5", "7.5"
	case "duration":
		return "7s", "7s", "7s"
	case "stringSlice", "stringArray":
		return "from-config", "[from-config, other]", ""
	}
	t.Fatalf("flag --%s has type %s: give it a sample value", fl.Name, fl.Value.Type())
	return
}

// load builds a fresh tree, finds the command at path and runs the
// configuration step on it, as Execute does before the command runs,
// with the process's environment.
func load(t *testing.T, path string, cfg string) (*cobra.Command, string, error) {
	t.Helper()
	return loadEnv(t, path, nil, cfg)
}

// loadEnv is load with env, when not nil, for the whole environment the
// configuration sees (Factory.Getenv) instead of the process's: a test
// that sets no process variable may run in parallel.
func loadEnv(t *testing.T, path string, env map[string]string, cfg string) (*cobra.Command, string, error) {
	t.Helper()
	return loadEnvIn(t, "", path, env, cfg)
}

// loadEnvIn is loadEnv with the config file written in dir, under a
// name of its own, instead of in a new temporary directory (two of
// them, made and removed, for each of the every-flag test's thousands
// of cases).
func loadEnvIn(t *testing.T, dir, path string, env map[string]string, cfg string) (*cobra.Command, string, error) {
	t.Helper()
	var errOut bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut})
	if env != nil {
		f.Getenv = func(k string) string { return env[k] }
	}
	root := NewRootCmd(f)
	c, _, err := root.Find(strings.Fields(path))
	if err != nil {
		t.Fatalf("no command %q: %v", path, err)
	}
	if err := c.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if cfg != "" {
		file, err := writeConfig(t, dir, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if env != nil {
			env[cmdutil.EnvName("", cmdutil.KeyConfig)] = file
		} else {
			t.Setenv("IOTCTL_CONFIG", file)
		}
	}
	err = f.Load(c)
	return c, errOut.String(), err
}

// writeConfig writes cfg to a new file in dir (t.TempDir() when dir is
// empty) and returns its path.
func writeConfig(t *testing.T, dir, cfg string) (string, error) {
	if dir == "" {
		dir = t.TempDir()
	}
	f, err := os.CreateTemp(dir, "config-*.yaml")
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(cfg); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

// Every flag of every command can be set from its environment variable
// and from the config file, at the top level and in the command's
// section, and a key scoped in a command is read only from its own
// variable and section there. Each case has its own environment (see
// loadEnv), so that they run in parallel.
func TestEveryFlagFromEnvironmentAndFile(t *testing.T) {
	t.Parallel()
	root := NewRootCmd(cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}))
	dir := t.TempDir() // the config files of all cases
	n := 0
	for _, c := range runnable(root) {
		path := cmdutil.CommandPath(c)
		if err := c.ParseFlags(nil); err != nil {
			t.Fatal(err)
		}
		for _, fl := range configurable(c) {
			n++
			key := cmdutil.ConfigKey(fl)
			scoped := cmdutil.Scoped(path, key)
			env, yml, want := sample(t, fl)
			check := func(how string, setup func(env map[string]string) string, wantSet bool) {
				t.Run(path+"/"+fl.Name+"/"+how, func(t *testing.T) {
					t.Parallel()
					env := map[string]string{}
					cfg := setup(env)
					got, stderr, err := loadEnvIn(t, dir, path, env, cfg)
					if err != nil {
						t.Fatalf("Load: %v", err)
					}
					if stderr != "" {
						t.Errorf("stderr %q; want nothing", stderr)
					}
					g := got.Flags().Lookup(fl.Name)
					if !wantSet {
						if g.Changed {
							t.Errorf("--%s = %q; want it not set by %s (the key is scoped in %q)", fl.Name, g.Value.String(), how, path)
						}
						return
					}
					w := want
					if w == "" { // a list
						w = g.Value.(pflag.SliceValue).GetSlice()[0]
						if w != "from-config" {
							t.Errorf("--%s = %q; want from-config first", fl.Name, g.Value.String())
						}
					} else if g.Value.String() != w {
						t.Errorf("--%s = %q; want %q", fl.Name, g.Value.String(), w)
					}
					if !g.Changed {
						t.Errorf("--%s not marked as set", fl.Name)
					}
				})
			}
			check("flat env "+cmdutil.EnvName("", key), func(e map[string]string) string {
				e[cmdutil.EnvName("", key)] = env
				return ""
			}, !scoped)
			check("command env "+cmdutil.EnvName(path, key), func(e map[string]string) string {
				e[cmdutil.EnvName(path, key)] = env
				return ""
			}, true)
			check("top-level key", func(map[string]string) string { return key + ": " + yml + "\n" }, !scoped)
			check("section key", func(map[string]string) string { return path + ":\n  " + key + ": " + yml + "\n" }, true)
		}
	}
	if n < 100 {
		t.Fatalf("walked %d flags; the tree has more", n)
	}
}

// Each variable name belongs to one key of one command (or to a key
// shared by commands), so that no command's variable sets another's
// flag by accident; and a key not scoped anywhere takes values of one
// kind in every command that has it.
func TestConfigNamesDoNotCollide(t *testing.T) {
	root := NewRootCmd(cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}))
	owner := map[string]string{}
	kinds := map[string]map[string][]string{}
	claim := func(name, who string) {
		if prev, ok := owner[name]; ok && prev != who {
			t.Errorf("%s is both %s and %s", name, prev, who)
		}
		owner[name] = who
	}
	kind := func(typ string) string {
		switch typ {
		case "string", "stringSlice", "stringArray":
			return "text"
		}
		return typ
	}
	for _, c := range runnable(root) {
		path := cmdutil.CommandPath(c)
		_ = c.ParseFlags(nil)
		for _, fl := range configurable(c) {
			key := cmdutil.ConfigKey(fl)
			claim(cmdutil.EnvName(path, key), path+" --"+fl.Name)
			if !cmdutil.Scoped(path, key) {
				claim(cmdutil.EnvName("", key), "key "+key)
				if kinds[key] == nil {
					kinds[key] = map[string][]string{}
				}
				kinds[key][kind(fl.Value.Type())] = append(kinds[key][kind(fl.Value.Type())], path)
			}
		}
	}
	for key, m := range kinds {
		if len(m) > 1 {
			t.Errorf("key %q takes %v: scope it in all but one kind of command (cmdutil's scopedKeys)", key, m)
		}
	}
	if got := cmdutil.EnvName("", "device-connection-string"); owner[got] != "key device-connection-string" {
		t.Errorf("%s belongs to %q; want the device commands' --connection-string", got, owner[got])
	}
}

// The device commands' --connection-string is a device's: it is set by
// IOTCTL_DEVICE_CONNECTION_STRING, never by the service string of
// IOTCTL_CONNECTION_STRING.
func TestDeviceConnectionStringKey(t *testing.T) {
	clitest.Isolate(t)
	t.Setenv("IOTCTL_CONNECTION_STRING", serviceCS)
	t.Setenv("IOTCTL_DEVICE_CONNECTION_STRING", deviceCS)
	for _, path := range []string{"device send", "device simulate"} {
		c, _, err := load(t, path, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Flags().Lookup("connection-string").Value.String(); got != deviceCS {
			t.Errorf("%s --connection-string = %q; want the device string", path, got)
		}
	}
	c, _, err := load(t, "hub device list", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Flags().Lookup("connection-string").Value.String(); got != serviceCS {
		t.Errorf("hub device list --connection-string = %q; want the service string", got)
	}
}

// Precedence is flag > IOTCTL_<COMMAND>_<KEY> > IOTCTL_<KEY> > the
// command's section > the top level > default.
func TestConfigPrecedenceOfEveryLayer(t *testing.T) {
	clitest.Isolate(t)
	cfg := "interval: 5s\ncount: 9\ndevice simulate:\n  interval: 4s\n"
	interval := func(args ...string) string {
		t.Helper()
		var errOut bytes.Buffer
		f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &errOut})
		root := NewRootCmd(f)
		c, rest, err := root.Find([]string{"device", "simulate"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ParseFlags(append(rest, args...)); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("IOTCTL_CONFIG", file)
		if err := f.Load(c); err != nil {
			t.Fatal(err)
		}
		return c.Flags().Lookup("interval").Value.String() + " " + c.Flags().Lookup("count").Value.String()
	}
	if got := interval(); got != "4s 9" {
		t.Errorf("section over top level: %q; want 4s 9", got)
	}
	t.Setenv("IOTCTL_INTERVAL", "3s")
	if got := interval(); got != "3s 9" {
		t.Errorf("IOTCTL_INTERVAL over the file: %q; want 3s 9", got)
	}
	t.Setenv("IOTCTL_DEVICE_SIMULATE_INTERVAL", "2s")
	if got := interval(); got != "2s 9" {
		t.Errorf("IOTCTL_DEVICE_SIMULATE_INTERVAL over IOTCTL_INTERVAL: %q; want 2s 9", got)
	}
	if got := interval("--interval", "1s"); got != "1s 9" {
		t.Errorf("flag over everything: %q; want 1s 9", got)
	}
}

// Keys of the file that no command reads are reported on stderr with
// the closest known key, and the command still runs.
func TestUnknownConfigKeysAreReported(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	content := "conection-string: x\noutput: json\ndevice simulat:\n  count: 2\nhub sas:\n  tll: 2h\nbogus-thing: 1\n"
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "--config", cfg, "version")
	if r.code != 0 || !strings.Contains(r.stdout, `"version"`) {
		t.Fatalf("code %d stdout %q stderr %q; want the version as JSON (output: json read)", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		`unknown key "conection-string", ignored; did you mean "connection-string"?`,
		`section "device simulat" is not a command, ignored; did you mean "device simulate"?`,
		`section "hub sas": unknown key "tll", ignored; did you mean "ttl"?`,
		`unknown key "bogus-thing", ignored`,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, `"output"`) {
		t.Errorf("stderr reports a known key:\n%s", r.stderr)
	}
}

// A value a flag cannot take is a usage error that names where it came
// from.
func TestBadConfiguredValue(t *testing.T) {
	t.Setenv("IOTCTL_INTERVAL", "3x")
	r := run(t, "", "device", "simulate", "--connection-string", deviceCS)
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "IOTCTL_INTERVAL") || !strings.Contains(r.stderr, "--interval") {
		t.Errorf("code %d stderr %q; want 3 naming IOTCTL_INTERVAL and --interval", r.code, r.stderr)
	}
	t.Setenv("IOTCTL_INTERVAL", "")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("device simulate:\n  count: [1, 2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "--config", cfg, "device", "simulate", "--connection-string", deviceCS)
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, `section "device simulate"`) || !strings.Contains(r.stderr, "--count") {
		t.Errorf("code %d stderr %q; want 3 naming the section and --count", r.code, r.stderr)
	}
}

// The cases: IOTCTL_INTERVAL and IOTCTL_COUNT reach device
// simulate, and IOTCTL_FROM reaches hub monitor.
func TestEnvironmentReachesCommandFlags(t *testing.T) {
	clitest.Isolate(t)
	t.Setenv("IOTCTL_INTERVAL", "3s")
	t.Setenv("IOTCTL_COUNT", "2")
	t.Setenv("IOTCTL_FROM", "start")
	c, _, err := load(t, "device simulate", "")
	if err != nil {
		t.Fatal(err)
	}
	if i, n := c.Flags().Lookup("interval").Value.String(), c.Flags().Lookup("count").Value.String(); i != "3s" || n != "2" {
		t.Errorf("device simulate: interval %s count %s; want 3s and 2", i, n)
	}
	c, _, err = load(t, "hub monitor", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Flags().Lookup("from").Value.String(); got != "start" {
		t.Errorf("hub monitor --from = %q; want start", got)
	}
}

// A config file with interval and count makes device simulate send that
// many messages and exit 0, against the local hub.
func TestConfigFileDrivesSimulate(t *testing.T) {
	h := hub.New(&hub.Options{Addr: "127.0.0.1:0", InMemory: true})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.CreateDevice("cfgdev"); err != nil {
		t.Fatal(err)
	}
	dcs, err := h.DeviceConnectionString("cfgdev", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	content := fmt.Sprintf("interval: 200ms\ncount: 2\nca-file: %s\ndevice-connection-string: %q\ndevice simulate:\n  output: json\n", h.CAFile(), dcs)
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "--config", cfg, "device", "simulate")
	if r.code != 0 {
		t.Fatalf("device simulate exited %d; stderr:\n%s", r.code, r.stderr)
	}
	sent := strings.Count(r.stdout, `"type":"sent"`)
	if sent != 2 {
		t.Errorf("%d sent events; want 2:\n%s", sent, r.stdout)
	}
	l := h.Telemetry()
	evs, _ := l.Read(l.PartitionOf("cfgdev"), 0, 100)
	if len(evs) != 2 {
		t.Errorf("hub side: %d events; want 2", len(evs))
	}
}

// A mistyped command at any level exits 3 and says "unknown command"
// with what was meant; a group without a command prints its help.
func TestUnknownSubcommandAtEveryLevel(t *testing.T) {
	root := NewRootCmd(cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}))
	var groups [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.HasSubCommands() {
			groups = append(groups, path)
		}
		for _, s := range c.Commands() {
			walk(s, append(slices.Clone(path), s.Name()))
		}
	}
	walk(root, nil)
	if len(groups) < 4 {
		t.Fatalf("found groups %v", groups)
	}
	for _, g := range groups {
		r := run(t, "", append(slices.Clone(g), "foo")...)
		if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, `unknown command "foo"`) || r.stdout != "" {
			t.Errorf("iotctl %s foo: code %d stdout %q stderr %q; want 3 and unknown command", strings.Join(g, " "), r.code, r.stdout, r.stderr)
		}
	}
	for args, want := range map[string]string{
		"device simulat":  `did you mean "simulate"?`,
		"hub device lst":  `did you mean "list"?`,
		"hub foo":         "unknown command",
		"hub device-ca x": "its commands are create",
		// The root says it in the same words as the groups below it.
		"foo":  `unknown command "foo" for "iotctl"; its commands are completion, demo, device, dps, hub, method, version`,
		"hubb": `unknown command "hubb" for "iotctl"; did you mean "hub"?`,
	} {
		r := run(t, "", strings.Fields(args)...)
		if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, want) {
			t.Errorf("iotctl %s: code %d stderr %q; want 3 and %q", args, r.code, r.stderr, want)
		}
	}
	for _, args := range [][]string{{"hub"}, {}} {
		r := run(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") {
			t.Errorf("iotctl %s: code %d stdout %q; want its help", strings.Join(args, " "), r.code, r.stdout)
		}
	}
}

// Interrupting a command exits 130 and says "interrupted", never
// "context canceled".
func TestInterruptedExits130(t *testing.T) {
	clitest.Isolate(t)
	for _, args := range [][]string{
		{"hub", "serve", "--in-memory", "--addr", "127.0.0.1:0"},
		{"method", "invoke", "--connection-string", serviceCS, "-d", "dev1", "--name", "m"},
		{"hub", "device", "list", "--connection-string", serviceCS},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut bytes.Buffer
		done := make(chan int, 1)
		go func() {
			done <- Execute(ctx, args, &cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
		}()
		cancel()
		select {
		case code := <-done:
			if code != cmdutil.ExitInterrupted || !strings.Contains(errOut.String(), "iotctl: interrupted") || strings.Contains(errOut.String(), "context canceled") {
				t.Errorf("iotctl %v interrupted: code %d stderr %q; want 130 and interrupted", args, code, errOut.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("iotctl %v still running 30s after the interrupt", args)
		}
	}
}

// Every key config.yaml.example shows, uncommented, is one a command
// reads: the file documents the code.
func TestConfigExampleKeysAreKnown(t *testing.T) {
	data, err := os.ReadFile("../config.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`^(?:# ?)?((?:  )?[a-z][a-z-]*(?: [a-z-]+)*:.*)$`)
	var b strings.Builder
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if m := key.FindStringSubmatch(line); m != nil && !strings.HasPrefix(m[1], "env:") {
			b.WriteString(m[1] + "\n")
			n++
		}
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "--config", cfg, "version")
	if r.code != 0 || r.stderr != "" || n < 30 {
		t.Errorf("the example's %d keys: code %d stderr %q; want 0 and no unknown key", n, r.code, r.stderr)
	}
}

// --host/--device-id given on the command line win over a device
// connection string from the environment (as the README has users
// export one); given both on the command line they clash.
func TestCommandLineHostWinsOverEnvironmentConnectionString(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	t.Setenv("IOTCTL_DEVICE_CONNECTION_STRING", deviceCS)
	r := run(t, "", "device", "send", "--host", "h.example", "--device-id", "cam1", "--cert", missing, "--data", "x")
	if r.code != cmdutil.ExitUsage || strings.Contains(r.stderr, "not both") || !strings.Contains(r.stderr, missing) {
		t.Errorf("with the connection string in the environment: exit %d stderr %q; want 3 about the certificate file, not a clash", r.code, r.stderr)
	}
	r = run(t, "", "device", "send", "--connection-string", deviceCS, "--host", "h.example", "--device-id", "cam1", "--cert", missing, "--data", "x")
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "not both") || !strings.Contains(r.stderr, "the command line") {
		t.Errorf("both on the command line: exit %d stderr %q; want 3 and a clash", r.code, r.stderr)
	}
}
