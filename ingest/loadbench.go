package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/apimeter/apimeter/dims"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/apimeter/apimeter/store"
)

// LoadBenchDB is what the load benchmark needs: a migrated store that can
// also take rows in a text format (for the naive baseline).
type LoadBenchDB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
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
	// Brokers, when set, adds the end-to-end way: the rows as JSON records
	// in Kafka (Partitions partitions, default 4), loaded by the ingester.
	Brokers    []string
	Partitions int
	// Dimensions, when set, are declared custom dimensions: the rows
	// carry them folded (the generator's region) and the end-to-end
	// ingester folds them.
	Dimensions []dims.Spec
	// SkipLocal runs only the end-to-end way (for profiling it alone).
	SkipLocal bool
	// Profile, when set, is started when the end-to-end clock starts and
	// the function it returns is called when it stops.
	Profile func() func()
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
	if c.Partitions <= 0 {
		c.Partitions = 4
	}
}

// LoadBenchResult is one measured way of loading the same rows.
type LoadBenchResult struct {
	Name    string
	Rows    int
	Elapsed time.Duration
	// AllocBytes is what the Go side allocated while loading.
	AllocBytes uint64
	// CPU is the process's CPU time (user and system, all threads: Go,
	// the embedded engine and an in-process broker) while loading.
	CPU time.Duration
}

// RowsPerSecond is the load rate.
func (r LoadBenchResult) RowsPerSecond() float64 { return float64(r.Rows) / r.Elapsed.Seconds() }

// CPUPerRow is the CPU time spent per row.
func (r LoadBenchResult) CPUPerRow() time.Duration { return r.CPU / time.Duration(r.Rows) }

// The measured ways, in report order.
const (
	BenchEngine     = "engine INSERT … SELECT through the views (the bound)"
	BenchGoNative   = "Go bulk path: columns → Native block → streaming insert"
	BenchNaiveJSON  = "naive: JSON rows → INSERT FORMAT JSONEachRow"
	BenchEngineRaw  = "engine INSERT … SELECT, raw table only (no views)"
	BenchEndToEnd   = "end to end: Kafka → ingester → visible in the rollups"
	benchSource     = "bench_source"
	benchRawOnly    = "bench_raw_only"
	benchUsageTable = "usage_events"
)

var benchRollups = []string{"usage_hourly", "usage_daily", "endpoint_hourly", "endpoint_daily", "dimension_hourly"}

// meter measures one way: wall time, process CPU and Go allocations.
type meter struct {
	start  time.Time
	cpu    time.Duration
	before runtime.MemStats
}

func startMeter() *meter {
	m := &meter{}
	runtime.GC()
	runtime.ReadMemStats(&m.before)
	m.cpu = processCPU()
	m.start = time.Now()
	return m
}

func (m *meter) stop(name string, rows int) LoadBenchResult {
	el := time.Since(m.start)
	cpu := processCPU() - m.cpu
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return LoadBenchResult{Name: name, Rows: rows, Elapsed: el, CPU: cpu, AllocBytes: after.TotalAlloc - m.before.TotalAlloc}
}

// RunLoadBench loads the same generated rows into usage_events, through
// its materialized views, in each measured way, from empty tables each
// time (merges left by the previous way finished), and reports the rates.
// All ways use deduplication tokens, as the ingester does.
func RunLoadBench(ctx context.Context, db LoadBenchDB, cfg LoadBenchConfig) ([]LoadBenchResult, error) {
	cfg.setDefaults()
	batches := (cfg.Rows + cfg.BatchRows - 1) / cfg.BatchRows
	gen := NewGenerator(GeneratorConfig{
		Seed: 42, Tenants: cfg.Tenants, Users: cfg.Users, Endpoints: cfg.Endpoints,
		// Recent times, so the end-to-end way accepts them.
		Start: time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute), Span: time.Duration(batches) * time.Minute,
		Count: cfg.Rows,
	})
	records := make([]Record, 0, cfg.Rows)
	var r Record
	folder := dims.NewFolder(cfg.Dimensions, nil)
	for gen.Next(&r) {
		if len(cfg.Dimensions) > 0 {
			r.Dimensions = folder.Fold(r.TenantID, r.Metadata)
		}
		records = append(records, r)
	}
	batch := func(k int) []Record { return records[k*cfg.BatchRows : min((k+1)*cfg.BatchRows, len(records))] }
	run := time.Now().UnixNano()

	reset := func() error {
		for _, t := range append([]string{benchUsageTable, benchRawOnly}, benchRollups...) {
			if err := db.Exec(ctx, "TRUNCATE TABLE IF EXISTS "+t); err != nil {
				return err
			}
		}
		// Merges left by the previous way are its cost, not the next one's.
		return quiesce(ctx, db)
	}

	var out []LoadBenchResult
	if !cfg.SkipLocal {
		local, err := loadLocally(ctx, db, cfg, batches, batch, run, reset)
		out = append(out, local...)
		if err != nil {
			return out, err
		}
	}
	if len(cfg.Brokers) > 0 {
		if err := reset(); err != nil {
			return out, err
		}
		res, err := endToEnd(ctx, db, cfg, records, run)
		if err != nil {
			return out, fmt.Errorf("%s: %w", BenchEndToEnd, err)
		}
		out = append(out, res)
	}
	return out, reset()
}

