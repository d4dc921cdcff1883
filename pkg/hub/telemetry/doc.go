// Package telemetry is the local hub's telemetry store: a bounded,
// partitioned, in-memory log of the messages devices send, which the
// hub's Event Hub-compatible endpoint and the tests read.
//
//	log := telemetry.New(4, 0, 0, nil)
//	ev := log.Append(telemetry.Event{DeviceID: "dev1", Message: m})
//	evs, changed := log.Read(ev.Partition, 0, 100) // wait on changed for more
package telemetry
