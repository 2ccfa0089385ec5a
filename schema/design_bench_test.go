package schema

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// BenchmarkRollupDesign measures the engine's insert rate into a raw table
// under different rollup designs, with the same rows (10 inserts of 100,000
// rows, each one minute of traffic from 5 tenants × 5,000 users × 40
// endpoints). It is how the shipped design was chosen:
//
//	go test ./schema -run '^$' -bench RollupDesign -benchtime 1x
func BenchmarkRollupDesign(b *testing.B) {
	db := storetest.Open(b)
	ctx := context.Background()
	const rows, batch = 1_000_000, 100_000
	raw := `CREATE TABLE %s (id String, event_time DateTime64(3, 'UTC'), tenant_id LowCardinality(String), user_id String,
		endpoint LowCardinality(String), method LowCardinality(String), status_code UInt16, response_time_us UInt64,
		request_bytes UInt64, response_bytes UInt64, kafka_offset Int64)
		ENGINE = MergeTree PARTITION BY toYYYYMMDD(event_time) ORDER BY (tenant_id, user_id, event_time)`
	must := func(q string) {
		if err := db.Exec(ctx, q); err != nil {
			b.Fatalf("%v\n%s", err, q)
		}
	}
	must(fmt.Sprintf(raw, "src"))
	g := ingest.NewGenerator(ingest.GeneratorConfig{Seed: 42, Tenants: 5, Users: 5000, Endpoints: 40, Count: rows,
		Start: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Span: rows / batch * time.Minute})
	var cols ingest.UsageColumns
	var r ingest.Record
	for g.Next(&r) {
		cols.Append(&r)
	}
	blk := store.NewBlock()
	for _, c := range cols.Block().Columns() {
		if c.Name != "ingested_at" && c.Name != "api_key_id" && c.Name != "metadata" && c.Name != "kafka_topic" && c.Name != "kafka_partition" {
			blk.Add(c.Name, c.Type, c.Data)
		}
	}
	if err := db.Insert(ctx, "src", blk, store.InsertOptions{}); err != nil {
		b.Fatal(err)
	}

	sums := `count() AS requests, countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
		countIf(status_code >= 500) AS errors_5xx, sum(response_time_us) AS rt_sum, max(response_time_us) AS rt_max,
		sum(request_bytes) AS req_bytes, sum(response_bytes) AS resp_bytes`
	sumCols := `requests SimpleAggregateFunction(sum, UInt64), errors_4xx SimpleAggregateFunction(sum, UInt64),
		errors_5xx SimpleAggregateFunction(sum, UInt64), rt_sum SimpleAggregateFunction(sum, UInt64),
		rt_max SimpleAggregateFunction(max, UInt64), req_bytes SimpleAggregateFunction(sum, UInt64),
		resp_bytes SimpleAggregateFunction(sum, UInt64)`
	sketches := map[string][2]string{
		"":        {"", ""},
		"dd":      {", q AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), UInt64)", ", quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS q"},
		"tdigest": {", q AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), UInt64)", ", quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(response_time_us) AS q"},
		"timing":  {", q AggregateFunction(quantilesTiming(0.5, 0.9, 0.95, 0.99), UInt32)", ", quantilesTimingState(0.5, 0.9, 0.95, 0.99)(toUInt32(intDiv(response_time_us, 1000))) AS q"},
	}
	type rollup struct{ keys, sketch string }
	perUser := "tenant_id, user_id, endpoint, method, status_code"
	perEndpoint := "tenant_id, endpoint, method, status_class"
	designs := []struct {
		name    string
		rollups []rollup
	}{
		{"no_views", nil},
		{"per_user_counts_only", []rollup{{perUser, ""}}},
		{"shipped:per_user_counts+per_endpoint_dd", []rollup{{perUser, ""}, {perEndpoint, "dd"}}},
		{"per_user_counts+per_endpoint_tdigest", []rollup{{perUser, ""}, {perEndpoint, "tdigest"}}},
		{"per_user_counts+per_endpoint_timing", []rollup{{perUser, ""}, {perEndpoint, "timing"}}},
		{"per_user_dd", []rollup{{perUser, "dd"}}},
		{"per_user_tdigest", []rollup{{perUser, "tdigest"}}},
		{"per_user_counts+per_endpoint_dd+user_latency_dd", []rollup{{perUser, ""}, {perEndpoint, "dd"}, {"tenant_id, user_id", "dd"}}},
	}
	for i, d := range designs {
		b.Run(d.name, func(b *testing.B) {
			b.StopTimer()
			for n := 0; n < b.N; n++ {
				t := fmt.Sprintf("raw_%d_%d", i, n)
				must(fmt.Sprintf(raw, t))
				for j, r := range d.rollups {
					sel := strings.Replace(r.keys, "status_class", "intDiv(status_code, 100) AS status_class", 1)
					colTypes := strings.NewReplacer("tenant_id", "tenant_id LowCardinality(String)", "user_id", "user_id String",
						"endpoint", "endpoint LowCardinality(String)", "method", "method LowCardinality(String)",
						"status_code", "status_code UInt16", "status_class", "status_class UInt8").Replace(r.keys)
					for _, grain := range []string{"toStartOfHour", "toStartOfDay"} {
						target := fmt.Sprintf("%s_r%d_%s", t, j, grain[9:])
						must(fmt.Sprintf("CREATE TABLE %s (%s, bucket DateTime('UTC'), %s%s) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(bucket) ORDER BY (%s, bucket)",
							target, colTypes, sumCols, sketches[r.sketch][0], r.keys))
						must(fmt.Sprintf("CREATE MATERIALIZED VIEW %s_mv TO %s AS SELECT %s, %s(event_time) AS bucket, %s%s FROM %s GROUP BY %s, bucket",
							target, target, sel, grain, sums, sketches[r.sketch][1], t, r.keys))
					}
				}
				b.StartTimer()
				start := time.Now()
				for k := 0; k < rows/batch; k++ { // one minute of traffic per insert
					must(fmt.Sprintf("INSERT INTO %s SELECT * FROM src WHERE event_time >= toDateTime64('2026-11-27 10:%02d:00', 3, 'UTC') AND event_time < toDateTime64('2026-11-27 10:%02d:00', 3, 'UTC')", t, k, k+1))
				}
				b.ReportMetric(rows/time.Since(start).Seconds(), "rows/s")
				b.StopTimer()
			}
		})
	}
}
