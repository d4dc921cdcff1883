package simulate

import (
	"fmt"
	"strconv"
	"strings"
)

// JobCompletionIndexEnv is the variable Kubernetes sets in every pod
// of an Indexed Job to the pod's index, 0 to completions-1
// (https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode).
const JobCompletionIndexEnv = "JOB_COMPLETION_INDEX"

// Shard is one of Count disjoint slices of a fleet, numbered from 0.
// The zero value and Count 1 mean the whole fleet.
type Shard struct {
	// Count is the number of shards the fleet is cut into.
	Count int
	// Index is this shard's number, 0 to Count-1.
	Index int
}

// ResolveShard checks --shards and --shard-index and returns the
// shard. When index is not set (indexSet false) and count is more than
// 1, the index comes from getenv(JobCompletionIndexEnv), as in a
// Kubernetes Indexed Job; with count 1 the variable is ignored.
// Errors are *SpecError naming the flag or variable at fault and what
// would be right.
func ResolveShard(count, index int, indexSet bool, getenv func(string) string) (Shard, error) {
	if count < 1 {
		return Shard{}, &SpecError{What: "--shards", Spec: strconv.Itoa(count), Reason: "must be at least 1"}
	}
	if !indexSet {
		if count == 1 {
			return Shard{Count: 1}, nil
		}
		env := strings.TrimSpace(getenv(JobCompletionIndexEnv))
		if env == "" {
			return Shard{}, &SpecError{What: "--shards", Spec: strconv.Itoa(count),
				Reason: "which shard is this process? give --shard-index (0 to " + strconv.Itoa(count-1) + "), or run it in a Kubernetes Indexed Job, which sets " + JobCompletionIndexEnv}
		}
		n, err := strconv.Atoi(env)
		if err != nil || n < 0 || n >= count {
			return Shard{}, &SpecError{What: JobCompletionIndexEnv, Spec: env,
				Reason: fmt.Sprintf("want a number from 0 to %d (--shards %d)", count-1, count)}
		}
		return Shard{Count: count, Index: n}, nil
	}
	if index < 0 || index >= count {
		return Shard{}, &SpecError{What: "--shard-index", Spec: strconv.Itoa(index),
			Reason: fmt.Sprintf("want a number from 0 to %d (--shards %d)", count-1, count)}
	}
	return Shard{Count: count, Index: index}, nil
}

// Range returns the half-open range [from, to) of the positions of a
// fleet of n devices that belong to s: shard i of N takes positions
// i*n/N up to (i+1)*n/N, so the shards are disjoint, cover the fleet,
// differ in size by at most one, and each process computes its own
// from n, N and i alone.
func (s Shard) Range(n int) (from, to int) {
	if s.Count <= 1 {
		return 0, n
	}
	return s.Index * n / s.Count, (s.Index + 1) * n / s.Count
}

// Of returns the ids of ids (in the order all shards see them) that
// belong to s.
func (s Shard) Of(ids []string) []string {
	from, to := s.Range(len(ids))
	return ids[from:to]
}

// Check reports an error when a fleet of n devices leaves a shard of
// s's Count empty: more shards than devices.
func (s Shard) Check(n int) error {
	if s.Count > n {
		return &SpecError{What: "--shards", Spec: strconv.Itoa(s.Count),
			Reason: fmt.Sprintf("a fleet of %d device(s) leaves some shards with none: use at most %d shards", n, n)}
	}
	return nil
}

// String is "I/N" ("0/1" for the whole fleet).
func (s Shard) String() string {
	return strconv.Itoa(s.Index) + "/" + strconv.Itoa(max(1, s.Count))
}

// FleetIDRange returns the ids FleetIDs(prefix, n) holds at positions
// from to to-1, without making the others: a shard of a large fleet
// costs only its own ids.
func FleetIDRange(prefix string, n, from, to int) []string {
	width := max(5, len(strconv.Itoa(n)))
	ids := make([]string, 0, max(0, to-from))
	for i := from; i < to; i++ {
		ids = append(ids, fmt.Sprintf("%s%0*d", prefix, width, i+1))
	}
	return ids
}