// loadLocally measures the ways that load from this process: the engine's
// own INSERT … SELECT (rows staged in the engine first), the Go bulk path,
// the JSON baseline, and the raw table without views.
func loadLocally(ctx context.Context, db LoadBenchDB, cfg LoadBenchConfig, batches int, batch func(int) []Record, run int64, reset func() error) ([]LoadBenchResult, error) {
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
	engineInsert := func(table string) func(int, string) error {
		return func(k int, tok string) error {
			return db.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s WHERE kafka_offset = %d
				SETTINGS insert_deduplication_token = '%s', deduplicate_blocks_in_dependent_materialized_views = 1`,
				table, columns, columns, benchSource, k, tok))
		}
	}
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
	var out []LoadBenchResult
	for i, s := range steps {
		if err := reset(); err != nil {
			return out, err
		}
		m := startMeter()
		for k := 0; k < batches; k++ {
			if err := s.load(k, fmt.Sprintf("bench:%d:%d:%d", run, i, k)); err != nil {
				return out, fmt.Errorf("%s: %w", s.name, err)
			}
		}
		out = append(out, m.stop(s.name, cfg.Rows))
	}
	return out, nil
}

// endToEnd produces the records to a new topic, then times an ingester
// from the moment it owns every partition until every record is stored.
func endToEnd(ctx context.Context, db LoadBenchDB, cfg LoadBenchConfig, records []Record, run int64) (LoadBenchResult, error) {
	topic := fmt.Sprintf("bench-%d", run)
	icfg := Config{Brokers: cfg.Brokers, Topic: topic, Group: topic, Partitions: cfg.Partitions, MaxBatchRecords: cfg.BatchRows}
	// Something listens to the stored batches, as in serve (the events,
	// the limiter), so their summaries are made.
	icfg.OnLoaded = func(LoadedBatch) {}
	if len(cfg.Dimensions) > 0 {
		icfg.Dimensions = dims.NewFolder(cfg.Dimensions, nil)
	}
	icfg.setDefaults()
	if err := ensureTopics(ctx, &kafka.Client{Addr: kafka.TCP(cfg.Brokers...)}, icfg); err != nil {
		return LoadBenchResult{}, err
	}
	w := &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: topic, Balancer: &kafka.Hash{},
		BatchSize: 10_000, BatchBytes: 1 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll}
	msgs := make([]kafka.Message, 0, 20_000)
	for i := range records {
		r := records[i]
		r.Offset, r.Partition = 0, 0
		msgs = append(msgs, kafka.Message{Key: []byte(r.ID), Value: r.AppendJSON(nil)})
		if len(msgs) == cap(msgs) || i == len(records)-1 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				w.Close()
				return LoadBenchResult{}, fmt.Errorf("produce: %w", err)
			}
			msgs = msgs[:0]
		}
	}
	w.Close()
	if err := quiesce(ctx, db); err != nil {
		return LoadBenchResult{}, err
	}

	in, err := New(icfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		return LoadBenchResult{}, err
	}
	defer in.Close()
	ictx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- in.Run(ictx) }()
	defer func() { stop(); <-done }()
	// Joining the group is set-up, not loading.
	for in.Stats().Partitions < cfg.Partitions {
		if !sleep(ctx, time.Millisecond) {
			return LoadBenchResult{}, ctx.Err()
		}
	}
	m := startMeter()
	if cfg.Profile != nil {
		defer cfg.Profile()()
	}
	// The ingester counts a batch once the store holds it, rollups
	// included (the views run inside the insert); a query after the clock
	// stops confirms it, without loading the engine while it runs.
	for in.Stats().Stored < uint64(len(records)) {
		if st := in.Stats(); st.Rejected > 0 {
			return LoadBenchResult{}, fmt.Errorf("%d records rejected: %v", st.Rejected, st.DLQ)
		}
		if !sleep(ctx, 5*time.Millisecond) {
			return LoadBenchResult{}, ctx.Err()
		}
	}
	res := m.stop(BenchEndToEnd, len(records))
	n, err := store.QueryUint64(ctx, db, "SELECT sum(requests) FROM usage_hourly")
	if err != nil {
		return LoadBenchResult{}, err
	}
	if n != uint64(len(records)) {
		return LoadBenchResult{}, fmt.Errorf("usage_hourly counts %d requests, want %d", n, len(records))
	}
	return res, nil
}

// quiesce waits (up to a minute) until the engine runs no merge.
func quiesce(ctx context.Context, db LoadBenchDB) error {
	for i := 0; i < 600; i++ {
		n, err := store.QueryUint64(ctx, db, "SELECT count() FROM system.merges")
		if err != nil || n == 0 {
			return err
		}
		if !sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
