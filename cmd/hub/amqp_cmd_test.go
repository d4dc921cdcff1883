package hub_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd"
	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/connstr"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/message"
	"github.com/iotctl/iotctl/pkg/service"
)

// The AMQP commands (hub c2d send, hub feedback, hub monitor) run in
// process against the in-process hub, with pkg/device clients as the
// devices.

// amqpDevice registers id on e's hub and connects it with pkg/device.
// With c2d, the device takes cloud-to-device messages (completing each
// once it is in the channel); without, it leaves them queued.
func amqpDevice(t *testing.T, e *regEnv, id string, c2d chan<- *message.Message) *device.Client {
	t.Helper()
	if err := e.hub.CreateDevice(id); err != nil {
		t.Fatalf("creating %s: %v", id, err)
	}
	cs, err := e.hub.DeviceConnectionString(id, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(&device.Options{ConnectionString: cs, CAFile: e.hub.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	if c2d != nil {
		d.SetC2DHandler(func(m *message.Message) { c2d <- m })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("connecting %s: %v", id, err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return d
}

// amqpService is a service client of e's hub, for setting the scene
// (filling a queue, sending with ack) faster than the command would.
func amqpService(t *testing.T, e *regEnv) *service.Client {
	t.Helper()
	c, err := service.New(connstr.MustParse(e.cs), &service.Options{CAFile: e.hub.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sendTelemetry(t *testing.T, d *device.Client, ms ...*message.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range ms {
		if err := d.SendEvent(ctx, m); err != nil {
			t.Fatalf("%s sending telemetry: %v", d.DeviceID(), err)
		}
	}
}

// receiveC2D waits for the next message in ch.
func receiveC2D(t *testing.T, ch <-chan *message.Message, what string) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(20 * time.Second):
		t.Fatalf("the device got no C2D message (%s) within 20s", what)
		return nil
	}
}

// lines splits NDJSON output into objects, failing on a line that is
// not one JSON object.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %q is not a JSON object: %v\nall output:\n%s", l, err, out)
		}
		res = append(res, m)
	}
	return res
}

// lineWriter passes each complete line written to it to a channel and
// keeps all of it.
type lineWriter struct {
	mu    sync.Mutex
	all   bytes.Buffer
	part  []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		select {
		case w.lines <- string(w.part[:i]):
		default: // nobody reads that far
		}
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// background is an iotctl command running in process.
type background struct {
	out    *lineWriter
	errOut *lineWriter
	cancel context.CancelFunc
	// done is closed when the command has returned code.
	done chan struct{}
	code int
}

// start runs iotctl in the background with e's environment (set here,
// on the test's goroutine) and env over it.
func (e *regEnv) start(t *testing.T, env map[string]string, args ...string) *background {
	t.Helper()
	e.setenv(t, env)
	return startIotctl(t, e.argv(env, args)...)
}

func startIotctl(t *testing.T, args ...string) *background {
	t.Helper()
	return startIotctlTTY(t, false, args...)
}

// startIotctlTTY is startIotctl with stderr taken for a terminal or not.
func startIotctlTTY(t *testing.T, errTTY bool, args ...string) *background {
	t.Helper()
	return startIotctlFactory(t, errTTY, nil, args...)
}

// startIotctlFactory is startIotctlTTY with setup, when not nil, given
// the command's Factory first (its environment, its credential).
func startIotctlFactory(t *testing.T, errTTY bool, setup func(*cmdutil.Factory), args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{out: &lineWriter{lines: make(chan string, 1000)}, errOut: &lineWriter{lines: make(chan string, 1000)},
		cancel: cancel, done: make(chan struct{})}
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: b.out, ErrOut: b.errOut, ErrTTY: errTTY})
	if setup != nil {
		setup(f)
	}
	go func() {
		defer close(b.done)
		b.code = cmd.ExecuteFactory(ctx, f, args)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			t.Errorf("iotctl %s did not end within 20s of its cancellation", strings.Join(args, " "))
		}
	})
	return b
}

// wait returns the exit code, failing after d.
func (b *background) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
		return b.code
	case <-time.After(d):
		t.Fatalf("the command did not end within %s; stdout %q stderr %q", d, b.out.String(), b.errOut.String())
		return -1
	}
}

