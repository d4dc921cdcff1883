package examples

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"help example", "  $ iotctl version\n  $ iotctl version -o json", []string{"iotctl version", "iotctl version -o json"}},
		{"continuation joined", "  $ iotctl device send --cert c.pem \\\n      --key k.pem --data hi\n  $ iotctl version",
			[]string{"iotctl device send --cert c.pem --key k.pem --data hi", "iotctl version"}},
		{"output lines skipped", "$ iotctl hub connstr parse x\nFIELD  VALUE\nkind   device\n\n$ iotctl version",
			[]string{"iotctl hub connstr parse x", "iotctl version"}},
		{"block without prompts", "iotctl hub serve   # terminal 1\n# a comment\n\niotctl version", []string{"iotctl hub serve   # terminal 1", "iotctl version"}},
		{"empty", "", nil},
	} {
		if got := commandLines(tc.text); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: commandLines(%q) = %q; want %q", tc.name, tc.text, got, tc.want)
		}
	}
}

func TestExpectedExit(t *testing.T) {
	for line, want := range map[string]int{
		"iotctl version": 0,
		`iotctl method invoke -d d --name m --payload '"oops"'   # exits 8: the device answers 400`: 8,
		"iotctl hub device show nosuch # exits 5":                                                   5,
		`iotctl device send --data '# exits 3'`:                                                     0,
	} {
		if got := expectedExit(line); got != want {
			t.Errorf("expectedExit(%q) = %d; want %d", line, got, want)
		}
	}
}

func TestReadmeExamples(t *testing.T) {
	readme := strings.Join([]string{
		"# x", "",
		"<!-- not-runnable: needs Azure -->", "```sh", "iotctl device simulate", "```",
		"<!-- runnable -->", "```sh", "iotctl version", "iotctl hub sas \\", "  --ttl 1h", "```",
		"<!-- runnable: script -->", "```sh", "KEY=$(iotctl dps derive-key)", "# a comment", "echo \"$KEY\"", "```",
		"<!-- tour:start -->", "```sh", "iotctl hub serve", "```", "<!-- tour:end -->",
		"```go", "package main", "```",
	}, "\n")
	var s examples
	skipped, err := readmeExamples(readme, &s)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range s.list {
		got = append(got, fmt.Sprintf("%s @ %s %v", e.Script, e.Where[0], e.Block))
	}
	if want := []string{"iotctl version @ README.md:8 false", "iotctl hub sas --ttl 1h @ README.md:8 false",
		"KEY=$(iotctl dps derive-key)\n# a comment\necho \"$KEY\" @ README.md:14 (script) true"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runnable lines = %q; want %q", got, want)
	}
	if want := []readmeBlock{{Line: 4, First: "iotctl device simulate", Reason: "needs Azure"}}; !reflect.DeepEqual(skipped, want) {
		t.Errorf("not run = %+v; want %+v", skipped, want)
	}

	for name, readme := range map[string]string{
		"no marker":  "text\n\n```sh\niotctl version\n```\n",
		"no reason":  "<!-- not-runnable: -->\n```sh\niotctl version\n```\n",
		"other text": "<!-- some other comment -->\n```bash\niotctl version\n```\n",
	} {
		if _, err := readmeExamples(readme, &examples{}); err == nil {
			t.Errorf("%s: readmeExamples accepted a block without a valid marker", name)
		}
	}
}

func TestExamplesDeduplicated(t *testing.T) {
	var s examples
	s.add("iotctl version", "iotctl --help")
	s.add("iotctl version", "iotctl version --help")
	if len(s.list) != 1 || !reflect.DeepEqual(s.list[0].Where, []string{"iotctl --help", "iotctl version --help"}) {
		t.Errorf("examples = %+v; want one shown in two places", s.list)
	}
}

func TestCreatedBy(t *testing.T) {
	for script, want := range map[string][]string{
		"iotctl hub device create --device-id MyGoDevice":                                                     {"MyGoDevice"},
		"iotctl hub device create dev1 --module-id mod1 -o json | jq .x":                                      {"dev1/mod1"},
		"iotctl hub device create -d cam1 --auth x509-thumbprint --cert c.pem":                                {"cam1"},
		`iotctl device send --connection-string "$(iotctl hub device create cam4 --generate-cert . -o json)"`: {"cam4"},
		"iotctl hub device show MyGoDevice":                                                                   nil,
	} {
		var got []string
		for id := range createdBy(script) {
			got = append(got, id)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("createdBy(%q) = %q; want %q", script, got, want)
		}
	}
}

func TestRunsUntilStopped(t *testing.T) {
	for script, want := range map[string]bool{
		"iotctl hub serve": true,
		"HTTPS_PROXY=http://p:1 iotctl device simulate":          true,
		"iotctl device simulate --count 10":                      false,
		"iotctl hub monitor --timeout 30s":                       true,
		"iotctl hub monitor --count=3 -o json | jq .":            false,
		"iotctl hub feedback --wait-on-msg m":                    false,
		"iotctl device simulate --devices 4 --k8s-job --image i": false,
		"iotctl hub feedback":                                    true,
		"iotctl device send --count 5":                           false,
		"iotctl hub device list":                                 false,
	} {
		if got := runsUntilStopped(script); got != want {
			t.Errorf("runsUntilStopped(%q) = %v; want %v", script, got, want)
		}
	}
}

func TestStandIns(t *testing.T) {
	w := &world{host: "localhost:4242", idScope: "0ne0000ABCD"}
	in := "iotctl device send --host myhub.azure-devices.net --proxy http://proxy.corp:3128; iotctl x --host localhost:8443 --id-scope 0ne00111111"
	if got, want := standIns(in, w), "iotctl device send --host localhost:4242 --proxy http://proxy.corp:3128; iotctl x --host localhost:4242 --id-scope 0ne0000ABCD"; got != want {
		t.Errorf("standIns without a proxy = %q; want %q", got, want)
	}
}

func TestHasErrorLine(t *testing.T) {
	for stderr, want := range map[string]bool{
		"": false,
		"iotctl: no ID scope: pass --id-scope\nRun 'iotctl --help'\n":                true,
		"IoT Hub device simulator: 1 device(s)\ninterrupt received, shutting down\n": false,
		"curl: (60) SSL certificate problem\n":                                       false,
	} {
		if got := hasErrorLine(stderr); got != want {
			t.Errorf("hasErrorLine(%q) = %v; want %v", stderr, got, want)
		}
	}
}
