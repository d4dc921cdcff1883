// Command iotctl is a command-line tool for Azure IoT Hub: a device
// simulator, a service client and a local IoT Hub emulator in one
// binary. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/iotctl/iotctl/cmd"
)

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	streams := cmd.SystemStreams()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		// Through the streams, so that a live status line prints it
		// above itself rather than redraw over it.
		streams.Notice("interrupt received, shutting down")
		cancel()
		<-sigs
		os.Exit(130)
	}()
	code := cmd.Execute(ctx, os.Args[1:], streams)
	cancel()
	os.Exit(code)
}