func TestC2DSendReachesDevice(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	got := make(chan *message.Message, 10)
	amqpDevice(t, e, "dev1", got)

	before := time.Now()
	out := e.ok(t, "hub", "c2d", "send", "-d", "dev1", "--data", `{"led":"on"}`, "--property", "color=red", "--property", "sp ace=a/b&c",
		"--ack", "positive", "--message-id", "msg-42", "--correlation-id", "corr-7", "--content-type", "application/json",
		"--content-encoding", "utf-8", "--expiry", "10m", "-o", "json")
	res := decodeJSON[map[string]any](t, out)
	if res["messageId"] != "msg-42" || res["deviceId"] != "dev1" || res["ack"] != "positive" || res["feedback"] != nil {
		t.Errorf("hub c2d send printed %s; want message id msg-42, device dev1, ack positive and no feedback", out)
	}
	m := receiveC2D(t, got, "msg-42")
	if string(m.Body) != `{"led":"on"}` || m.MessageID != "msg-42" || m.CorrelationID != "corr-7" || m.ContentType != "application/json" ||
		m.ContentEncoding != "utf-8" || m.Ack != "positive" || m.Properties["color"] != "red" || m.Properties["sp ace"] != "a/b&c" {
		t.Errorf("the device got %+v; want the body, ids, content type and encoding, ack and properties iotctl sent", m)
	}
	if m.ExpiryTime.Before(before.Add(9*time.Minute)) || m.ExpiryTime.After(time.Now().Add(11*time.Minute)) {
		t.Errorf("the device got expiry %v; want about 10 minutes from %v", m.ExpiryTime, before)
	}

	t.Run("defaults: a new UUID, no ack, body from a file, table output", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cmd.bin")
		if err := os.WriteFile(file, []byte{0, 1, 2, 0xff}, 0o600); err != nil {
			t.Fatal(err)
		}
		out := e.ok(t, "hub", "c2d", "send", "--device-id", "dev1", "--data-file", file)
		var id string
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "message id\t"); ok {
				id = v
			}
		}
		m := receiveC2D(t, got, "defaults")
		if len(id) != 36 || m.MessageID != id || !bytes.Equal(m.Body, []byte{0, 1, 2, 0xff}) || m.Ack != "" ||
			(!m.ExpiryTime.IsZero() && m.ExpiryTime.Before(time.Now().Add(50*time.Minute))) {
			t.Errorf("printed %q, the device got %+v; want a UUID message id, the file's bytes, no ack, the hub's default expiry", out, m)
		}
	})
}

func TestC2DSendWait(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	got := make(chan *message.Message, 10)
	amqpDevice(t, e, "dev1", got)
	if err := e.hub.CreateDevice("sleepy"); err != nil { // never connects
		t.Fatal(err)
	}

	t.Run("success: the device completes it, exit 0", func(t *testing.T) {
		r := e.run(t, nil, "hub", "c2d", "send", "-d", "dev1", "--data", "reboot", "--wait", "--timeout", "30s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q; want 0", r.code, r.stderr)
		}
		res := decodeJSON[c2dJSON](t, r.stdout)
		m := receiveC2D(t, got, "--wait")
		if res.Ack != "full" || res.Feedback == nil || res.Feedback.StatusCode != "Success" || res.Feedback.OriginalMessageID != res.MessageID ||
			res.Feedback.DeviceID != "dev1" || m.MessageID != res.MessageID || m.Ack != "full" {
			t.Errorf("printed %s, device got %+v; want ack full (implied by --wait) and the Success record of the message", r.stdout, m)
		}
	})

	t.Run("table output shows the feedback", func(t *testing.T) {
		out := e.ok(t, "hub", "c2d", "send", "-d", "dev1", "--data", "x", "--ack", "positive", "--wait", "--timeout", "30s")
		receiveC2D(t, got, "table")
		if !strings.Contains(out, "feedback\tSuccess") {
			t.Errorf("stdout %q; want a feedback Success row", out)
		}
	})

	t.Run("expired: a device that never connects, exit 8", func(t *testing.T) {
		start := time.Now()
		r := e.run(t, nil, "hub", "c2d", "send", "-d", "sleepy", "--data", "x", "--expiry", "1s", "--wait", "--timeout", "30s", "-o", "json")
		if r.code != cmdutil.ExitDeviceError || !strings.Contains(strings.ToLower(r.stderr), "expired") {
			t.Fatalf("exit %d stdout %q stderr %q after %s; want 8 and the expiry (the hub sweeps expired messages every few seconds)",
				r.code, r.stdout, r.stderr, time.Since(start).Round(time.Millisecond))
		}
		res := decodeJSON[c2dJSON](t, r.stdout)
		if res.Feedback == nil || res.Feedback.StatusCode != "Expired" || res.Feedback.DeviceID != "sleepy" {
			t.Errorf("printed %s; want the Expired record", r.stdout)
		}
		if n, _ := e.hub.Registry().PendingC2D("sleepy", ""); n != 0 {
			t.Errorf("%d messages still queued for sleepy; want the expired one gone", n)
		}
	})

	t.Run("no feedback within --timeout, exit 7", func(t *testing.T) {
		start := time.Now()
		r := e.run(t, nil, "hub", "c2d", "send", "-d", "sleepy", "--data", "x", "--wait", "--timeout", "1500ms")
		if r.code != cmdutil.ExitTimeout || !strings.Contains(r.stderr, "no feedback for message") || !strings.Contains(r.stderr, "1.5s") {
			t.Errorf("exit %d stderr %q; want 7 and no feedback within 1.5s", r.code, r.stderr)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s; want about 1.5s", d)
		}
	})
}

