package schema

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/store/storetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestRenderGolden(t *testing.T) {
	for _, c := range []struct {
		file   string
		layout Layout
	}{
		{"single.sql", Single},
		{"cluster.sql", Layout{Cluster: "apimeter"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			got, err := Render(c.layout)
			require.NoError(t, err)
			path := filepath.Join("testdata", c.file)
			if *update {
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./schema -update to create golden files")
			require.Equal(t, string(want), got, "rendered DDL changed; review and run go test ./schema -update")
		})
	}
}

func TestClusterLayoutShape(t *testing.T) {
	ddl, err := Render(Layout{Cluster: "c1"})
	require.NoError(t, err)
	stmts := splitStatements(ddl)
	for _, s := range stmts {
		require.Contains(t, s, "ON CLUSTER c1", "every cluster statement runs on the whole cluster:\n%s", s)
		if strings.Contains(s, "ENGINE = ") && !strings.Contains(s, "Distributed(") {
			require.Contains(t, s, "ENGINE = Replicated", s)
		}
		if strings.Contains(s, "MATERIALIZED VIEW") {
			require.Regexp(t, `TO \w+_local AS`, s)
			require.Regexp(t, `FROM \w+_local\n`, s)
		}
	}
	for _, table := range []string{"usage_events", "feature_usage", "usage_hourly", "usage_daily", "endpoint_hourly", "endpoint_daily", "feature_usage_daily", "ingest_batches", "ingest_rejections", "ingest_duplicates", "endpoint_minute", "user_hourly", "user_daily"} {
		require.Contains(t, ddl, "CREATE TABLE IF NOT EXISTS "+table+" ON CLUSTER c1 AS "+table+"_local\nENGINE = Distributed(c1, currentDatabase(), "+table+"_local")
	}
	require.Contains(t, ddl, "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/accounts_local', '{replica}', version, deleted)")
	require.Contains(t, ddl, "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/usage_events_local', '{replica}')")
	require.NotContains(t, ddl, "non_replicated_deduplication_window")

	require.Error(t, Layout{Cluster: "bad name; DROP"}.Validate())
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements(`-- a comment; with a semicolon
CREATE TABLE a (x String DEFAULT ';') ENGINE = Memory;
/* block; comment */ SELECT "q;uoted", ` + "`b;t`" + `, 'it\'s;';

-- only a comment;
SELECT 3`)
	require.Equal(t, []string{
		"-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Memory",
		"/* block; comment */ SELECT \"q;uoted\", `b;t`, 'it\\'s;'",
		"-- only a comment;\nSELECT 3",
	}, got)
}

func TestMigrationsApplyOnceAndRecord(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	m, err := NewMigrator(db, Single, nil)
	require.NoError(t, err)

	st, err := m.Status(ctx)
	require.NoError(t, err)
	require.False(t, st.Ready())

	applied, err := m.Apply(ctx)
	require.NoError(t, err)
	all, err := Migrations()
	require.NoError(t, err)
	require.Len(t, applied, len(all))

	tables := func() map[string]string {
		rows, err := db.Query(ctx, "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name")
		require.NoError(t, err)
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var n, q string
			require.NoError(t, rows.Scan(&n, &q))
			out[n] = q
		}
		require.NoError(t, rows.Err())
		return out
	}
	before := tables()
	for _, want := range []string{
		"schema_migrations", "usage_events", "feature_usage", "feature_usage_daily", "feature_usage_daily_mv",
		"usage_hourly", "usage_hourly_mv", "usage_daily", "usage_daily_mv",
		"endpoint_hourly", "endpoint_hourly_mv", "endpoint_daily", "endpoint_daily_mv",
		"accounts", "api_keys", "incidents", "incident_updates", "alert_notifications",
		"ingest_batches", "ingest_rejections", "ingest_duplicates", "endpoint_minute", "endpoint_minute_mv",
		"user_hourly", "user_hourly_mv", "user_daily", "user_daily_mv",
	} {
		require.Contains(t, before, want)
	}

	st, err = m.Status(ctx)
	require.NoError(t, err)
	require.True(t, st.Ready())
	require.Len(t, st.Applied, len(all))

	// A second run changes nothing.
	applied, err = m.Apply(ctx)
	require.NoError(t, err)
	require.Empty(t, applied)
	require.Equal(t, before, tables())

	rows, err := db.Query(ctx, "SELECT count(), uniqExact(version) FROM schema_migrations")
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var n, versions uint64
	require.NoError(t, rows.Scan(&n, &versions))
	require.Equal(t, uint64(len(all)), n)
	require.Equal(t, uint64(len(all)), versions)
}

