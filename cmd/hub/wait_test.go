package hub_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/message"
)

// waitForLine returns the first line of w that contains want, failing
// after d.
func waitForLine(t *testing.T, w *lineWriter, want string, d time.Duration) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-w.lines:
			if strings.Contains(l, want) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line with %q within %s; got %q", want, d, w.String())
			return ""
		}
	}
}

// The commands that wait (hub monitor, hub feedback, hub c2d send
// --wait) say on a terminal's stderr what they wait for before the
// first record, and how many they got when stopped; on a stderr that is
// not a terminal, nothing.
func TestWaitingCommandsSayWhatTheyWaitFor(t *testing.T) {
	t.Parallel() // no t.Setenv: see regEnv.argv
	e := startRegEnv(t)
	got := make(chan *message.Message, 10)
	dev := amqpDevice(t, e, "dev1", got)

	t.Run("hub monitor: before the first event, and the count when interrupted", func(t *testing.T) {
		b := startIotctlTTY(t, true, e.argv(nil, []string{"hub", "monitor", "--device-id", "dev*", "-o", "json"})...)
		waiting := waitForLine(t, b.errOut, "Waiting for", 20*time.Second)
		if want := `Waiting for device telemetry (consumer group $Default, from now, devices matching "dev*"); press Ctrl-C to stop`; waiting != want {
			t.Errorf("stderr line %q; want %q", waiting, want)
		}
		if b.out.String() != "" {
			t.Errorf("stdout %q before any event; want nothing", b.out.String())
		}
		// Events sent until monitor prints one: it may still be
		// attaching its receivers when the first are sent.
		deadline := time.Now().Add(20 * time.Second)
		for b.out.String() == "" {
			if time.Now().After(deadline) {
				t.Fatal("hub monitor printed no event within 20s")
			}
			sendTelemetry(t, dev, &message.Message{Body: []byte(`{"n":1}`)})
			select {
			case <-b.out.lines:
			case <-time.After(500 * time.Millisecond):
			}
		}
		b.cancel()
		if code := b.wait(t, 20*time.Second); code != cmdutil.ExitInterrupted {
			t.Errorf("exit %d; want 130 when interrupted", code)
		}
		n := strings.Count(b.out.String(), "\n")
		if want := regexp.MustCompile(`(?m)^Stopped after [0-9.]+m?s: ` + strconv.Itoa(n) + ` event\(s\) received$`); !want.MatchString(b.errOut.String()) {
			t.Errorf("stderr %q; want it to end saying %d event(s) received", b.errOut.String(), n)
		}
	})

	t.Run("hub monitor on a stderr that is not a terminal: nothing", func(t *testing.T) {
		r := e.run(t, nil, "hub", "monitor", "--from", "start", "--count", "1", "--timeout", "30s", "-o", "json")
		if r.code != 0 || r.stderr != "" {
			t.Errorf("exit %d stderr %q; want 0 and nothing on stderr", r.code, r.stderr)
		}
	})

	t.Run("hub feedback: what it waits for, and the count at --timeout", func(t *testing.T) {
		r := e.runErrTTY(t, "hub", "feedback", "--timeout", "1s", "--count", "5")
		want := "Waiting for delivery feedback records (up to 5 records, at most 1s); press Ctrl-C to stop\n"
		if r.code != 0 || !strings.HasPrefix(r.stderr, want) || !regexp.MustCompile(`\nStopped after [0-9.]+m?s: 0 feedback record\(s\) received\n$`).MatchString(r.stderr) {
			t.Errorf("exit %d stderr %q; want 0, %q and 0 records received", r.code, r.stderr, want)
		}
	})

	t.Run("hub c2d send --wait: the message it waits for, and the feedback", func(t *testing.T) {
		r := e.runErrTTY(t, "hub", "c2d", "send", "-d", "dev1", "--data", "x", "--message-id", "msg-7", "--wait", "--timeout", "30s", "-o", "json")
		receiveC2D(t, got, "msg-7")
		want := "Waiting for the delivery feedback of message msg-7 to dev1 (at most 30s); press Ctrl-C to stop\n"
		if r.code != 0 || !strings.HasPrefix(r.stderr, want) ||
			!regexp.MustCompile(`\nStopped after [0-9.]+m?s: feedback Success received, and 0 record\(s\) of other messages\n$`).MatchString(r.stderr) {
			t.Errorf("exit %d stderr %q; want 0, %q and the feedback received", r.code, r.stderr, want)
		}
	})

	t.Run("hub c2d send --wait that times out says it got none", func(t *testing.T) {
		if err := e.hub.CreateDevice("sleepy"); err != nil {
			t.Fatal(err)
		}
		r := e.runErrTTY(t, "hub", "c2d", "send", "-d", "sleepy", "--data", "x", "--message-id", "msg-8", "--wait", "--timeout", "1s")
		if r.code != cmdutil.ExitTimeout || !regexp.MustCompile(`\nStopped after [0-9.]+m?s: no feedback for message msg-8; 0 record\(s\) of other messages received\n`).MatchString(r.stderr) {
			t.Errorf("exit %d stderr %q; want 7 and no feedback for msg-8", r.code, r.stderr)
		}
	})
}

// runErrTTY runs iotctl as run does, with stderr taken for a terminal.
func (e *regEnv) runErrTTY(t *testing.T, args ...string) regResult {
	t.Helper()
	e.setenv(t, nil)
	b := startIotctlTTY(t, true, e.argv(nil, args)...)
	code := b.wait(t, 60*time.Second)
	return regResult{code, b.out.String(), b.errOut.String()}
}
