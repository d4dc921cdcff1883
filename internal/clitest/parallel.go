package clitest

import (
	"flag"
	"runtime"
	"strconv"
)

// RaiseParallel, from TestMain, lets two parallel tests per CPU run at
// once unless the command line set -test.parallel (go test -parallel).
// Go's default, one per CPU (GOMAXPROCS), suits tests that keep a CPU
// busy; the run tests of iotctl's commands mostly wait, on a hub over
// loopback and on their commands' --timeout, so on a 2-CPU machine the
// default runs them nearly one after the other.
func RaiseParallel() {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", strconv.Itoa(2*runtime.GOMAXPROCS(0)))
	}
}
