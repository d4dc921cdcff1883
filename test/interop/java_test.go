package interop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/hub"
	"github.com/iotctl/iotctl/pkg/hub/registry"
	"github.com/iotctl/iotctl/pkg/service"
)

// The Java interoperability tests drive the official Azure IoT Java
// SDKs (iot-device-client and provisioning-device-client, pinned in
// java/pom.xml) through java/src/main/java/interop/Main.java, one JVM
// per test that serves all its devices. They need a JDK 17 and Maven,
// and install both from the Debian packages (apt-get, as root) when
// they are missing; Maven keeps the SDKs in ~/.m2.

var (
	javaOnce sync.Once
	javaCP   string
	javaErr  error
)

// requireJava returns the class path of the built Java program,
// building it once per test process (and once per version of its
// sources: the build is kept in the user cache directory).
func requireJava(t *testing.T) string {
	t.Helper()
	skipIfAsked(t)
	javaOnce.Do(func() { javaCP, javaErr = buildJava() })
	if javaErr != nil {
		t.Fatal(javaErr)
	}
	return javaCP
}

// aptInstall installs Debian packages without asking anything.
func aptInstall(pkgs ...string) error {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("%s missing and no apt-get to install them: install a JDK 17 and Maven, or set IOTCTL_SKIP_INTEROP=1", strings.Join(pkgs, ", "))
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func buildJava() (string, error) {
	var missing []string
	if _, err := exec.LookPath("javac"); err != nil {
		missing = append(missing, "openjdk-17-jdk-headless")
	}
	if _, err := exec.LookPath("mvn"); err != nil {
		missing = append(missing, "maven")
	}
	if len(missing) > 0 {
		if err := aptInstall(missing...); err != nil {
			return "", err
		}
	}
	src := filepath.Join(dir(), "java")
	sum, err := hashTree(src)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory for the Java build (set XDG_CACHE_HOME or HOME): %w", err)
	}
	root := filepath.Join(cache, "iotctl-interop")
	out := filepath.Join(root, "java-"+sum)
	cp := filepath.Join(out, "iotctl-java-interop-1.jar") + string(os.PathListSeparator) + filepath.Join(out, "lib", "*")
	if _, err := os.Stat(filepath.Join(out, "iotctl-java-interop-1.jar")); err == nil {
		return cp, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("creating %s for the Java build: %w", root, err)
	}
	// Built under a temporary name and renamed into place once
	// complete, so another test process never runs half a build.
	tmp, err := os.MkdirTemp(root, "building-java-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command("mvn", "-B", "-q", "package", "-Dinterop.out="+tmp)
	cmd.Dir = src
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mvn package in %s failed: %v\n%s", src, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		if _, serr := os.Stat(filepath.Join(out, "iotctl-java-interop-1.jar")); serr != nil {
			return "", fmt.Errorf("moving the Java build into place: %w", err)
		}
	}
	return cp, nil
}

// hashTree is a short hash of the pom and sources under dir.
func hashTree(root string) (string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "target" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("reading the Java sources: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// javaProc is one JVM running interop.Main; its devices are named by
// handle ("dev").
type javaProc struct{ p *scriptProc }

func startJava(t *testing.T) *javaProc {
	t.Helper()
	cp := requireJava(t)
	ctx, cancel := context.WithCancel(context.Background())
	// IOTCTL_JAVA_LOG sets the SDKs' log level (slf4j-simple, on
	// stderr, shown when a test fails): warn unless set (debug, trace).
	level := os.Getenv("IOTCTL_JAVA_LOG")
	if level == "" {
		level = "warn"
	}
	cmd := exec.CommandContext(ctx, "java", "-Dorg.slf4j.simpleLogger.defaultLogLevel="+level, "-cp", cp, "interop.Main")
	j := &javaProc{p: startScript(t, cmd, cancel, "the Java SDK program")}
	j.wait(t, "", "ready")
	return j
}

// do sends op for device dev with the fields of args and returns the
// event want, failing the test on the device's error event.
func (j *javaProc) do(t *testing.T, dev, op string, args map[string]any, want string) map[string]any {
	t.Helper()
	cmd := map[string]any{"op": op, "dev": dev}
	for k, v := range args {
		cmd[k] = v
	}
	j.p.send(cmd)
	return j.wait(t, dev, want)
}

// wait returns the next event kind of device dev (of the program when
// dev is ""), failing on an error event of that device, when the
// program exits or after 90 s. Other events are passed over.
func (j *javaProc) wait(t *testing.T, dev, kind string) map[string]any {
	t.Helper()
	ev := j.waitAny(t, dev, kind, "error")
	if ev["event"] == "error" {
		t.Fatalf("the Java SDK program failed (%s) while the test waited for %q: %v%s", dev, kind, ev, j.p.stderrDetail())
	}
	return ev
}

// waitAny returns the next event of device dev that is one of kinds.
func (j *javaProc) waitAny(t *testing.T, dev string, kinds ...string) map[string]any {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case ev, ok := <-j.p.events:
			if !ok {
				t.Fatalf("the Java SDK program exited while the test waited for %v of %q%s", kinds, dev, j.p.stderrDetail())
			}
			d, _ := ev["dev"].(string)
			if d != dev {
				continue
			}
			for _, k := range kinds {
				if ev["event"] == k {
					return ev
				}
			}
		case <-timeout:
			t.Fatalf("the Java SDK program sent no %v of %q within 90 s%s", kinds, dev, j.p.stderrDetail())
		}
	}
}

