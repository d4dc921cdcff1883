package simulate

import (
	"context"
	"testing"
	"time"
)

// The set lists devices in any order of adds and removes, stopAll stops
// every listed device and none removed before, and nothing is added
// after it.
func TestDeviceSet(t *testing.T) {
	t.Parallel()
	var s deviceSet
	f := &Fleet{}
	devs := make([]*simDevice, 5)
	for i := range devs {
		devs[i] = &simDevice{f: f, ctx: context.Background(), timer: time.NewTimer(time.Hour), done: func() {}}
		if !s.add(devs[i]) {
			t.Fatalf("add %d refused before stopAll", i)
		}
	}
	s.remove(devs[0]) // the tail
	s.remove(devs[4]) // the head
	s.remove(devs[2]) // the middle
	s.remove(devs[2]) // twice: no-op
	var listed []*simDevice
	for d := s.head; d != nil; d = d.next {
		listed = append(listed, d)
	}
	if len(listed) != 2 || listed[0] != devs[3] || listed[1] != devs[1] {
		t.Fatalf("listed %v; want devices 3 and 1", listed)
	}
	stopped := make(chan *simDevice, len(devs))
	for _, d := range devs {
		d.done = func() { stopped <- d }
		d.conn = closeOnly{}
	}
	s.stopAll()
	got := map[*simDevice]bool{}
	for range 2 {
		select {
		case d := <-stopped:
			got[d] = true
		case <-time.After(10 * time.Second):
			t.Fatal("stopAll did not stop the listed devices")
		}
	}
	if !got[devs[1]] || !got[devs[3]] {
		t.Errorf("stopAll stopped %v; want devices 1 and 3", got)
	}
	for _, i := range []int{0, 2, 4} {
		if devs[i].stopped {
			t.Errorf("device %d stopped, though removed before stopAll", i)
		}
	}
	if s.add(&simDevice{f: f}) {
		t.Error("add after stopAll listed the device")
	}
	if s.head != nil {
		t.Error("stopAll left devices listed")
	}
}

// closeOnly is a Conn whose Close is all a stopping device calls.
type closeOnly struct{ Conn }

func (closeOnly) Close(context.Context) error { return nil }
