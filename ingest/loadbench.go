package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/apimeter/apimeter/store"
)

// LoadBenchDB is what the load benchmark needs: a migrated store that can
// also take rows in a text format (for the naive baseline).
type LoadBenchDB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error
	InsertFormat(ctx context.Context, insert, format string, data []byte) error
}

// LoadBenchConfig sizes the benchmark. Zero fields take the defaults.
type LoadBenchConfig struct {
	Rows      int // default 1,000,000
	BatchRows int // default 100,000; each batch spans one minute of traffic
	Tenants   int // default 5
	Users     int // per tenant, default 5,000
	Endpoints int // default 40
}

func (c *LoadBenchConfig) setDefaults() {
	if c.Rows <= 0 {
		c.Rows = 1_000_000
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 100_000
	}
	if c.Tenants <= 0 {
		c.Tenants = 5
	}
	if c.Users <= 0 {
		c.Users = 5000
	}
	if c.Endpoints <= 0 {
		c.Endpoints = 40
	}
}

// LoadBenchResult is one measured way of loading the same rows.
type LoadBenchResult struct {
	Name    string
	Rows    int
	Elapsed time.Duration
	// AllocBytes is what the Go side allocated while loading.
	AllocBytes uint64
}

// RowsPerSecond is the load rate.
func (r LoadBenchResult) RowsPerSecond() float64 { return float64(r.Rows) / r.Elapsed.Seconds() }

// The measured ways, in report order.
const (
	BenchEngine     = "engine INSERT … SELECT through the views (the bound)"
	BenchGoNative   = "Go bulk path: columns → Native block → streaming insert"
	BenchNaiveJSON  = "naive: JSON rows → INSERT FORMAT JSONEachRow"
	BenchEngineRaw  = "engine INSERT … SELECT, raw table only (no views)"
	benchSource     = "bench_source"
	benchRawOnly    = "bench_raw_only"
	benchUsageTable = "usage_events"
)

var benchRollups = []string{"usage_hourly", "usage_daily", "endpoint_hourly", "endpoint_daily"}

// RunLoadBench loads the same generated rows into usage_events, through
// its materialized views, in each measured way, from empty tables each
// time, and reports the rates. All ways use deduplication tokens, as the
// ingester does.
func RunLoadBench(ctx context.Context, db LoadBenchDB, cfg LoadBenchConfig) ([]LoadBenchResult, error) {
	cfg.setDefaults()
	batches := (cfg.Rows + cfg.BatchRows - 1) / cfg.BatchRows
	gen := NewGenerator(GeneratorConfig{
		Seed: 42, Tenants: cfg.Tenants, Users: cfg.Users, Endpoints: cfg.Endpoints,
		Start: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Span: time.Duration(batches) * time.Minute,
		Count: cfg.Rows,
	})
	records := make([]Record, 0, cfg.Rows)
	var r Record
	for gen.Next(&r) {
		records = append(records, r)
	}
	batch := func(k int) []Record { return records[k*cfg.BatchRows : min((k+1)*cfg.BatchRows, len(records))] }
	run := time.Now().UnixNano()

	// Stage the rows in the engine for the engine-side measurements.
	if err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+benchSource+" AS usage_events ENGINE = MergeTree ORDER BY kafka_offset"); err != nil {
		return nil, err
	}
	if err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+benchRawOnly+" AS usage_events ENGINE = MergeTree PARTITION BY toYYYYMMDD(event_time) ORDER BY (tenant_id, user_id, event_time) SETTINGS non_replicated_deduplication_window = 10000"); err != nil {
		return nil, err
	}
	defer db.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+benchSource)
	defer db.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+benchRawOnly)
	if err := db.Exec(ctx, "TRUNCATE TABLE "+benchSource); err != nil {
		return nil, err
	}
	for k := 0; k < batches; k++ {
		var cols UsageColumns
		for i := range batch(k) {
			rec := batch(k)[i]
			rec.Offset = int64(k) // the batch number, to select by
			cols.Append(&rec)
		}
		if err := db.Insert(ctx, benchSource, cols.Block(), store.InsertOptions{}); err != nil {
			return nil, err
		}
	}
	columns := "id, event_time, ingested_at, tenant_id, user_id, api_key_id, endpoint, method, status_code, response_time_us, request_bytes, response_bytes, metadata, kafka_topic, kafka_partition, kafka_offset"

	reset := func() error {
		for _, t := range append([]string{benchUsageTable, benchRawOnly}, benchRollups...) {
			if err := db.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
				return err
			}
		}
		return nil
	}
	measure := func(name string, load func(k int, token string) error) (LoadBenchResult, error) {
		if err := reset(); err != nil {
			return LoadBenchResult{}, err
		}
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for k := 0; k < batches; k++ {
			tok := fmt.Sprintf("bench:%d:%d:%d", run, len(name), k)
			if err := load(k, tok); err != nil {
				return LoadBenchResult{}, fmt.Errorf("%s: %w", name, err)
			}
		}
		el := time.Since(start)
		runtime.ReadMemStats(&after)
		return LoadBenchResult{Name: name, Rows: len(records), Elapsed: el, AllocBytes: after.TotalAlloc - before.TotalAlloc}, nil
	}
	engineInsert := func(table string) func(int, string) error {
		return func(k int, tok string) error {
			return db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s WHERE kafka_offset = %d
				SETTINGS insert_deduplication_token = '%s', deduplicate_blocks_in_dependent_materialized_views = 1`,
				table, columns, columns, benchSource, k, tok))
		}
	}

	var out []LoadBenchResult
	var cols UsageColumns // reused between batches, as the ingester does
	steps := []struct {
		name string
		load func(int, string) error
	}{
		{BenchEngine, engineInsert(benchUsageTable)},
		{BenchGoNative, func(k int, tok string) error {
			cols.Reset()
			for i := range batch(k) {
				cols.Append(&batch(k)[i])
			}
			return db.Insert(ctx, benchUsageTable, cols.Block(), store.InsertOptions{DedupToken: tok})
		}},
		{BenchNaiveJSON, func(k int, tok string) error {
			var b strings.Builder
			enc := json.NewEncoder(&b)
			for i := range batch(k) {
				if err := enc.Encode(jsonRow(&batch(k)[i])); err != nil {
					return err
				}
			}
			return db.InsertFormat(ctx, "INSERT INTO "+benchUsageTable+" SETTINGS insert_deduplication_token = '"+tok+
				"', deduplicate_blocks_in_dependent_materialized_views = 1", "JSONEachRow", []byte(b.String()))
		}},
		{BenchEngineRaw, engineInsert(benchRawOnly)},
	}
	for _, s := range steps {
		res, err := measure(s.name, s.load)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, reset()
}

// jsonRow is a record as a JSON sink would write it, one object per row.
func jsonRow(r *Record) map[string]any {
	return map[string]any{
		"id": r.ID, "event_time": jsonTime(r.EventTimeMs), "ingested_at": jsonTime(r.IngestedAtMs), "tenant_id": r.TenantID,
		"user_id": r.UserID, "api_key_id": r.APIKeyID, "endpoint": r.Endpoint, "method": r.Method,
		"status_code": r.StatusCode, "response_time_us": r.ResponseTimeUs, "request_bytes": r.RequestBytes,
		"response_bytes": r.ResponseBytes, "metadata": r.Metadata, "kafka_topic": r.Topic,
		"kafka_partition": r.Partition, "kafka_offset": r.Offset,
	}
}

func jsonTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000") }
