package telemetry

import (
	"sync"
	"testing"
	"time"

	"github.com/iotctl/iotctl/pkg/message"
)

// BenchmarkDiskAppendConcurrent appends from 100 goroutines at once, as
// 100 devices publishing at QoS 1 do, and reports the events per synced
// commit.
//
//	go test -run '^$' -bench DiskAppendConcurrent ./pkg/hub/telemetry
func BenchmarkDiskAppendConcurrent(b *testing.B) {
	l, err := Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const writers = 100
	body := []byte(`{"temperature": 27.5,"humidity": 71.2}`)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < b.N; i += writers {
				if _, err := l.Append(Event{DeviceID: "dev" + string(rune('a'+w%26)) + string(rune('a'+w/26)), AuthMethod: "sas",
					Message: &message.Message{Body: body, ContentType: "application/json", Properties: map[string]string{"temperatureAlert": "false"}}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	b.ReportMetric(float64(b.N)/d.Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/float64(max(1, l.disk.commits.Load())), "events/commit")
}

// BenchmarkMemoryAppendFull appends to a log in memory that holds its
// maximum of events, so that every append drops the oldest, as a hub
// that has run a while does.
//
//	go test -run '^$' -bench MemoryAppendFull -benchmem ./pkg/hub/telemetry
func BenchmarkMemoryAppendFull(b *testing.B) {
	l := NewMemory(nil)
	ev := Event{DeviceID: "dev-1", AuthMethod: "sas", Message: &message.Message{Body: []byte(`{"temperature": 27.5,"humidity": 71.2}`)}}
	for range DefaultMaxEventsInMemory {
		if _, err := l.Append(ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(ev); err != nil {
			b.Fatal(err)
		}
	}
}
