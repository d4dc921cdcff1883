package telemetry

import (
	"math/rand/v2"
	"testing"
)

// TestRingKeepsOrderAcrossWrapsAndGrowth checks the ring against a
// slice doing the same pushes and drops.
func TestRingKeepsOrderAcrossWrapsAndGrowth(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var r ring
	var want []int64
	next := int64(0)
	for step := range 20000 {
		if rnd.IntN(3) > 0 || len(want) == 0 {
			r.push(stored{size: next})
			want = append(want, next)
			next++
		} else {
			k := rnd.IntN(len(want) + 1)
			r.drop(k)
			want = want[k:]
		}
		if r.len() != len(want) {
			t.Fatalf("step %d: len() = %d; want %d", step, r.len(), len(want))
		}
		if len(want) > 0 {
			if got := r.at(0).size; got != want[0] {
				t.Fatalf("step %d: at(0) = %d; want %d", step, got, want[0])
			}
			if got := r.at(len(want) - 1).size; got != want[len(want)-1] {
				t.Fatalf("step %d: at(last) = %d; want %d", step, got, want[len(want)-1])
			}
		}
	}
	for i := range want {
		if got := r.at(i).size; got != want[i] {
			t.Fatalf("at(%d) = %d; want %d", i, got, want[i])
		}
	}
}

// TestRingDropClearsEvents checks that dropped events let go of their
// bodies.
func TestRingDropClearsEvents(t *testing.T) {
	var r ring
	for range 5 {
		r.push(stored{body: []byte("x")})
	}
	r.drop(3)
	for i := range r.buf {
		if inHeld := (i-r.head)&(len(r.buf)-1) < r.n; !inHeld && r.buf[i].body != nil {
			t.Fatalf("buf[%d] still holds a body after drop", i)
		}
	}
}
