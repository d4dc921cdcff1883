// Command fleetmem shows where a simulated fleet's memory goes: it
// starts `iotctl hub serve --in-memory` as a separate process, creates
// the devices, runs the fleet engine (pkg/simulate, the quickstart
// device at one message per second) in this process, and once every
// device is connected and a few seconds have passed prints, per
// device, the goroutines, the goroutine stacks, the heap in use and
// live after a forced collection, and this process's resident memory.
// It also prints the runtime's memory classes (runtime/metrics), which
// add up to what the runtime holds of the RSS. With -heap and
// -goroutines it also writes the profiles. With
// -transport amqp the devices share connections (-devices-per-connection)
// as `device simulate --transport amqp` does; -telemetry-only makes
// them only send.
//
//	go run ./bench/fleetmem -devices 2000
//	go run ./bench/fleetmem -devices 2000 -transport amqp -telemetry-only -heap /tmp/heap.prof
//
// bench/fleet measures the `iotctl device simulate` process from
// outside; this program explains its figure.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/iotctl/iotctl/bench/internal/benchkit"
	"github.com/iotctl/iotctl/pkg/device"
	"github.com/iotctl/iotctl/pkg/simulate"
)

func main() {
	n := flag.Int("devices", 2000, "fleet size")
	settle := flag.Duration("settle", 5*time.Second, "wait after all are connected before measuring")
	bin := flag.String("iotctl", "", "iotctl binary for the hub (default: build one from this repository)")
	heap := flag.String("heap", "", "write a heap profile here")
	gor := flag.String("goroutines", "", "write the goroutine profile (text) here")
	transport := flag.String("transport", "mqtt", "the devices' transport: mqtt, or amqp for devices that share connections")
	per := flag.Int("devices-per-connection", 0, "with -transport amqp, devices on each connection (0: the simulator's default)")
	telemetryOnly := flag.Bool("telemetry-only", false, "devices only send: no methods, C2D or twin")
	flag.Parse()
	tr, err := device.ParseTransport(*transport)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetmem:", err)
		os.Exit(2)
	}
	if *heap != "" {
		// Every 4 KB allocated, not every 512 KB: a device's own
		// objects are a few KB, and the default rate leaves them out.
		runtime.MemProfileRate = 4096
	}
	fl := fleetFlags{transport: tr, perConn: *per, telemetryOnly: *telemetryOnly}
	if err := run(*n, *settle, *bin, *heap, *gor, fl); err != nil {
		fmt.Fprintln(os.Stderr, "fleetmem:", err)
		os.Exit(1)
	}
}

// fleetFlags are the fleet's options besides its size.
type fleetFlags struct {
	transport     device.Transport
	perConn       int
	telemetryOnly bool
}

func run(n int, settle time.Duration, bin, heapFile, gorFile string, fl fleetFlags) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if bin == "" {
		dir, err := os.MkdirTemp("", "fleetmem-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if bin, err = benchkit.Build(ctx, dir); err != nil {
			return err
		}
	}
	h, err := benchkit.StartHub(ctx, bin, nil)
	if err != nil {
		return err
	}
	defer h.Stop()
	ids := simulate.FleetIDs("mem-", n)
	keyList, err := h.CreateDevices(ctx, ids)
	if err != nil {
		return err
	}
	keys := simulate.KeyMap{}
	for i, id := range ids {
		keys[id] = keyList[i]
	}

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	var firstErr error
	errs := make(chan string, 1)
	f, err := simulate.New(&simulate.Options{
		Device:    device.Options{HostName: h.Info.HostName, CAFile: h.Info.CAFile, Transport: fl.transport},
		DeviceIDs: ids, Keys: keys,
		DevicesPerConnection: fl.perConn, TelemetryOnly: fl.telemetryOnly,
		Sink: func(e simulate.Event) {
			if e.Error != "" {
				select {
				case errs <- e.DeviceID + ": " + e.Error:
				default:
				}
			}
		},
	})
	if err != nil {
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { f.Run(fctx); close(done) }()
	defer func() { stop(); <-done }()
	start := time.Now()
	for f.Stats().Connected < int64(n) {
		select {
		case e := <-errs:
			if firstErr == nil {
				fmt.Fprintln(os.Stderr, "first device error:", e)
				firstErr = fmt.Errorf("a device failed: %s", e)
			}
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("only %d of %d connected", f.Stats().Connected, n)
		}
	}
	fmt.Printf("%d devices connected in %.1fs; measuring after %v\n", n, time.Since(start).Seconds(), settle)
	time.Sleep(settle)

	var now runtime.MemStats
	runtime.ReadMemStats(&now)
	per := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / 1024 / float64(n) }
	fmt.Printf("goroutines per device:        %.2f\n", float64(runtime.NumGoroutine()-g0)/float64(n))
	fmt.Printf("stack in use per device:      %.1f KB\n", per(before.StackInuse, now.StackInuse))
	fmt.Printf("heap in use per device:       %.1f KB (as it runs)\n", per(before.HeapInuse, now.HeapInuse))
	fmt.Printf("process RSS per device:       %.1f KB (runtime and test set-up included)\n", float64(benchkit.RSSKB(os.Getpid()))/float64(n))
	printClasses(n)
	runtime.GC()
	runtime.ReadMemStats(&now)
	fmt.Printf("live heap per device:         %.1f KB (after a forced collection)\n", per(before.HeapAlloc, now.HeapAlloc))
	fmt.Printf("acknowledged messages so far: %d, errors: %d\n", f.Stats().Acked, f.Stats().Errors)
	if heapFile != "" {
		if err := writeProfile(heapFile, func(fh *os.File) error { return pprof.WriteHeapProfile(fh) }); err != nil {
			return err
		}
	}
	if gorFile != "" {
		if err := writeProfile(gorFile, func(fh *os.File) error { return pprof.Lookup("goroutine").WriteTo(fh, 1) }); err != nil {
			return err
		}
	}
	return firstErr
}

// printClasses prints, per device, where the runtime's memory is
// (runtime/metrics' /memory/classes/, the parts of
// /memory/classes/total:bytes): what the process RSS is made of, before
// a forced collection changes it.
func printClasses(n int) {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") && d.Kind == metrics.KindUint64 {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	for _, s := range samples {
		name := strings.TrimSuffix(strings.TrimPrefix(s.Name, "/memory/classes/"), ":bytes")
		fmt.Printf("  %-32s %6.1f KB per device\n", name, float64(s.Value.Uint64())/1024/float64(n))
	}
}

func writeProfile(name string, write func(*os.File) error) error {
	fh, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