// The official Java device client (iot-device-client) over each of its
// transports, trusting the hub's CA through ClientOptions.sslContext:
// telemetry with system and application properties; over the
// transports that have them, a direct method from iotctl's service
// client, a reported-properties patch, a desired-properties
// notification and the twin as the device reads it; and cloud-to-device
// messages completed, rejected (not over MQTT, which cannot) and
// abandoned (likewise), with the hub's delivery feedback.
func TestJavaDevice(t *testing.T) {
	j := startJava(t)
	for _, protocol := range []string{"HTTPS", "MQTT", "MQTT_WS", "AMQPS", "AMQPS_WS"} {
		t.Run(protocol, func(t *testing.T) { testJavaDevice(t, j, protocol) })
	}
}

func testJavaDevice(t *testing.T, j *javaProc, protocol string) {
	e := startHub(t, hub.Options{})
	id := "java-" + strings.ToLower(strings.ReplaceAll(protocol, "_", "-"))
	j.do(t, id, "open", map[string]any{"cs": e.createDevice(id), "protocol": protocol, "ca": e.hub.CAFile()}, "opened")
	t.Cleanup(func() { j.do(t, id, "close", nil, "closed") })
	svc, err := service.New(connstr.MustParse(e.cs), &service.Options{CAFile: e.hub.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Telemetry with its properties, as the hub logged it.
	j.do(t, id, "send", map[string]any{"body": `{"temperature": 31.5}`, "messageId": "java-msg-1",
		"contentType": "application/json", "contentEncoding": "utf-8",
		"properties": map[string]string{"alert": "true", "path": "a/b&c"}}, "sent")
	log := e.hub.Telemetry()
	evs, _ := log.Read(log.PartitionOf(id), 0, 10)
	if len(evs) != 1 {
		t.Fatalf("hub side: the telemetry log holds %d messages from %s; want 1", len(evs), id)
	}
	if m := evs[0].Message; evs[0].DeviceID != id || evs[0].AuthMethod != "sas" || string(m.Body) != `{"temperature": 31.5}` ||
		m.MessageID != "java-msg-1" || m.ContentType != "application/json" || m.ContentEncoding != "utf-8" ||
		m.Properties["alert"] != "true" || m.Properties["path"] != "a/b&c" {
		t.Errorf("hub side: the Java device's message is %+v from %s (%s)", m, evs[0].DeviceID, evs[0].AuthMethod)
	}

	if protocol != "HTTPS" { // the Java SDK has no methods or twin over HTTPS
		testJavaMethodsAndTwin(ctx, t, j, svc, id)
	}

	// Cloud-to-device messages, settled as their "settle" property says.
	settles := []string{"complete", "reject", "abandon"}
	if strings.HasPrefix(protocol, "MQTT") {
		settles = settles[:1]
	}
	want := map[string]string{}
	for _, s := range settles {
		mid := "c2d-" + s
		if _, err := e.hub.Registry().Enqueue(id, "", &registry.C2DMessage{MessageID: mid, CorrelationID: "corr-" + s, Body: []byte("hello " + s),
			Ack: registry.AckFull, Properties: map[string]string{"settle": s}}); err != nil {
			t.Fatal(err)
		}
		want[mid] = map[string]string{"complete": "complete", "reject": "reject", "abandon": "abandon complete"}[s]
	}
	got := map[string]string{}
	for n := 0; n < len(settles)+len(settles)/3; n++ { // an abandoned message comes twice
		ev := j.wait(t, id, "c2d")
		mid, _ := ev["messageId"].(string)
		props, _ := ev["properties"].(map[string]any)
		s := strings.TrimPrefix(mid, "c2d-")
		if ev["body"] != "hello "+s || ev["correlationId"] != "corr-"+s || props["settle"] != s {
			t.Errorf("the Java device received C2D %v; want the message the hub queued", ev)
		}
		got[mid] = strings.TrimSpace(got[mid] + " " + fmt.Sprint(ev["action"]))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the Java device settled %v; want %v", got, want)
	}
	fr, err := svc.FeedbackReceiver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close(context.Background())
	feedback := map[string]string{}
	for len(feedback) < len(settles) {
		recs, err := fr.Receive(ctx)
		if err != nil {
			t.Fatalf("service side: feedback after %v: %v", feedback, err)
		}
		for _, r := range recs {
			feedback[r.OriginalMessageID] = string(r.StatusCode)
		}
	}
	wantFB := map[string]string{"c2d-complete": "Success", "c2d-reject": "Rejected", "c2d-abandon": "Success"}
	if protocol == "HTTPS" {
		// iot-device-client 2.5.0 asks for a reject with the query
		// parameter "?reject" (IotHubRejectUri's map key, which
		// IotHubUri.appendQueryParam URL-encodes after api-version:
		// DELETE .../messages/devicebound/{etag}?api-version=...&%3Freject=true;
		// transport/https/IotHubRejectUri.java and IotHubUri.java), not
		// "reject" as the Node and .NET SDKs send it: the hub reads a
		// query without "reject", a complete, as an HTTP server that
		// parses the query does. No Azure document or issue says what
		// IoT Hub itself makes of "%3Freject".
		wantFB["c2d-reject"] = "Success"
	}
	for mid := range wantFB {
		if _, ok := want[mid]; !ok {
			delete(wantFB, mid)
		}
	}
	if fmt.Sprint(feedback) != fmt.Sprint(wantFB) {
		t.Errorf("hub side: feedback %v; want %v", feedback, wantFB)
	}
	if n, _ := e.hub.Registry().PendingC2D(id, ""); n != 0 {
		t.Errorf("hub side: %d messages still queued for %s", n, id)
	}
}

// testJavaMethodsAndTwin invokes a direct method on the Java device and
// goes through its twin.
func testJavaMethodsAndTwin(ctx context.Context, t *testing.T, j *javaProc, svc *service.Client, id string) {
	t.Helper()
	target := service.Target{DeviceID: id}
	j.do(t, id, "methods", nil, "subscribed")
	res, err := svc.InvokeMethod(ctx, target, service.MethodCall{Name: "setInterval", Payload: json.RawMessage(`{"seconds": 10}`)})
	if err != nil {
		t.Fatalf("invoking setInterval on the Java device: %v", err)
	}
	if ev := j.wait(t, id, "method"); ev["name"] != "setInterval" || jsonOf(ev["payload"]) != `{"seconds":10}` {
		t.Errorf("the Java handler got %v; want setInterval with its payload", ev)
	}
	if diff := jsonEqual(t, res.Payload, `{"method": "setInterval", "payload": {"seconds": 10}}`); res.Status != 200 || diff != "" {
		t.Errorf("setInterval answered %d %s; want 200 and the handler's payload (%s)", res.Status, res.Payload, diff)
	}
	res, err = svc.InvokeMethod(ctx, target, service.MethodCall{Name: "fail", Payload: json.RawMessage(`"oops"`)})
	if err != nil {
		t.Fatalf("invoking fail on the Java device: %v", err)
	}
	j.wait(t, id, "method")
	if diff := jsonEqual(t, res.Payload, `{"method": "fail", "payload": "oops"}`); res.Status != 400 || diff != "" {
		t.Errorf("fail answered %d %s; want 400 and the handler's payload (%s)", res.Status, res.Payload, diff)
	}

	// Reported properties from the device, read back by the service
	// (the SDK refuses to report before it subscribes to desired ones).
	j.do(t, id, "desired", nil, "subscribedDesired")
	rep := j.do(t, id, "report", map[string]any{"patch": map[string]any{"interval": 10, "firmware": map[string]any{"version": "1.2.3"}}}, "reported")
	tw, err := svc.GetTwin(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	var reported struct {
		Interval int               `json:"interval"`
		Firmware map[string]string `json:"firmware"`
		Version  int64             `json:"$version"`
	}
	if err := json.Unmarshal(tw.Properties.Reported, &reported); err != nil || reported.Interval != 10 || reported.Firmware["version"] != "1.2.3" {
		t.Errorf("service side: reported properties %s after the Java device's patch; want interval 10 and firmware.version 1.2.3", tw.Properties.Reported)
	}
	if rep["version"] != float64(reported.Version) {
		t.Errorf("the Java device's update answered version %v; the service reads version %d", rep["version"], reported.Version)
	}

	// Desired properties from the service, notified to the device.
	tw, err = svc.UpdateTwin(ctx, target, service.NewTwinPatch(nil, json.RawMessage(`{"targetTemperature": 21.5}`)), "")
	if err != nil {
		t.Fatal(err)
	}
	var desired struct {
		Version int64 `json:"$version"`
	}
	_ = json.Unmarshal(tw.Properties.Desired, &desired)
	// The SDK reports the twin it got when it subscribed as a first
	// notification over MQTT; the patch is the one with the new value.
	for {
		patch, _ := j.wait(t, id, "desired")["patch"].(map[string]any)
		if patch["targetTemperature"] == 21.5 {
			if patch["$version"] != float64(desired.Version) || desired.Version == 0 {
				t.Errorf("the Java device was notified of %v; want targetTemperature 21.5 at $version %d", patch, desired.Version)
			}
			break
		}
	}

	// The whole twin as the device gets it.
	twin := j.do(t, id, "twin", nil, "twin")
	des, _ := twin["desired"].(map[string]any)
	got, _ := twin["reported"].(map[string]any)
	if des["targetTemperature"] != 21.5 || des["$version"] != float64(desired.Version) || got["interval"] != float64(10) || got["$version"] != float64(reported.Version) {
		t.Errorf("getTwin() = %v; want desired targetTemperature 21.5 ($version %d) and reported interval 10 ($version %d)", twin, desired.Version, reported.Version)
	}
}
