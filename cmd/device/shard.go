package device

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/iotctl/iotctl/cmd/cmdutil"
	"github.com/iotctl/iotctl/pkg/simulate"
)

// shardFlags are a fleet's --shards and --shard-index: which slice of
// the fleet this process simulates.
type shardFlags struct {
	count    int
	index    int
	indexSet bool
	shard    simulate.Shard
	// total is the size of the whole fleet, once known.
	total int
}

func (s *shardFlags) add(fl *pflag.FlagSet) {
	fl.IntVar(&s.count, "shards", 1, "cut the fleet into this many disjoint slices, one per process (e.g. per pod of a Kubernetes Indexed Job)")
	fl.IntVar(&s.index, "shard-index", 0, "which slice this process simulates, 0 to --shards - 1 (default $"+simulate.JobCompletionIndexEnv+" when --shards is more than 1)")
}

// resolve checks the flags (indexSet says whether --shard-index was
// given); fleet says whether the command simulates a fleet, which
// shards need. With forJob (--k8s-job) this process runs no shard: it
// takes the first, to check the flags as each pod will.
func (s *shardFlags) resolve(fleet, forJob bool) error {
	if (s.count != 1 || s.indexSet) && !fleet {
		return cmdutil.Usagef("--shards and --shard-index cut a fleet: give --devices N (or --keys-file) too")
	}
	indexSet := s.indexSet || forJob
	sh, err := simulate.ResolveShard(s.count, s.index, indexSet, os.Getenv)
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	s.shard = sh
	return nil
}

// fleetIDs returns this shard's ids of the fleet {prefix}00001 to
// {prefix}{n}, making no others.
func (s *shardFlags) fleetIDs(prefix string, n int) ([]string, error) {
	s.total = n
	if err := s.shard.Check(n); err != nil {
		return nil, &cmdutil.UsageError{Err: err}
	}
	from, to := s.shard.Range(n)
	return simulate.FleetIDRange(prefix, n, from, to), nil
}

// of returns this shard's ids of ids.
func (s *shardFlags) of(ids []string) ([]string, error) {
	s.total = len(ids)
	if err := s.shard.Check(len(ids)); err != nil {
		return nil, &cmdutil.UsageError{Err: err}
	}
	return s.shard.Of(ids), nil
}
