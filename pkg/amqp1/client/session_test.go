package client

import "testing"

// remoteLinks finds a link by any handle the peer may give: small ones
// in its slice, one past denseHandles in its map; a deleted handle
// finds none.
func TestRemoteLinks(t *testing.T) {
	t.Parallel()
	var r remoteLinks
	a, b, c := &link{handle: 1}, &link{handle: 2}, &link{handle: 3}
	handles := map[uint32]*link{0: a, 7: b, denseHandles + 5: c}
	for h, l := range handles {
		r.set(h, l)
	}
	for h, want := range handles {
		if got := r.get(h); got != want {
			t.Errorf("get(%d) = %p; want %p", h, got, want)
		}
	}
	for _, h := range []uint32{1, 8, 100, denseHandles, denseHandles + 6} {
		if got := r.get(h); got != nil {
			t.Errorf("get(%d) = %p; want none", h, got)
		}
	}
	r.delete(7)
	r.delete(denseHandles + 5)
	r.delete(500) // never set
	if got := r.get(7); got != nil {
		t.Errorf("get(7) after delete = %p; want none", got)
	}
	if got := r.get(denseHandles + 5); got != nil {
		t.Errorf("get(%d) after delete = %p; want none", denseHandles+5, got)
	}
	if got := r.get(0); got != a {
		t.Errorf("get(0) = %p; want %p", got, a)
	}
}
