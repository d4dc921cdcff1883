package telemetry

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/iotctl/iotctl/pkg/message"
)

// BenchmarkLogMemory reports the live heap a stored event costs: the
// quickstart's message (a 54-byte body, content type, encoding and one
// application property) parsed from its MQTT topic as the hub does,
// from 100 devices whose ids and session strings are shared as the
// hub's sessions share them.
//
//	go test -run '^$' -bench LogMemory ./pkg/hub/telemetry
func BenchmarkLogMemory(b *testing.B) {
	const n = 100_000
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "dev" + strconv.Itoa(i)
	}
	body := `{"temperature": 25.123456789,"humidity": 65.12345678}`
	for range b.N {
		l := New(4, n, 0, nil)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			id := ids[i%len(ids)]
			t, err := message.ParseTopic("devices/" + id + "/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=false")
			if err != nil {
				b.Fatal(err)
			}
			t.Message.Body = []byte(body)
			_, _ = l.Append(Event{DeviceID: id, AuthMethod: "sas", GenerationID: "638000000000000001", Message: t.Message})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "live-B/event")
		runtime.KeepAlive(l)
	}
}
