package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

func TestParamsAreValuesNeverSQL(t *testing.T) {
	d := storetest.Open(t)
	ctx := context.Background()
	hostile := []string{
		"plain",
		"it's",
		`back\slash`,
		"tab\there",
		"new\nline",
		"nul\x00byte",
		"'; DROP TABLE x; --",
		`{other:String}`,
		"ünïcødé ✓",
		"",
	}
	for _, s := range hostile {
		rows, err := d.Query(ctx, "SELECT {s:String} AS s, length({s:String}) AS n", store.Named("s", s))
		require.NoError(t, err, "%q", s)
		require.True(t, rows.Next(), "%q", s)
		var got string
		var n uint64
		require.NoError(t, rows.Scan(&got, &n))
		require.Equal(t, s, got)
		require.Equal(t, uint64(len(s)), n)
		require.False(t, rows.Next())
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
	}
}

func TestTypedParams(t *testing.T) {
	d := storetest.Open(t)
	ctx := context.Background()
	at := time.Date(2026, 3, 29, 1, 30, 0, 123e6, time.UTC)
	rows, err := d.Query(ctx, `SELECT {t:DateTime64(3, 'UTC')} AS t, {n:Int64} + 1, {u:UInt64}, {f:Float64} * 2, {b:Bool}, {a:Array(String)}`,
		store.Named("t", at), store.Named("n", int64(-5)), store.Named("u", uint64(1<<63)),
		store.Named("f", 1.25), store.Named("b", true), store.Named("a", []string{"x", "y'z", `w\`}))
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var (
		gotT time.Time
		n    int64
		u    uint64
		f    float64
		b    bool
		a    []string
	)
	require.NoError(t, rows.Scan(&gotT, &n, &u, &f, &b, &a))
	require.True(t, at.Equal(gotT), "%v != %v", at, gotT)
	require.Equal(t, int64(-4), n)
	require.Equal(t, uint64(1<<63), u)
	require.Equal(t, 2.5, f)
	require.True(t, b)
	require.Equal(t, []string{"x", "y'z", `w\`}, a)
}

func TestBadParamIsTypedError(t *testing.T) {
	d := storetest.Open(t)
	_, err := d.Query(context.Background(), "SELECT {n:UInt64}", store.Named("n", "-3"))
	require.Error(t, err)
	require.True(t, store.IsCode(err, store.CodeBadQueryParameter), "%v", err)
	err = d.Exec(context.Background(), "SELECT * FROM no_such_table")
	require.True(t, store.IsCode(err, store.CodeUnknownTable), "%v", err)
}

func TestDecodesTypes(t *testing.T) {
	d := storetest.Open(t)
	rows, err := d.Query(context.Background(), `SELECT
		toUInt8(200), toInt8(-100), toUInt16(65000), toInt32(-7), toUInt64(18446744073709551615), toInt64(-9223372036854775808),
		toFloat32(1.5), toFloat64(-0.25), true, 'str', toFixedString('ab', 4),
		toDate('2026-11-27'), toDateTime('2026-11-27 10:00:00', 'UTC'), toDateTime64('2026-11-27 10:00:00.123', 3, 'UTC'),
		toUUID('0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77'), CAST(NULL AS Nullable(String)), CAST('x' AS Nullable(String)),
		toLowCardinality('lc'), [1.5, 2.5], map('k', 'v'), tuple(1, 'a'), CAST('b' AS Enum8('a' = 1, 'b' = 2)),
		toDecimal64(12.34, 2), toIPv4('10.1.2.3')`)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	want := []any{
		uint64(200), int64(-100), uint64(65000), int64(-7), uint64(18446744073709551615), int64(-9223372036854775808),
		1.5, -0.25, true, "str", "ab",
		time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 27, 10, 0, 0, 123e6, time.UTC),
		"0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77", nil, "x",
		"lc", []any{1.5, 2.5}, map[string]any{"k": "v"}, []any{uint64(1), "a"}, "b",
		12.34, "10.1.2.3",
	}
	got := rows.Values()
	require.Len(t, got, len(want))
	for i := range want {
		if wt, ok := want[i].(time.Time); ok {
			require.True(t, wt.Equal(got[i].(time.Time)), "column %d: %v != %v", i, wt, got[i])
			continue
		}
		require.Equal(t, want[i], got[i], "column %d (%s)", i, rows.Types()[i])
	}
}

func TestInsertBlockAndDedupToken(t *testing.T) {
	d := storetest.Open(t)
	ctx := context.Background()
	require.NoError(t, d.Exec(ctx, `CREATE TABLE ev (
		id String, at DateTime64(3, 'UTC'), tenant LowCardinality(String), code UInt16, n UInt64, f Float64,
		part Int32, off Int64, meta Map(LowCardinality(String), String), day DateTime('UTC'), b UInt8, u32 UInt32
	) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100`))
	const n = 5000
	blk := func(offset int) *store.Block {
		ids := make([]string, n)
		at := make([]int64, n)
		tenant := make([]string, n)
		code := make([]uint16, n)
		cnt := make([]uint64, n)
		f := make([]float64, n)
		part := make([]int32, n)
		off := make([]int64, n)
		meta := make([]map[string]string, n)
		day := make([]uint32, n)
		b := make([]uint8, n)
		u32 := make([]uint32, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("id-%d\x00\t'%d", offset+i, i)
			at[i] = 1795000000000 + int64(i)
			tenant[i] = fmt.Sprintf("t%d", i%3)
			code[i] = uint16(200 + i%400)
			cnt[i] = uint64(i)
			f[i] = float64(i) / 4
			part[i] = int32(i % 7)
			off[i] = int64(offset + i)
			if i%2 == 0 {
				meta[i] = map[string]string{"k": fmt.Sprint(i), "z": "v"}
			}
			day[i] = 1795000000 - 1795000000%86400
			b[i] = uint8(i % 2)
			u32[i] = uint32(i)
		}
		return store.NewBlock().Add("id", "String", ids).Add("at", "DateTime64(3, 'UTC')", at).
			Add("tenant", "LowCardinality(String)", tenant).Add("code", "UInt16", code).Add("n", "UInt64", cnt).
			Add("f", "Float64", f).Add("part", "Int32", part).Add("off", "Int64", off).
			Add("meta", "Map(LowCardinality(String), String)", meta).Add("day", "DateTime('UTC')", day).
			Add("b", "UInt8", b).Add("u32", "UInt32", u32)
	}
	require.NoError(t, d.Insert(ctx, "ev", blk(0), store.InsertOptions{DedupToken: "api-usage:0:0-4999"}))
	// The same token again is dropped, even with different rows.
	require.NoError(t, d.Insert(ctx, "ev", blk(100000), store.InsertOptions{DedupToken: "api-usage:0:0-4999"}))
	require.NoError(t, d.Insert(ctx, "ev", blk(n), store.InsertOptions{DedupToken: "api-usage:0:5000-9999"}))

	rows, err := d.Query(ctx, `SELECT count(), sum(n), sum(f), countIf(length(mapKeys(meta)) = 2), sum(toUInt64OrZero(meta['k'])),
		min(off), max(off), countIf(tenant = 't1'), sum(code), min(at), max(toUnixTimestamp(day)), sum(b), sum(u32), countIf(position(id, '\0') > 0)
		FROM ev`)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var (
		count, sumN, metaRows, sumK, t1, sumCode, maxDay, sumB, sumU32, withNul uint64
		sumF                                                                    float64
		minOff, maxOff                                                          int64
		minAt                                                                   time.Time
	)
	require.NoError(t, rows.Scan(&count, &sumN, &sumF, &metaRows, &sumK, &minOff, &maxOff, &t1, &sumCode, &minAt, &maxDay, &sumB, &sumU32, &withNul))
	var wantN, wantK, wantT1, wantCode, wantB uint64
	var wantF float64
	for i := 0; i < n; i++ {
		wantN += uint64(i)
		wantF += float64(i) / 4
		if i%2 == 0 {
			wantK += uint64(i)
		}
		if i%3 == 1 {
			wantT1++
		}
		wantCode += uint64(200 + i%400)
		wantB += uint64(i % 2)
	}
	require.Equal(t, uint64(2*n), count)
	require.Equal(t, 2*wantN, sumN)
	require.Equal(t, 2*wantF, sumF)
	require.Equal(t, uint64(n), metaRows)
	require.Equal(t, 2*wantK, sumK)
	require.Equal(t, int64(0), minOff)
	require.Equal(t, int64(2*n-1), maxOff)
	require.Equal(t, 2*wantT1, t1)
	require.Equal(t, 2*wantCode, sumCode)
	require.Equal(t, time.UnixMilli(1795000000000).UTC(), minAt.UTC())
	require.Equal(t, uint64(1795000000-1795000000%86400), maxDay)
	require.Equal(t, 2*wantB, sumB)
	require.Equal(t, 2*wantN, sumU32)
	require.Equal(t, uint64(2*n), withNul)
}

func TestInsertRejectsBadInput(t *testing.T) {
	d := storetest.Open(t)
	ctx := context.Background()
	b := store.NewBlock().Add("a", "UInt16", []uint16{1}).Add("b", "String", []string{"x", "y"})
	require.ErrorContains(t, d.Insert(ctx, "t", b, store.InsertOptions{}), "rows")
	b = store.NewBlock().Add("a", "UInt16", []uint32{1})
	require.ErrorContains(t, d.Insert(ctx, "t", b, store.InsertOptions{}), "cannot carry")
	b = store.NewBlock().Add("a", "UInt16", []uint16{1})
	require.ErrorContains(t, d.Insert(ctx, "t; DROP TABLE x", b, store.InsertOptions{}), "invalid table")
	require.ErrorContains(t, d.Insert(ctx, "t", b, store.InsertOptions{DedupToken: "x'; SELECT 1"}), "invalid deduplication token")
}

// TestInsertSettingsReachTheEngine: an insert's settings are the
// engine's, not decoration: one that limits partitions per insert
// refuses a block spanning two; names and values that are not plain
// words are refused before anything is sent.
func TestInsertSettingsReachTheEngine(t *testing.T) {
	d := storetest.Open(t)
	ctx := context.Background()
	require.NoError(t, d.Exec(ctx, `CREATE TABLE p (day UInt32, v UInt8) ENGINE = MergeTree PARTITION BY day ORDER BY v`))
	two := store.NewBlock().Add("day", "UInt32", []uint32{1, 2}).Add("v", "UInt8", []uint8{1, 2})
	one := []store.Setting{{Name: "max_partitions_per_insert_block", Value: "1"}}
	require.ErrorContains(t, d.Insert(ctx, "p", two, store.InsertOptions{Settings: one}), "Too many partitions")
	require.ErrorContains(t, d.Insert(ctx, "p", two, store.InsertOptions{DedupToken: "x", Settings: one}), "Too many partitions")
	require.NoError(t, d.Insert(ctx, "p", two, store.InsertOptions{}))

	for _, s := range []store.Setting{
		{Name: "max_threads; DROP TABLE p", Value: "1"},
		{Name: "", Value: "1"},
		{Name: "insert_quorum", Value: "1'; DROP TABLE p; --"},
		{Name: "insert_quorum", Value: ""},
	} {
		require.ErrorContains(t, d.Insert(ctx, "p", two, store.InsertOptions{Settings: []store.Setting{s}}), "invalid setting", "%+v", s)
	}
}

func TestStreamsLargeResultsAndStopsOnCancel(t *testing.T) {
	d := storetest.Open(t)
	ctx := context.Background()
	const n = 2_000_000
	rows, err := d.Query(ctx, "SELECT number, toString(number) FROM numbers({n:UInt64})", store.Named("n", n))
	require.NoError(t, err)
	var count, sum uint64
	for rows.Next() {
		var v uint64
		var s string
		require.NoError(t, rows.Scan(&v, &s))
		require.Equal(t, fmt.Sprint(v), s)
		count++
		sum += v
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Equal(t, uint64(n), count)
	require.Equal(t, uint64(n)*(n-1)/2, sum)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err = d.Query(cctx, "SELECT number FROM numbers(1000000000)")
	require.NoError(t, err)
	seen := 0
	for rows.Next() {
		seen++
		if seen == 1000 {
			cancel()
		}
	}
	require.Error(t, rows.Err())
	require.Less(t, seen, 100_000_000)
	require.NoError(t, rows.Close())
	// The connection is usable again.
	require.NoError(t, d.Ping(ctx))
}

func TestEmptyResult(t *testing.T) {
	d := storetest.Open(t)
	rows, err := d.Query(context.Background(), "SELECT number FROM numbers(10) WHERE number > 100")
	require.NoError(t, err)
	require.False(t, rows.Next())
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in, kind, path, err string
	}{
		{"", "chdb", "./data", ""},
		{"chdb:///var/lib/apimeter", "chdb", "/var/lib/apimeter", ""},
		{"chdb://", "chdb", "./data", ""},
		{"clickhouse://u:p@host:9000/db", "clickhouse", "", ""},
		{"clickhouse:///db", "", "", "missing host"},
		{"mysql://host", "", "", "unsupported scheme"},
	} {
		got, err := store.ParseURL(c.in, "./data")
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.in)
			continue
		}
		require.NoError(t, err, c.in)
		require.Equal(t, c.kind, got.Kind, c.in)
		require.Equal(t, c.path, got.Path, c.in)
	}
	require.Equal(t, "clickhouse://u:xxxxx@h:9000/db", store.RedactURL("clickhouse://u:secret@h:9000/db"))
}

// TestDataDirLockedByAnotherProcess runs a second process against the test
// engine's directory: it must get the one-process-per-directory error.
func TestDataDirLockedByAnotherProcess(t *testing.T) {
	if dir := os.Getenv("APIMETER_LOCK_PROBE_DIR"); dir != "" {
		_, err := store.OpenEmbedded(store.EmbeddedConfig{Path: dir, Conns: 1})
		fmt.Printf("probe-result: %v\n", err)
		if !errors.Is(err, store.ErrDataDirLocked) {
			os.Exit(3)
		}
		return
	}
	if storetest.Server() {
		t.Skip("embedded engine only")
	}
	dir := storetest.EngineDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDataDirLockedByAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "APIMETER_LOCK_PROBE_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "one process per data directory")
	require.True(t, strings.Contains(string(out), dir))
}

func TestServerDriver(t *testing.T) {
	if !storetest.Server() {
		t.Skip("CLICKHOUSE_TEST_URL is not set: the store tests ran on the embedded engine only; set it, or run make test-docker, to run them on a ClickHouse server")
	}
	d := storetest.Open(t)
	require.Equal(t, "clickhouse", d.Kind())
	_, err := store.OpenServer(context.Background(), "clickhouse://u:hunter2@127.0.0.1:1/db?dial_timeout=200ms", store.ClassLimits{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestQuerySmallReadsTheSameRows(t *testing.T) {
	d := storetest.Open(t)
	small, ok := d.(interface {
		QuerySmall(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
	})
	if !ok {
		t.Skip("the server driver has no QuerySmall")
	}
	ctx := context.Background()
	const q = `SELECT number AS n, toString(number * {k:UInt64}) AS s FROM numbers(2500) WHERE number % 3 = {r:UInt64}`
	params := []store.Param{store.Named("k", 7), store.Named("r", 1)}
	read := func(rows store.Rows, err error) [][]any {
		require.NoError(t, err)
		defer rows.Close()
		var out [][]any
		for rows.Next() {
			out = append(out, slices.Clone(rows.Values()))
		}
		require.NoError(t, rows.Err())
		return out
	}
	want := read(d.Query(ctx, q, params...))
	require.Len(t, want, 833)
	require.Equal(t, want, read(small.QuerySmall(ctx, q, params...)))
	require.Empty(t, read(small.QuerySmall(ctx, `SELECT 1 WHERE 0`)))
	_, err := small.QuerySmall(ctx, `SELECT nope FROM nowhere`)
	require.Error(t, err)
	// The connection went back: the store still answers.
	require.Len(t, read(small.QuerySmall(ctx, `SELECT 1`)), 1)
}

// Streams held open by exports (a slow client reading them) never take the
// connections interactive statements need.
func TestHeldExportStreamsLeaveRoomForInteractiveQueries(t *testing.T) {
	d := storetest.OpenWith(t, 4, store.ClassLimits{Export: 2})
	ctx := context.Background()
	exportCtx := store.WithClass(ctx, store.Export)
	var held []store.Rows
	for range 2 {
		rows, err := d.Query(exportCtx, "SELECT number FROM system.numbers LIMIT 10000000")
		require.NoError(t, err)
		held = append(held, rows)
	}
	// A third export waits for its class's share...
	wctx, cancel := context.WithTimeout(exportCtx, 100*time.Millisecond)
	_, err := d.Query(wctx, "SELECT 1")
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// ...while interactive statements run at once, several at a time.
	for range 5 {
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := store.QueryUint64(ictx, d, "SELECT count() FROM numbers(1000)")
		cancel()
		require.NoError(t, err)
		require.Equal(t, uint64(1000), n)
	}
	for _, r := range held {
		require.NoError(t, r.Close())
	}
	rows, err := d.Query(exportCtx, "SELECT 1")
	require.NoError(t, err, "closing the streams gave the export share back")
	rows.Close()
}
