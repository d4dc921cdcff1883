// Package telemetry is the local hub's telemetry store: a bounded,
// partitioned log of the messages devices send, which the hub's Event
// Hub-compatible endpoint and the tests read. It is kept on disk (Open)
// or in memory (New, NewMemory).
//
//	log, err := telemetry.Open(dir, nil) // or telemetry.NewMemory(nil)
//	ev, err := log.Append(telemetry.Event{DeviceID: "dev1", Message: m})
//	evs, changed := log.Read(ev.Partition, 0, 100) // wait on changed for more
//	err = log.Close()
//
// # On disk
//
// Append returns only once its event is synced to disk, so the hub
// acknowledges (MQTT PUBACK) only what a crash cannot take back.
// Sequence numbers, and so offsets, which are the sequence numbers in
// decimal, carry on across restarts: a monitor that resumes after the
// last sequence number it saw gets every newer event. Events are
// dropped, oldest first, beyond Options.Retention (IoT Hub's one day by
// default), MaxBytes and MaxEvents.
//
// Storage is a pebble database (github.com/cockroachdb/pebble, the
// storage engine of CockroachDB), one key per event: 'e', the partition
// and the sequence number, big-endian, so a partition is one ordered
// range read with one iterator. Pebble was chosen over bbolt, already
// the registry's store, because the log is append-only at one end and
// trimmed at the other: pebble appends a batch to its write-ahead log
// with one sync and drops an expired range with one range deletion,
// whose space compaction gives back; bbolt rewrites B+tree pages and
// syncs twice on every commit and never shrinks its file. Append-only
// log libraries (one file of records per log) were set aside for their
// handling of a torn tail after a crash and for lacking partitions in
// one store. The cost is the binary's size: pebble adds about 15 MB.
//
// Group commit: appends join an open group; one goroutine takes the
// group, numbers its events in order, writes them in one pebble batch
// committed with Sync, and wakes them all: while one sync runs, the
// next group fills, so devices publishing at once share syncs. Pebble's
// own commit pipeline also groups concurrent synced batches, but it
// could make event n+1 visible before event n were numbered outside
// it; numbering in the one goroutine keeps every partition gap-free and
// lets readers see an event only once it is durable. AppendAsync lets a
// caller go on while its event waits for the next sync (the hub reads a
// device's next publishes meanwhile and sends each PUBACK from the
// callback), so one device's publishes in flight share a sync too.
//
// # In memory
//
// New and NewMemory keep events in memory, each with its properties in
// their encoded bag; nothing survives the process.
package telemetry