// bodyFile writes n bytes to a file for --data-file.
func bodyFile(t *testing.T, n int) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(f, bytes.Repeat([]byte("x"), n), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

type c2dJSON struct {
	MessageID string            `json:"messageId"`
	DeviceID  string            `json:"deviceId"`
	Ack       string            `json:"ack"`
	Feedback  *service.Feedback `json:"feedback"`
}

func TestC2DSendRefusals(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	e := startRegEnv(t)
	if err := e.hub.CreateDevice("dev1"); err != nil {
		t.Fatal(err)
	}

	t.Run("unknown device exits 5", func(t *testing.T) {
		e.fails(t, cmdutil.ExitNotFound, "DeviceNotFound", "hub", "c2d", "send", "-d", "nobody", "--data", "x")
	})

	t.Run("over 64 KB exits 3 before any network", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var accepted atomic.Int32
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		defer ln.Close()
		cs := "HostName=" + ln.Addr().String() + ";SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
		for _, tc := range []struct {
			name  string
			body  int
			props []string
		}{
			{"a body over 64 KB", message.MaxC2DSize + 1, nil},
			{"64 KB of body, and the message id and to on top", message.MaxC2DSize, nil},
			{"application properties count too", 60000, []string{"--property", "p=" + strings.Repeat("y", 6000)}},
		} {
			args := append([]string{"hub", "c2d", "send", "-d", "dev1", "--data-file", bodyFile(t, tc.body)}, tc.props...)
			r := runEnv(t, e.env(map[string]string{"IOTCTL_CONNECTION_STRING": cs}), args...)
			if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "up to 65536 bytes") {
				t.Errorf("%s: exit %d stderr %q; want 3 and the limit", tc.name, r.code, r.stderr)
			}
		}
		if n := accepted.Load(); n != 0 {
			t.Errorf("iotctl connected %d times; want the size checked before any network", n)
		}
	})

	t.Run("the local size check draws the line where the hub does", func(t *testing.T) {
		// Body + message id (a 36-byte UUID) + "/devices/dev1/messages/devicebound"
		// (34) + iothub-ack "positive" (8). (With no ack, the hub counts
		// the "none" it stores: 4 bytes iotctl does not send.)
		fits := message.MaxC2DSize - 36 - 34 - 8
		e.ok(t, "hub", "c2d", "send", "-d", "dev1", "--ack", "positive", "--data-file", bodyFile(t, fits))
		e.fails(t, cmdutil.ExitUsage, "65537 bytes", "hub", "c2d", "send", "-d", "dev1", "--ack", "positive", "--data-file", bodyFile(t, fits+1))
		svc := amqpService(t, e)
		err := svc.SendC2D(context.Background(), "dev1", "", &message.Message{MessageID: "e3a1f9a0-7b49-4f3e-9d0c-3c7c2b1d5e6f",
			Ack: message.AckPositive, Body: bytes.Repeat([]byte("x"), fits+1)})
		if !errors.Is(err, service.ErrTooLarge) {
			t.Errorf("the hub took %d bytes of body: %v; want ErrTooLarge, as iotctl's own check says", fits+1, err)
		}
		if _, err := e.hub.Registry().PurgeC2D("dev1", ""); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("queue full (51st message) exits 1 and says so", func(t *testing.T) {
		svc := amqpService(t, e)
		for i := range 50 {
			if err := svc.SendC2D(context.Background(), "dev1", "", &message.Message{Body: []byte("x")}); err != nil {
				t.Fatalf("message %d: %v", i+1, err)
			}
		}
		e.fails(t, cmdutil.ExitFailure, "the cloud-to-device queue of dev1 is full", "hub", "c2d", "send", "-d", "dev1", "--data", "x")
		r := e.run(t, nil, "hub", "c2d", "send", "-d", "dev1", "--data", "x")
		if !strings.Contains(r.stderr, "DeviceMaximumQueueDepthExceeded") || !strings.Contains(r.stderr, "50") {
			t.Errorf("stderr %q; want IoT Hub's error name and the limit", r.stderr)
		}
	})
}

// A device connection string where a service one is needed exits 3 and
// names the kind needed; so does a service string given as the Event
// Hub-compatible one.
func TestAMQPCommandsWrongConnectionString(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	e := startRegEnv(t)
	devCS := "HostName=" + e.hub.HostName() + ";DeviceId=dev1;SharedAccessKey=c2VjcmV0"
	for _, args := range [][]string{
		{"hub", "c2d", "send", "-d", "dev1", "--data", "x"},
		{"hub", "feedback", "--timeout", "1s"},
		{"hub", "monitor", "--timeout", "1s"},
	} {
		r := runEnv(t, e.env(map[string]string{"IOTCTL_CONNECTION_STRING": devCS}), args...)
		if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "this is a device connection string; a service connection string is needed") {
			t.Errorf("iotctl %s with a device string: exit %d stderr %q; want 3 naming the service kind", strings.Join(args, " "), r.code, r.stderr)
		}
		r = e.run(t, nil, append(args, "--connection-string", devCS)...)
		if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "a service connection string is needed") {
			t.Errorf("iotctl %s --connection-string DEVICE: exit %d stderr %q; want 3 naming the service kind", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	e.fails(t, cmdutil.ExitUsage, "a eventhub connection string is needed", "hub", "monitor", "--event-hub-connection-string", e.cs, "--timeout", "1s")
	e.fails(t, cmdutil.ExitUsage, "Endpoint", "hub", "monitor", "--event-hub-connection-string", "Endpoint=nonsense", "--timeout", "1s")
}

// What each AMQP refusal means for the exit code, and the conditions
// that must not be mistaken for a full queue.
func TestAMQPErrorExitCodes(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	for _, tc := range []struct {
		err  *service.AMQPError
		code int
		is   error
		not  []error
	}{
		{&service.AMQPError{Condition: "amqp:not-found", Description: "DeviceNotFound (404001): no device"}, cmdutil.ExitNotFound, service.ErrNotFound, nil},
		{&service.AMQPError{Condition: "amqp:unauthorized-access"}, cmdutil.ExitAuth, service.ErrUnauthorized, nil},
		{&service.AMQPError{Condition: "amqp:resource-limit-exceeded", Description: "DeviceMaximumQueueDepthExceeded (403004): 50 waiting"}, cmdutil.ExitFailure, service.ErrQueueFull, nil},
		{&service.AMQPError{Condition: "amqp:link:message-size-exceeded"}, cmdutil.ExitFailure, service.ErrTooLarge, []error{service.ErrQueueFull}},
		{&service.AMQPError{Condition: "com.microsoft:device-container-throttled", Description: "ThrottlingException (429001)"}, cmdutil.ExitFailure, service.ErrThrottled, []error{service.ErrQueueFull}},
		// The hub's internal error mentions queueing: not a full queue.
		{&service.AMQPError{Condition: "amqp:internal-error", Description: "internal error queueing the message"}, cmdutil.ExitFailure, nil, []error{service.ErrQueueFull, service.ErrTooLarge}},
		{&service.AMQPError{Condition: "amqp:internal-error", Description: "the request was too large for the buffer"}, cmdutil.ExitFailure, nil, []error{service.ErrTooLarge}},
	} {
		if got := cmdutil.ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d; want %d", tc.err, got, tc.code)
		}
		if tc.is != nil && !errors.Is(tc.err, tc.is) {
			t.Errorf("errors.Is(%v, %v) = false; want true", tc.err, tc.is)
		}
		for _, n := range tc.not {
			if errors.Is(tc.err, n) {
				t.Errorf("errors.Is(%v, %v) = true; want false", tc.err, n)
			}
		}
	}
}

// slowLink forwards connections to addr, each only after delay: a
// network slow to connect. It returns its own address.
func slowLink(t *testing.T, addr string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(done); ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				held := time.NewTimer(delay)
				defer held.Stop()
				select {
				case <-held.C:
				case <-done:
					return
				}
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() {
					<-done
					c.Close()
					up.Close()
				}()
				go func() { io.Copy(up, c); up.Close() }()
				io.Copy(c, up)
			})
		}
	})
	return ln.Addr().String()
}

