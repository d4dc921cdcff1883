package benchkit

import (
	"sync"
	"sync/atomic"
)

// Parallel runs f(0), ..., f(n-1) on at most p goroutines and returns
// the first error. After an error no new index is started; the ones
// running finish. f must be safe to call concurrently.
func Parallel(n, p int, f func(i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Value
	var next atomic.Int64
	for range min(p, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := first.Load().(error); ok {
		return e
	}
	return nil
}