// migratorWith builds a migrator over an in-memory set of migration files.
func migratorWith(t *testing.T, db DB, files map[string]string) *Migrator {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, text := range files {
		fsys["m/"+name] = &fstest.MapFile{Data: []byte(text)}
	}
	ms, err := loadMigrations(fsys, "m")
	require.NoError(t, err)
	return &Migrator{db: db, layout: Single, migrations: ms}
}

func TestEditedMigrationIsRefused(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	v1 := map[string]string{
		"0001_a.sql": "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x",
		"0002_b.sql": "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x",
	}
	_, err := migratorWith(t, db, v1).Apply(ctx)
	require.NoError(t, err)

	edited := map[string]string{
		"0001_a.sql": "CREATE TABLE IF NOT EXISTS a (x UInt16) ENGINE = MergeTree ORDER BY x",
		"0002_b.sql": v1["0002_b.sql"],
		"0003_c.sql": "CREATE TABLE IF NOT EXISTS c (x UInt8) ENGINE = MergeTree ORDER BY x",
	}
	m := migratorWith(t, db, edited)
	_, err = m.Apply(ctx)
	require.ErrorContains(t, err, "0001_a was changed after it was applied")
	st, err := m.Status(ctx)
	require.NoError(t, err)
	require.False(t, st.Ready())
	// Nothing ran: the new migration is still pending.
	rows, err := db.Query(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'c'")
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var n uint64
	require.NoError(t, rows.Scan(&n))
	require.Zero(t, n)
}

func TestNewerDatabaseIsRefused(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	both := map[string]string{
		"0001_a.sql": "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = MergeTree ORDER BY x",
		"0002_b.sql": "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = MergeTree ORDER BY x",
	}
	_, err := migratorWith(t, db, both).Apply(ctx)
	require.NoError(t, err)
	older := migratorWith(t, db, map[string]string{"0001_a.sql": both["0001_a.sql"]})
	_, err = older.Apply(ctx)
	require.ErrorContains(t, err, "0002_b is applied but unknown to this binary")
}

func TestMigrationFileNames(t *testing.T) {
	_, err := loadMigrations(fstest.MapFS{"m/0001_a.sql": {}, "m/0003_c.sql": {}}, "m")
	require.ErrorContains(t, err, "without gaps")
	_, err = loadMigrations(fstest.MapFS{"m/1_a.sql": {}}, "m")
	require.ErrorContains(t, err, "NNNN_name.sql")
}

func TestRetention(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	m, err := NewMigrator(db, Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(ctx)
	require.NoError(t, err)

	days, err := RetentionDays(ctx, db, Single)
	require.NoError(t, err)
	require.Equal(t, 90, days)

	changed, err := EnsureRetention(ctx, db, Single, 90)
	require.NoError(t, err)
	require.Empty(t, changed)

	changed, err = EnsureRetention(ctx, db, Single, 30)
	require.NoError(t, err)
	require.Equal(t, []string{"usage_events", "feature_usage"}, changed)
	days, err = RetentionDays(ctx, db, Single)
	require.NoError(t, err)
	require.Equal(t, 30, days)

	changed, err = EnsureRetention(ctx, db, Single, 30)
	require.NoError(t, err)
	require.Empty(t, changed)

	_, err = EnsureRetention(ctx, db, Single, 0)
	require.Error(t, err)
}
