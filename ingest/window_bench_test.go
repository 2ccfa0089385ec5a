package ingest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// benchIDs are the ids of a benchmark's partition p: unique across
// partitions, shaped like UUIDs.
func benchIDs(p, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, p, i*7919)
	}
	return ids
}

// runWindowBench feeds each partition's goroutine its stream of ids: Kafka
// time moves 2 ms a record, so the window holds about 450,000 ids a
// partition at steady state, and every 50th record is a retry of the id
// sent ten records before. The windows are filled to that steady state
// before the clock starts; b.N is the total over all partitions.
func runWindowBench(b *testing.B, partitions int) {
	const n, warm = 1 << 20, 600_000
	ids := make([][]string, partitions)
	for p := range ids {
		ids[p] = benchIDs(p, n)
	}
	checks := benchWindows(partitions, 15*60_000, 1_000_000)
	run := func(from, count int) {
		var wg sync.WaitGroup
		for p := 0; p < partitions; p++ {
			wg.Add(1)
			go func(p int) {
				defer wg.Done()
				check, own := checks[p], ids[p]
				for k := from; k < from+count; k++ {
					id := own[k%n]
					if k%50 == 49 {
						id = own[(k-10)%n]
					}
					check(id, int64(k), int64(k)*2)
				}
			}(p)
		}
		wg.Wait()
	}
	run(0, warm)
	b.ReportAllocs()
	b.ResetTimer()
	run(warm, (b.N+partitions-1)/partitions)
}

// BenchmarkWindowCheck is the retry window's cost per record for one
// partition's fetch goroutine.
func BenchmarkWindowCheck(b *testing.B) { runWindowBench(b, 1) }

// BenchmarkWindowCheckParallel4 is the cost per record with four
// partitions' goroutines checking at once.
func BenchmarkWindowCheckParallel4(b *testing.B) { runWindowBench(b, 4) }

// BenchmarkDecodeStage measures the decode stage per message: decoding,
// the retry window, appending to the batch's columns and adding up its
// reported calls.
func BenchmarkDecodeStage(b *testing.B) {
	const n = 100_000
	g := NewGenerator(GeneratorConfig{Count: n, Users: 5000, Tenants: 5, Endpoints: 40, FeatureShare: 0.02})
	now := time.Now()
	msgs := make([]kafka.Message, 0, n)
	var r Record
	for i := 0; g.Next(&r); i++ {
		v := r.AppendJSON(nil)
		msgs = append(msgs, kafka.Message{Value: v, Time: now.Add(time.Duration(i) * time.Millisecond)})
		if i%50 == 49 { // a retry
			msgs = append(msgs, kafka.Message{Value: v, Time: now.Add(time.Duration(i) * time.Millisecond)})
		}
	}
	bt := benchBatcher()
	b.ReportAllocs()
	b.ResetTimer()
	batch := &Batch{Topic: "api-usage"}
	var bytes int64
	for i := 0; i < b.N; i++ {
		k := i % len(msgs)
		if k == 0 {
			batch.calls.list(&batch.Usage) // what the load stage hands the limiter
			batch.reset(int64(i))
		}
		m := msgs[k]
		m.Offset = int64(i)
		// Each pass over the messages is 16 minutes later: its ids are new
		// to the window again.
		m.Time = m.Time.Add(time.Duration(i/len(msgs)) * 16 * time.Minute)
		bt.add(batch, m)
		bytes += int64(len(m.Value))
	}
	b.SetBytes(bytes / int64(b.N))
}

// benchWindows gives each partition its check function: the partitions'
// handles on one shared window.
func benchWindows(partitions int, spanMs int64, maxIDs int) []func(id string, offset, ts int64) bool {
	w := newIDWindow(spanMs, maxIDs)
	starts := map[int32]partStart{}
	for p := 0; p < partitions; p++ {
		starts[int32(p)] = partStart{}
	}
	parts := w.Assign(starts)
	out := make([]func(string, int64, int64) bool, partitions)
	for p := range out {
		out[p] = parts[int32(p)].Check
	}
	return out
}

func benchBatcher() *batcher {
	w := newIDWindow(15*60_000, 1_000_000)
	return &batcher{topic: "api-usage", partition: 0, dec: NewDecoder(Policy{}), window: w.Assign(map[int32]partStart{0: {}})[0]}
}
