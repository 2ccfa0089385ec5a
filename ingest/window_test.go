package ingest

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIDWindow(t *testing.T) {
	w := newIDWindow(1000, 100)
	require.False(t, w.Check("a", 10_000))
	require.True(t, w.Check("a", 10_500), "a retry within the window")
	require.False(t, w.Check("b", 10_600))
	require.True(t, w.Check("a", 11_000), "exactly at the window's edge is inside")
	require.False(t, w.Check("a", 11_001), "past the window the id counts again")
	require.True(t, w.Check("a", 11_100))
	// Out-of-order Kafka timestamps use the latest time seen.
	require.True(t, w.Check("b", 9_000))
	require.Equal(t, 2, w.Len())
	require.False(t, w.Check("c", 20_000))
	require.Equal(t, 1, w.Len(), "old ids are evicted as time moves")
}

func TestIDWindowCapAndOff(t *testing.T) {
	w := newIDWindow(60_000, 10)
	for i := 0; i < 25; i++ {
		require.False(t, w.Check(fmt.Sprint(i), int64(i)))
	}
	require.Equal(t, 10, w.Len())
	require.Equal(t, uint64(15), w.truncated)
	require.False(t, w.Check("0", 30), "truncated ids are forgotten")
	require.True(t, w.Check("24", 31))

	off := newIDWindow(0, 10)
	require.False(t, off.Check("x", 1))
	require.False(t, off.Check("x", 2))
}

func TestIDWindowRestore(t *testing.T) {
	w := newIDWindow(1000, 100)
	w.Restore("old", 8_000)
	w.Restore("recent", 9_500)
	w.Settle()
	require.Equal(t, 1, w.Len())
	require.True(t, w.Check("recent", 10_000))
	require.False(t, w.Check("old", 10_000))
}

// BenchmarkIDWindowMemory measures what one remembered id costs.
func BenchmarkIDWindowMemory(b *testing.B) {
	const n = 2_000_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7919)
	}
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := newIDWindow(15*60_000, n)
		for j, id := range ids {
			w.Check(id, int64(j/200))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/id")
		runtime.KeepAlive(w)
	}
}
