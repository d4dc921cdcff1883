package amqpfront

import (
	"fmt"
	"math"
	"testing"
)

// TestPropStringWritesIntegersAsFmt checks that the integer cases of
// propString write what fmt.Sprint writes, which they replace.
func TestPropStringWritesIntegersAsFmt(t *testing.T) {
	for _, v := range []any{int64(math.MinInt64), int64(-1), int64(0), int64(math.MaxInt64), int32(math.MinInt32), int32(42),
		int16(-300), int8(-128), uint64(math.MaxUint64), uint32(math.MaxUint32), uint16(65535), uint8(255)} {
		if got, want := propString(v), fmt.Sprint(v); got != want {
			t.Errorf("propString(%T(%v)) = %q; want %q", v, v, got, want)
		}
	}
}
