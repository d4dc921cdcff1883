// Package goeventhubs tests the local hub's Event Hub-compatible
// endpoint against the official Go Event Hubs SDK
// (github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2) and
// against go-amqp used directly. It is a module of its own so that the
// SDK's dependencies (its go-amqp version among them) stay out of the
// main module's go.mod; `go test ./...` at the repository root does
// not enter it. Run it with
//
//	cd test/interop/goeventhubs && go test -race ./...
//
// The tests start the hub in process on 127.0.0.1 with a free port and
// need nothing else. Set IOTCTL_SKIP_INTEROP=1 to skip them, as the
// other interoperability tests.
package goeventhubs
