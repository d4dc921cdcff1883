package benchkit

import (
	"slices"
	"time"
)

// Median is the middle of d (the mean of the two middle values when d
// has an even length), 0 for an empty d. d is not modified.
func Median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Percentile is the value at index (len(d)-1)*pct/100 of d sorted: the
// lowest value for 0, the highest for 100, 0 for an empty d. d is not
// modified.
func Percentile(d []time.Duration, pct int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*pct/100]
}
