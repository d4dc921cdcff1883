// Package benchkit holds what the benchmark programs under bench/ share:
// building the iotctl binary from this repository, running `iotctl hub
// serve --in-memory -o json` as a child process and reading its
// start-up JSON, stopping child processes, reading a process's memory
// and CPU time from /proc (Linux), running n jobs on p workers, medians
// and percentiles of timings, connecting simulated devices over
// MQTT/TLS with a window of QoS 1 publishes in flight, and preparing the
// environment and the Node SDKs of test/interop.
//
// It is for the benchmarks only: nothing outside bench/ imports it, and
// its errors keep the short, operation-first wording the programs
// print after their own name ("bench/invoke: go build: ...").
//
//	tmp, _ := os.MkdirTemp("", "bench-")
//	defer os.RemoveAll(tmp)
//	bin, err := benchkit.Build(ctx, tmp)
//	if err != nil { ... }
//	hub, err := benchkit.StartHub(ctx, bin, nil) // 127.0.0.1:0, this process's environment
//	if err != nil { ... }
//	defer hub.Stop()
//	rss0 := benchkit.RSSKB(hub.PID())
//	err = benchkit.Parallel(n, 16, func(i int) error { ... }) // n jobs, 16 at a time
//	fmt.Println(benchkit.Median(times), benchkit.Percentile(times, 90), benchkit.RSSKB(hub.PID())-rss0)
package benchkit
