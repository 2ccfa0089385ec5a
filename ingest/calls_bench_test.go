package ingest

import (
	"testing"
	"time"
)

// BenchmarkReportedCalls is what adding up a batch's reported calls
// (LoadedBatch.Calls) costs per API call, on 100,000-record batches of 5
// tenants × 5,000 users × 40 endpoints: spanning one minute, as live
// traffic and `bench load` do, and spanning a day, where nearly every
// record is a key of its own. Each record is appended to the columns
// first, as the decode stage does; "columns" does that alone.
func BenchmarkReportedCalls(b *testing.B) {
	for _, c := range []struct {
		name  string
		span  time.Duration
		calls bool
	}{{"columns", time.Minute, false}, {"minute", time.Minute, true}, {"day", 24 * time.Hour, true}} {
		b.Run(c.name, func(b *testing.B) {
			g := NewGenerator(GeneratorConfig{Count: 100_000, Users: 5000, Tenants: 5, Endpoints: 40, Span: c.span})
			recs := make([]Record, 0, 100_000)
			var r Record
			for g.Next(&r) {
				recs = append(recs, r)
			}
			// One batch first: the next ones reuse its memory, as the
			// ingester's pooled batches do.
			batch := &Batch{}
			add := func(r *Record) {
				batch.Usage.Append(r)
				if c.calls {
					batch.calls.add(&batch.Usage)
				}
			}
			for i := range recs {
				add(&recs[i])
			}
			keys := len(batch.calls.list(&batch.Usage))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				k := i % len(recs)
				if k == 0 {
					keys = len(batch.calls.list(&batch.Usage))
					batch.reset(0)
				}
				add(&recs[k])
			}
			if c.calls {
				b.ReportMetric(float64(keys), "keys/batch")
			}
		})
	}
}
