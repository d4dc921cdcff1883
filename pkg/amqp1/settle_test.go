package amqp1

import (
	"fmt"
	"testing"

	"github.com/Azure/go-amqp"

	"github.com/iotctl/iotctl/pkg/amqp1/internal/frames"
)

// queuedFrames parses what w has queued.
func queuedFrames(t *testing.T, w *writer) []frames.Body {
	t.Helper()
	w.mu.Lock()
	b := w.buf
	w.mu.Unlock()
	var out []frames.Body
	for len(b) > 0 {
		h, err := frames.ParseHeader(b, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		fb, err := frames.Parse(h.Type, b[int(h.DataOffset)*4:h.Size])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fb)
		b = b[h.Size:]
	}
	return out
}

// describe prints a disposition as "disposition FIRST-LAST settled
// STATE", any other frame as its type.
func describe(b frames.Body) string {
	d, ok := b.(*frames.Disposition)
	if !ok {
		return fmt.Sprintf("%T", b)
	}
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	return fmt.Sprintf("disposition %d-%d settled=%v %T", d.First, last, d.Settled, d.State)
}

// TestAcceptedDispositionsMerge: consecutive accepted deliveries go out
// as one disposition with a range, before the session's next frame (so
// frames keep their order) or when the writer is about to write; a gap
// or another outcome starts a new one.
func TestAcceptedDispositionsMerge(t *testing.T) {
	w := newWriter(nil) // not running: the test looks at what it queued
	s := &session{c: &Conn{w: w}, localCh: 3}
	s.mu.Lock()
	for _, id := range []uint32{5, 6, 7, 9, 10} {
		s.accept(id)
	}
	s.send(&frames.Flow{}, nil)
	s.accept(11)
	s.accept(12)
	s.mu.Unlock()
	if got := queuedFrames(t, w); len(got) != 3 {
		t.Fatalf("queued before the write: %d frames; want 5-7, 9-10 and the flow", len(got))
	}
	w.runDeferred() // what the writer does before it writes
	var got []string
	for _, b := range queuedFrames(t, w) {
		got = append(got, describe(b))
	}
	want := []string{
		"disposition 5-7 settled=true *frames.Accepted",
		"disposition 9-10 settled=true *frames.Accepted",
		"*frames.Flow",
		"disposition 11-12 settled=true *frames.Accepted",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("frames:\n%q\nwant\n%q", got, want)
	}
	w.runDeferred()
	if n := len(queuedFrames(t, w)); n != 4 {
		t.Fatalf("a second writer pass queued %d frames in all; want the same 4", n)
	}
}

// TestMergedAcceptsReachClient: a client that sends many messages at
// once gets every one accepted, whatever the server merged.
func TestMergedAcceptsReachClient(t *testing.T) {
	const n = 200
	ctx := testCtx(t)
	snd, l := senderLink(t, &ConnOptions{LinkCredit: 50}, nil)
	if err := l.HandleDeliveries(func(d *Delivery) { _ = d.Accept() }); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- snd.Send(ctx, amqp.NewMessage([]byte(fmt.Sprint(i))), nil) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
}
