package ingest

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIDWindow(t *testing.T) {
	w := newIDWindow(1000, 100)
	parts := w.Assign(map[int32]partStart{0: {ms: 10_000}, 1: {ms: 10_000}})
	a, b := parts[0], parts[1]
	require.False(t, a.Check("x", 1, 10_000))
	require.True(t, b.Check("x", 7, 11_000), "a copy on another partition exactly the span later is a duplicate")
	require.True(t, a.Check("x", 2, 9_000), "so is one exactly the span earlier")
	require.False(t, a.Check("x", 1, 10_000), "the record that claimed the id is not a duplicate of itself")
	require.False(t, b.Check("y", 8, 10_000))
	require.False(t, a.Check("y", 3, 11_001), "past the span the id counts again")
	require.True(t, b.Check("y", 9, 12_000), "and its new claim is the one later copies meet")
	require.True(t, b.Check("y", 10, 10_500), "a copy within the span of the new claim")
	require.False(t, a.Check("y", 3, 11_001), "its claiming record read again")
	require.Equal(t, 1, w.Len(), "x, claimed at 10,000, is gone: both partitions are past 11,000")
	require.Equal(t, 1, w.ClaimedBy(0), "y")
	require.Zero(t, w.ClaimedBy(1))

	off := newIDWindow(0, 10)
	p := off.Assign(map[int32]partStart{0: {}})[0]
	require.False(t, p.Check("x", 1, 1))
	require.False(t, p.Check("x", 2, 2))
	require.Zero(t, off.Len())
}

// TestIDWindowLaggingPartition replays an hour-old backlog on one
// partition while another is live: the live partition's ids stay until the
// lagging one has gone past them, and the lagging one's stay for it.
func TestIDWindowLaggingPartition(t *testing.T) {
	const minute = 60_000
	const now = 1_800_000_000_000
	w := newIDWindow(minute, 1_000_000)
	parts := w.Assign(map[int32]partStart{0: {ms: now}, 1: {ms: now - 60*minute}, 2: {ms: now - 120*minute, caughtUp: true}})
	live, lag, idle := parts[0], parts[1], parts[2]

	// The live partition goes on for 30 minutes, a record a second.
	for i := int64(0); i < 1800; i++ {
		require.False(t, live.Check(fmt.Sprint("live-", i), i, now+i*1000))
	}
	// The lagging one reads its backlog, a record a second, up to now.
	for i := int64(0); i < 3600; i++ {
		require.False(t, lag.Check(fmt.Sprint("lag-", i), i, now-60*minute+i*1000))
	}
	require.True(t, lag.Check("lag-3599", 5000, now-1000), "its own recent ids are held")
	require.Equal(t, 1800+minute/1000+1, w.Len(), "the live ids, and the lagging partition's last minute")
	// Reaching the live partition's first records, it meets them.
	require.True(t, lag.Check("live-5", 5001, now+5000))
	require.True(t, lag.Check("live-65", 5002, now+5000), "exactly the span apart")
	require.False(t, lag.Check("live-100", 5003, now+5000), "more than the span apart")

	// Once it is past them they go.
	for i := int64(0); i < 1800; i++ {
		lag.Check(fmt.Sprint("lag-late-", i), 6000+i, now+i*1000)
	}
	require.True(t, live.Check("live-1799", 9000, now+1800*1000))
	require.False(t, live.Check("live-1", 9001, now+1800*1000))
	require.Less(t, w.Len(), 300, "only the last minute of both is left")

	// The idle partition held nothing back (its start, two hours ago, would
	// have kept the lagging partition's whole backlog); once it reads, it
	// does, while the lagging partition, caught up, waits.
	require.False(t, idle.Check("idle-0", 0, now+1700*1000))
	lag.Idle()
	for i := int64(0); i < 600; i++ {
		live.Check(fmt.Sprint("live-late-", i), 10_000+i, now+1800*1000+i*1000)
	}
	require.GreaterOrEqual(t, w.ClaimedBy(0), 600, "the live ids since the idle partition's time")
	require.True(t, idle.Check("live-late-0", 1, now+1700*1000+minute))
}

func TestIDWindowCap(t *testing.T) {
	w := newIDWindow(3_600_000, 10)
	parts := w.Assign(map[int32]partStart{0: {}, 1: {}})
	for i := int64(0); i < 25; i++ {
		require.False(t, parts[0].Check(fmt.Sprint("a", i), i, i))
	}
	require.Equal(t, 10, w.ClaimedBy(0))
	require.Equal(t, uint64(15), w.TakeTruncated())
	require.Zero(t, w.TakeTruncated(), "taken")
	for i := int64(0); i < 5; i++ {
		require.False(t, parts[1].Check(fmt.Sprint("b", i), i, i))
	}
	require.Equal(t, 5, w.ClaimedBy(1), "each partition has its own cap")
	require.Equal(t, 15, w.Len())
	require.Zero(t, w.TakeTruncated())
	require.False(t, parts[1].Check("a0", 100, 30), "truncated ids are forgotten")
	require.True(t, parts[1].Check("a24", 101, 31))
}

// TestIDWindowRemember is the window a new generation starts with: the
// stored records of its partitions, tagged with their positions.
func TestIDWindowRemember(t *testing.T) {
	w := newIDWindow(1000, 100)
	w.Remember("old", 0, 1, 8_000)
	w.Remember("stored", 0, 5, 9_500)
	w.Remember("stored", 1, 3, 9_600) // a copy stored twice keeps the first claim
	parts := w.Assign(map[int32]partStart{0: {ms: 10_000}, 1: {ms: 10_000}})
	require.False(t, parts[0].Check("stored", 5, 9_500), "the stored record read again keeps its place")
	require.True(t, parts[1].Check("stored", 4, 10_000), "a copy on another partition")
	require.Equal(t, 1, w.Len(), "ids older than the span before the partitions' start are gone")
	require.False(t, parts[1].Check("old", 6, 10_000))
}

// TestIDWindowConcurrent sends every id to four partitions' goroutines at
// once: each id is accepted exactly once. Run with -race.
func TestIDWindowConcurrent(t *testing.T) {
	const ids, partitions = 20_000, 4
	w := newIDWindow(60_000, 1_000_000)
	starts := map[int32]partStart{}
	for p := int32(0); p < partitions; p++ {
		starts[p] = partStart{ms: 1_000}
	}
	parts := w.Assign(starts)
	accepted := make([]atomic.Int32, ids)
	var wg sync.WaitGroup
	for p := int32(0); p < partitions; p++ {
		wg.Add(1)
		go func(h *windowPart) {
			defer wg.Done()
			for i := 0; i < ids; i++ {
				k := (i + int(h.partition)*ids/partitions) % ids // each goroutine starts elsewhere
				if !h.Check(fmt.Sprint("id-", k), int64(i), int64(1_000+i/10)) {
					accepted[k].Add(1)
				}
			}
		}(parts[p])
	}
	wg.Wait()
	for k := range accepted {
		require.Equal(t, int32(1), accepted[k].Load(), "id %d", k)
	}
	require.Equal(t, ids, w.Len())
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
		p := w.Assign(map[int32]partStart{0: {}})[0]
		for j, id := range ids {
			p.Check(id, int64(j), int64(j/200))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/id")
		runtime.KeepAlive(w)
	}
}
