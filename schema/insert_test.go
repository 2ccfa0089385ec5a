package schema

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// TestInsertSettingsOfTheLayouts: on a cluster every insert the ingester
// makes exactly once is forwarded to the shards before it returns and
// waits for a majority of each shard's replicas (DESIGN.md, "Exactly
// once, and why"); one server needs neither.
func TestInsertSettingsOfTheLayouts(t *testing.T) {
	require.Empty(t, Single.InsertSettings())

	cluster := Layout{Cluster: "apimeter"}.InsertSettings()
	got := map[string]string{}
	for _, s := range cluster {
		got[s.Name] = s.Value
	}
	require.Equal(t, map[string]string{
		"distributed_foreground_insert": "1",
		"insert_quorum":                 "auto",
		"insert_quorum_parallel":        "1",
		"insert_quorum_timeout":         "60000",
	}, got)

	const tok = "api-usage:3:100-199"
	clause, err := store.InsertOptions{DedupToken: tok, Settings: cluster}.SettingsClause()
	require.NoError(t, err)
	require.Equal(t, " SETTINGS insert_deduplicate = 1, insert_deduplication_token = '"+tok+"', deduplicate_blocks_in_dependent_materialized_views = 1, "+
		"distributed_foreground_insert = 1, insert_quorum = 'auto', insert_quorum_parallel = 1, insert_quorum_timeout = 60000", clause)

	clause, err = store.InsertOptions{DedupToken: tok, Settings: Single.InsertSettings()}.SettingsClause()
	require.NoError(t, err)
	require.Equal(t, " SETTINGS insert_deduplicate = 1, insert_deduplication_token = '"+tok+"', deduplicate_blocks_in_dependent_materialized_views = 1", clause)
}

// TestClusterInsertSettingsRunOnTheEngine: the embedded engine cannot run
// a cluster, but it knows every setting: an insert into a plain
// MergeTree table with the cluster's settings is taken, and still
// deduplicated by its token.
func TestClusterInsertSettingsRunOnTheEngine(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	settings := Layout{Cluster: "apimeter"}.InsertSettings()
	require.NotEmpty(t, settings)
	require.NoError(t, db.Exec(ctx, `CREATE TABLE t (a UInt64, b String) ENGINE = MergeTree ORDER BY a
		SETTINGS non_replicated_deduplication_window = 100`))
	blk := store.NewBlock().Add("a", "UInt64", []uint64{1, 2, 3}).Add("b", "String", []string{"x", "y", "z"})
	opts := store.InsertOptions{DedupToken: "api-usage:0:0-2", Settings: settings}
	require.NoError(t, db.Insert(ctx, "t", blk, opts))
	require.NoError(t, db.Insert(ctx, "t", blk, opts))
	rows, err := db.Query(ctx, "SELECT count() FROM t")
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var n uint64
	require.NoError(t, rows.Scan(&n))
	require.Equal(t, uint64(3), n)

	// The engine does check the names it is given.
	bad := store.InsertOptions{DedupToken: "api-usage:0:3-5", Settings: []store.Setting{{Name: "insert_quorm", Value: "2"}}}
	require.ErrorContains(t, db.Insert(ctx, "t", blk, bad), "insert_quorm")
}
