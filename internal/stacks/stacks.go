// Package stacks counts goroutines by what they run, for tests that
// check how many goroutines a piece of code keeps (a count read from
// the runtime, not a timing).
//
//	readers := stacks.Count("device.(*conn).readLoop")
package stacks

import (
	"bytes"
	"runtime"
)

// Count returns how many goroutines have a frame whose function name
// contains one of names in their stack now (each goroutine counted
// once). It stops the world for a moment to read every stack.
func Count(names ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		for _, name := range names {
			if bytes.Contains(g, []byte(name)) {
				count++
				break
			}
		}
	}
	return count
}
