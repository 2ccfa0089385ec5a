package ingest

import "testing"

// BenchmarkUsageBlock measures turning records into a Native block, the
// Go side of every bulk load.
func BenchmarkUsageBlock(b *testing.B) {
	g := NewGenerator(GeneratorConfig{Count: 100_000, Users: 5000, Tenants: 5, Endpoints: 40})
	recs := make([]Record, 0, 100_000)
	var r Record
	for g.Next(&r) {
		recs = append(recs, r)
	}
	var cols UsageColumns
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cols.Reset()
		for j := range recs {
			cols.Append(&recs[j])
		}
		var err error
		buf, err = cols.Block().AppendNative(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(len(buf))/float64(len(recs)), "bytes/row")
}
