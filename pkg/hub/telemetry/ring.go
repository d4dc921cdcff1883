package telemetry

// ring is a partition's events in memory, oldest first: a circular
// buffer whose capacity is a power of two. Dropping the oldest event
// and appending a new one, which a full partition does on every
// append, moves nothing; a slice resliced from the front instead
// reallocates and copies all it holds every time its shrinking
// capacity runs out (a quarter of the events held, every time).
type ring struct {
	buf  []stored
	head int // index in buf of the oldest event
	n    int
}

// len is the number of events held.
func (r *ring) len() int { return r.n }

// at returns the i-th oldest event (0 <= i < len).
func (r *ring) at(i int) *stored { return &r.buf[(r.head+i)&(len(r.buf)-1)] }

// push appends s as the newest event, doubling the buffer when full.
func (r *ring) push(s stored) {
	if r.n == len(r.buf) {
		buf := make([]stored, max(16, 2*len(r.buf)))
		for i := range r.n {
			buf[i] = *r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	*r.at(r.n) = s
	r.n++
}

// drop removes the k oldest events (k <= len), clearing them so that
// their bodies can be collected.
func (r *ring) drop(k int) {
	for i := range k {
		*r.at(i) = stored{}
	}
	r.head = (r.head + k) & (len(r.buf) - 1)
	r.n -= k
}