// The --timeout of hub feedback and hub monitor is the wait for
// records or events: a connection that takes longer than --timeout to
// set up is not an error, and a quiet hub still ends with 0 after the
// wait.
func TestWaitTimeoutCountsOnceConnected(t *testing.T) {
	t.Parallel()
	e := startRegEnv(t)
	cs, err := connstr.Parse(e.cs)
	if err != nil {
		t.Fatal(err)
	}
	cs.HostName = slowLink(t, cs.HostName, 2*time.Second)
	// The two commands wait at once: each waits out the slow link and
	// its --timeout.
	for _, cmd := range []string{"feedback", "monitor"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			r := e.run(t, nil, "hub", cmd, "--connection-string", cs.Format(), "--timeout", "1s", "-o", "json")
			if r.code != 0 || r.stdout != "" {
				t.Errorf("over a link 2s slow to connect, hub %s --timeout 1s: exit %d stdout %q stderr %q; want 0 and nothing", cmd, r.code, r.stdout, r.stderr)
			}
		})
	}
}

func TestFeedbackCommand(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	got := make(chan *message.Message, 10)
	amqpDevice(t, e, "dev1", got)
	if err := e.hub.CreateDevice("sleepy"); err != nil {
		t.Fatal(err)
	}
	svc := amqpService(t, e)
	send := func(deviceID string, m *message.Message) string {
		t.Helper()
		if err := svc.SendC2D(context.Background(), deviceID, "", m); err != nil {
			t.Fatalf("SendC2D to %s: %v", deviceID, err)
		}
		return m.MessageID
	}

	t.Run("--timeout with nothing to read ends with 0", func(t *testing.T) {
		start := time.Now()
		r := e.run(t, nil, "hub", "feedback", "--timeout", "1s", "-o", "json")
		if r.code != 0 || r.stdout != "" {
			t.Errorf("exit %d stdout %q stderr %q; want 0 and nothing", r.code, r.stdout, r.stderr)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s; want about 1s", d)
		}
	})

	t.Run("--count N reads N records as JSON Lines", func(t *testing.T) {
		want := map[string]bool{}
		for i := range 3 {
			id := send("dev1", &message.Message{Body: []byte{byte('a' + i)}, Ack: message.AckFull})
			want[id] = true
			receiveC2D(t, got, id)
		}
		r := e.run(t, nil, "hub", "feedback", "--count", "3", "--timeout", "30s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		recs := lines(t, r.stdout)
		if len(recs) != 3 {
			t.Fatalf("printed %d records; want 3:\n%s", len(recs), r.stdout)
		}
		for _, rec := range recs {
			id, _ := rec["originalMessageId"].(string)
			if rec["type"] != "feedback" || rec["statusCode"] != "Success" || rec["deviceId"] != "dev1" || !want[id] || rec["enqueuedTimeUtc"] == nil {
				t.Errorf("record %v; want type feedback, Success from dev1 for one of the messages sent", rec)
			}
			delete(want, id)
		}
		// The hub completes the batch when the accept arrives, which
		// may be just after the command has exited.
		eventually(t, "the hub to complete the feedback batch iotctl accepted", func() bool {
			n, _ := e.hub.Registry().PendingFeedback()
			return n == 0
		})
	})

	t.Run("--wait-on-msg: Success exits 0", func(t *testing.T) {
		id := send("dev1", &message.Message{Body: []byte("x"), Ack: message.AckPositive})
		receiveC2D(t, got, id)
		r := e.run(t, nil, "hub", "feedback", "--wait-on-msg", id, "--timeout", "30s")
		if r.code != 0 || !strings.Contains(r.stdout, "Success") || !strings.Contains(r.stdout, id) {
			t.Errorf("exit %d stdout %q stderr %q; want 0 and the Success line", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("--wait-on-msg: Expired exits 8", func(t *testing.T) {
		id := send("sleepy", &message.Message{Body: []byte("x"), Ack: message.AckNegative, ExpiryTime: time.Now().Add(time.Second)})
		r := e.run(t, nil, "hub", "feedback", "--wait-on-msg", id, "--timeout", "30s", "-o", "json")
		if r.code != cmdutil.ExitDeviceError || !strings.Contains(r.stderr, "expired") {
			t.Fatalf("exit %d stdout %q stderr %q; want 8 and the expiry", r.code, r.stdout, r.stderr)
		}
		recs := lines(t, r.stdout)
		if last := recs[len(recs)-1]; last["originalMessageId"] != id || last["statusCode"] != "Expired" || last["deviceId"] != "sleepy" {
			t.Errorf("records %v; want the Expired one of %s", recs, id)
		}
	})

	t.Run("--wait-on-msg: nothing within --timeout exits 7", func(t *testing.T) {
		r := e.run(t, nil, "hub", "feedback", "--wait-on-msg", "never-sent", "--timeout", "1s")
		if r.code != cmdutil.ExitTimeout || !strings.Contains(r.stderr, "no feedback for message never-sent within 1s") {
			t.Errorf("exit %d stderr %q; want 7", r.code, r.stderr)
		}
	})

	t.Run("--wait-on-msg prints the whole batch it took", func(t *testing.T) {
		// Three records wait; the one waited on is in the middle.
		eventually(t, "the hub to complete the batches read before", func() bool {
			n, _ := e.hub.Registry().PendingFeedback()
			return n == 0
		})
		var ids []string
		for range 3 {
			id := send("dev1", &message.Message{Body: []byte("x"), Ack: message.AckPositive})
			receiveC2D(t, got, id)
			ids = append(ids, id)
		}
		waitFeedbackRecords(t, e, 3)
		r := e.run(t, nil, "hub", "feedback", "--wait-on-msg", ids[1], "--timeout", "30s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		recs := lines(t, r.stdout)
		if len(recs) != 3 || recs[2]["originalMessageId"] != ids[2] {
			t.Errorf("printed %v; want all 3 records of the batch (the hub took them all from its queue)", recs)
		}
	})

	t.Run("bad flags exit 3", func(t *testing.T) {
		e.fails(t, cmdutil.ExitUsage, "yaml", "hub", "feedback", "-o", "yaml")
	})
}

// eventually polls cond (state that has no signal to wait on) until it
// holds, failing after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("waited 10s for %s", what)
		}
	}
}

// waitFeedbackRecords waits until the hub holds n feedback records.
func waitFeedbackRecords(t *testing.T, e *regEnv, n int) {
	t.Helper()
	reg := e.hub.Registry()
	deadline := time.After(20 * time.Second)
	for {
		added := reg.FeedbackAdded()
		got, err := reg.PendingFeedback()
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		select {
		case <-added:
		case <-deadline:
			t.Fatalf("%d feedback records on the hub after 20s; want %d", got, n)
		}
	}
}

func TestMonitorCommand(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	sim := amqpDevice(t, e, "sim-1", nil)
	other := amqpDevice(t, e, "other", nil)
	sendTelemetry(t, sim,
		&message.Message{Body: []byte(`{"temperature":21.5}`), MessageID: "m-json", CorrelationID: "c-1", ContentType: "application/json",
			ContentEncoding: "utf-8", Properties: map[string]string{"temperatureAlert": "false", "sp ace": "a/b&c"}},
		&message.Message{Body: []byte("hello text"), MessageID: "m-text"},
		&message.Message{Body: []byte{0, 1, 2, 0xff}, MessageID: "m-bin"},
	)
	sendTelemetry(t, other, &message.Message{Body: []byte(`{"n":99}`), MessageID: "m-other"})

	byID := func(t *testing.T, out string) map[string]map[string]any {
		t.Helper()
		m := map[string]map[string]any{}
		for _, l := range lines(t, out) {
			sys, _ := l["systemProperties"].(map[string]any)
			id, _ := sys["message-id"].(string)
			if id == "" {
				id, _ = l["deviceId"].(string)
			}
			m[id] = l
		}
		return m
	}

	t.Run("--from start --count, JSON Lines with app, sys and anno properties", func(t *testing.T) {
		out := e.ok(t, "hub", "monitor", "--from", "start", "--count", "4", "--timeout", "30s", "-o", "json", "--properties", "app,sys,anno")
		evs := byID(t, out)
		if len(evs) != 4 {
			t.Fatalf("got %d distinct events; want 4:\n%s", len(evs), out)
		}
		for id, ev := range evs {
			ann, _ := ev["annotations"].(map[string]any)
			if ev["type"] != "event" || ev["partition"] == nil || ev["sequenceNumber"] == nil || ev["enqueuedTime"] == nil ||
				ann["iothub-connection-device-id"] != ev["deviceId"] || ann["x-opt-sequence-number"] != ev["sequenceNumber"] ||
				ann["iothub-message-source"] != "Telemetry" {
				t.Errorf("event %s: %v; want type event, partition, sequence number, time and IoT Hub's annotations", id, ev)
			}
		}
		j := evs["m-json"]
		body, _ := j["body"].(map[string]any)
		props, _ := j["properties"].(map[string]any)
		sys, _ := j["systemProperties"].(map[string]any)
		if j["deviceId"] != "sim-1" || body["temperature"] != 21.5 || props["temperatureAlert"] != "false" || props["sp ace"] != "a/b&c" ||
			sys["correlation-id"] != "c-1" || sys["content-type"] != "application/json" || sys["content-encoding"] != "utf-8" {
			t.Errorf("JSON event %v; want the body as JSON and the properties the device sent", j)
		}
		if txt := evs["m-text"]; txt["body"] != "hello text" || txt["bodyBase64"] != nil {
			t.Errorf("text event %v; want the body as a JSON string", txt)
		}
		if bin := evs["m-bin"]; bin["body"] != nil || bin["bodyBase64"] != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}) {
			t.Errorf("binary event %v; want bodyBase64", bin)
		}
		if o := evs["m-other"]; o["deviceId"] != "other" || o["body"].(map[string]any)["n"] != 99.0 {
			t.Errorf("other's event %v", o)
		}
	})

	t.Run("--properties app only", func(t *testing.T) {
		out := e.ok(t, "hub", "monitor", "--from", "start", "--device-id", "sim-1", "--count", "1", "--timeout", "30s", "-o", "json", "--properties", "app")
		ev := lines(t, out)[0]
		if ev["properties"] == nil || ev["systemProperties"] != nil || ev["annotations"] != nil {
			t.Errorf("event %v; want application properties only", ev)
		}
		out = e.ok(t, "hub", "monitor", "--from", "start", "--device-id", "sim-1", "--count", "1", "--timeout", "30s", "-o", "json")
		if ev := lines(t, out)[0]; ev["properties"] != nil || ev["systemProperties"] != nil || ev["annotations"] != nil {
			t.Errorf("event %v; want no properties without --properties", ev)
		}
	})

	t.Run("--device-id glob and --timeout exit 0", func(t *testing.T) {
		start := time.Now()
		r := e.run(t, nil, "hub", "monitor", "--from", "start", "--device-id", "sim-*", "--timeout", "2s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q; want 0 after --timeout", r.code, r.stderr)
		}
		evs := lines(t, r.stdout)
		if len(evs) != 3 {
			t.Errorf("got %d events; want sim-1's 3:\n%s", len(evs), r.stdout)
		}
		for _, ev := range evs {
			if ev["deviceId"] != "sim-1" {
				t.Errorf("event of %v passed the glob sim-*", ev["deviceId"])
			}
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s; want about 2s", d)
		}
	})

	t.Run("--from an RFC 3339 time", func(t *testing.T) {
		// A millisecond boundary after every event so far (the filter
		// has millisecond precision), then a clock gap past it: this
		// sleep orders two clock readings, it waits for no event.
		from := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
		time.Sleep(3 * time.Millisecond)
		sendTelemetry(t, sim, &message.Message{Body: []byte(`"after"`), MessageID: "m-after"})
		r := e.run(t, nil, "hub", "monitor", "--from", from.UTC().Format(time.RFC3339Nano), "--timeout", "2s", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d stderr %q", r.code, r.stderr)
		}
		evs := lines(t, r.stdout)
		if len(evs) != 1 || evs[0]["body"] != "after" {
			t.Errorf("got %v; want only the event sent after %s", evs, from.Format(time.RFC3339Nano))
		}
		// A zone offset works too; the whole log is after 2000.
		out := e.ok(t, "hub", "monitor", "--from", "2000-01-01T01:00:00+01:00", "--count", "5", "--timeout", "30s", "-o", "json")
		if n := len(lines(t, out)); n != 5 {
			t.Errorf("--from 2000: %d events; want all 5", n)
		}
	})

	t.Run("--from now sees only new events", func(t *testing.T) {
		b := e.start(t, nil, "hub", "monitor", "--from", "now", "--count", "1", "--timeout", "60s", "-o", "json")
		// The monitor attaches at some point: send until it prints.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var line string
		for line == "" {
			select {
			case line = <-b.out.lines:
			case <-tick.C:
				sendTelemetry(t, other, &message.Message{Body: []byte(`{"new":true}`), MessageID: "m-new"})
			case <-b.done:
				select {
				case line = <-b.out.lines: // printed, then ended
				default:
					t.Fatalf("the monitor ended (exit %d) before any event; stderr %q", b.code, b.errOut.String())
				}
			}
		}
		if code := b.wait(t, 20*time.Second); code != 0 {
			t.Errorf("exit %d after --count 1", code)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev["deviceId"] != "other" || ev["body"].(map[string]any)["new"] != true {
			t.Errorf("first event %s (%v); want a new one", line, err)
		}
	})

	t.Run("no events and --timeout 1s: ends with 0", func(t *testing.T) {
		start := time.Now()
		r := e.run(t, nil, "hub", "monitor", "--timeout", "1s", "-o", "json")
		if r.code != 0 || r.stdout != "" {
			t.Errorf("exit %d stdout %q stderr %q; want 0 and nothing", r.code, r.stdout, r.stderr)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s; want about 1s", d)
		}
	})

	t.Run("an interrupt ends it with 130", func(t *testing.T) {
		b := e.start(t, nil, "hub", "monitor", "--from", "now")
		b.cancel()
		if code := b.wait(t, 20*time.Second); code != cmdutil.ExitInterrupted {
			t.Errorf("exit %d stderr %q; want 130", code, b.errOut.String())
		}
	})

	t.Run("one line per event on a terminal", func(t *testing.T) {
		out := e.ok(t, "hub", "monitor", "--from", "start", "--device-id", "oth?r", "--count", "1", "--timeout", "30s", "--properties", "sys")
		if !strings.Contains(out, "other") || !strings.Contains(out, `{"n":99}`) || !strings.Contains(out, "message-id=m-other") || strings.Count(out, "\n") != 1 {
			t.Errorf("stdout %q; want one line with the device, body and message id", out)
		}
	})

	t.Run("bad flags exit 3", func(t *testing.T) {
		e.fails(t, cmdutil.ExitUsage, "yaml", "hub", "monitor", "-o", "yaml")
	})
}

// hub monitor reads the Event Hub-compatible connection string that
// `hub serve` prints, without a service connection string.
func TestMonitorEventHubConnectionStringFromServe(t *testing.T) {
	t.Parallel() // no t.Setenv: see runEnv
	serve, info := startServe(t, "--in-memory")
	if info.EventHub == "" || info.CAFile == "" {
		t.Fatalf("hub serve -o json printed %q; want the Event Hub-compatible string and the CA", serve.out.String())
	}

	// A device of that hub sends two events.
	env := map[string]string{"IOTCTL_CONNECTION_STRING": info.ConnectionString, "IOTCTL_CA_FILE": info.CAFile}
	created := decodeJSON[identityJSON](t, runEnv(t, env, "hub", "device", "create", "eh-dev", "-o", "json").stdout)
	d, err := device.New(&device.Options{ConnectionString: created.ConnectionString, CAFile: info.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	sendTelemetry(t, d, &message.Message{Body: []byte(`{"i":1}`)}, &message.Message{Body: []byte(`{"i":2}`)})

	// Only the CA and the Event Hub-compatible string.
	r := runEnv(t, map[string]string{"IOTCTL_CA_FILE": info.CAFile},
		"hub", "monitor", "--event-hub-connection-string", info.EventHub, "--from", "start", "--count", "2", "--timeout", "30s", "-o", "json")
	if r.code != 0 {
		t.Fatalf("hub monitor --event-hub-connection-string: exit %d stderr %q", r.code, r.stderr)
	}
	evs := lines(t, r.stdout)
	if len(evs) != 2 || evs[0]["deviceId"] != "eh-dev" || evs[0]["type"] != "event" {
		t.Errorf("read %v; want eh-dev's two events", evs)
	}
	r = runEnv(t, map[string]string{"IOTCTL_CA_FILE": info.CAFile}, "hub", "monitor", "--event-hub-connection-string",
		strings.Replace(info.EventHub, "SharedAccessKey=", "SharedAccessKey=AAAA", 1), "--from", "start", "--count", "2", "--timeout", "30s")
	if r.code != cmdutil.ExitAuth {
		t.Errorf("a wrong key: exit %d stderr %q; want 4", r.code, r.stderr)
	}

	serve.cancel()
	if code := serve.wait(t, 20*time.Second); code != cmdutil.ExitInterrupted {
		t.Errorf("hub serve exited %d after the interrupt; want 130", code)
	}
}

// runEnv runs iotctl in process with env as its environment variables
// (the Factory's Getenv), and none of the process's: TestMain isolated
// the process, so a test that runs commands this way may run in
// parallel.
func runEnv(t *testing.T, env map[string]string, args ...string) regResult {
	t.Helper()
	return runFactory(t, func(f *cmdutil.Factory) { f.Getenv = func(k string) string { return env[k] } }, args...)
}

// runFactory runs iotctl in process, with setup, when not nil, given
// the command's Factory first (its environment, its credential).
func runFactory(t *testing.T, setup func(*cmdutil.Factory), args ...string) regResult {
	t.Helper()
	var out, errOut bytes.Buffer
	f := cmdutil.NewFactory(&cmdutil.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if setup != nil {
		setup(f)
	}
	code := cmd.ExecuteFactory(context.Background(), f, args)
	return regResult{code, out.String(), errOut.String()}
}
