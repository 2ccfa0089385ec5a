package store_test

import (
	"context"
	"testing"

	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// BenchmarkQueryRows streams a million rows of mixed types through the
// embedded driver's decoder and Scan.
func BenchmarkQueryRows(b *testing.B) {
	d := storetest.Open(b)
	ctx := context.Background()
	const n = 1_000_000
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rows, err := d.Query(ctx, `SELECT number, toString(number), toDateTime64(number, 3, 'UTC'), number / 3
			FROM numbers({n:UInt64})`, store.Named("n", n))
		if err != nil {
			b.Fatal(err)
		}
		var (
			u uint64
			s string
			f float64
			a any
		)
		for rows.Next() {
			if err := rows.Scan(&u, &s, &a, &f); err != nil {
				b.Fatal(err)
			}
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		rows.Close()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}
