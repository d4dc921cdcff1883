package simulate

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// Every way of cutting fleets of several sizes: the shards' ids, put
// together in shard order, are the fleet's ids, each exactly once, and
// no two shards differ in size by more than one.
func TestShardsPartitionTheFleet(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 10, 100, 1001} {
		all := FleetIDs("sim-", n)
		for count := 1; count <= min(n, 12); count++ {
			var union []string
			seen := map[string]int{}
			smallest, largest := n, 0
			for i := range count {
				s := Shard{Count: count, Index: i}
				if err := s.Check(n); err != nil {
					t.Fatalf("Shard%v.Check(%d) = %v; want nil", s, n, err)
				}
				from, to := s.Range(n)
				part := FleetIDRange("sim-", n, from, to)
				if !slices.Equal(part, s.Of(all)) {
					t.Fatalf("FleetIDRange(%d, %d, %d) = %q; want Of = %q", n, from, to, part, s.Of(all))
				}
				for _, id := range part {
					seen[id]++
				}
				smallest, largest = min(smallest, len(part)), max(largest, len(part))
				union = append(union, part...)
			}
			if !slices.Equal(union, all) {
				t.Fatalf("%d shards of %d: union %q; want %q", count, n, union, all)
			}
			for id, k := range seen {
				if k != 1 {
					t.Errorf("%d shards of %d: %s in %d shards", count, n, id, k)
				}
			}
			if largest-smallest > 1 {
				t.Errorf("%d shards of %d: sizes from %d to %d; want a difference of at most 1", count, n, smallest, largest)
			}
		}
	}
}

func TestResolveShard(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == JobCompletionIndexEnv {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		count    int
		index    int
		indexSet bool
		env      string
		want     Shard
		wantErr  string
	}{
		{name: "whole fleet", count: 1, want: Shard{Count: 1}},
		{name: "index ignored env with one shard", count: 1, env: "3", want: Shard{Count: 1}},
		{name: "flag", count: 4, index: 2, indexSet: true, want: Shard{Count: 4, Index: 2}},
		{name: "flag wins over env", count: 4, index: 1, indexSet: true, env: "3", want: Shard{Count: 4, Index: 1}},
		{name: "env", count: 4, env: "3", want: Shard{Count: 4, Index: 3}},
		{name: "no index", count: 4, wantErr: "give --shard-index (0 to 3), or run it in a Kubernetes Indexed Job"},
		{name: "index too large", count: 4, index: 4, indexSet: true, wantErr: `--shard-index "4": want a number from 0 to 3`},
		{name: "negative index", count: 4, index: -1, indexSet: true, wantErr: `--shard-index "-1"`},
		{name: "env not a number", count: 4, env: "x", wantErr: `JOB_COMPLETION_INDEX "x": want a number from 0 to 3`},
		{name: "env too large", count: 2, env: "2", wantErr: `JOB_COMPLETION_INDEX "2"`},
		{name: "no shards", count: 0, wantErr: `--shards "0": must be at least 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveShard(tc.count, tc.index, tc.indexSet, env(tc.env))
			if tc.wantErr != "" {
				var se *SpecError
				if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ResolveShard(%d, %d, %v, %q) = %v; want a *SpecError containing %q", tc.count, tc.index, tc.indexSet, tc.env, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ResolveShard(%d, %d, %v, %q) = %v, %v; want %v", tc.count, tc.index, tc.indexSet, tc.env, got, err, tc.want)
			}
		})
	}
}

func TestShardCheckRefusesEmptyShards(t *testing.T) {
	for i := range 5 {
		err := Shard{Count: 5, Index: i}.Check(3)
		if err == nil || !strings.Contains(err.Error(), "use at most 3 shards") {
			t.Fatalf("Check of shard %d of 5 of 3 devices = %v; want an error saying at most 3 shards", i, err)
		}
	}
}
