package schema

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/store"
)

func TestVerifyAndRepairRollups(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	now := time.Date(2026, 10, 26, 6, 0, 0, 0, time.UTC)
	cfg := dstWeek
	cfg.Start, cfg.Span, cfg.Count = now.Add(-50*time.Hour), 50*time.Hour, 20000
	loadRecords(t, db, generate(cfg), 3)
	ms, err := VerifyRollups(ctx, db, Single, now.Add(-50*time.Hour), now)
	require.NoError(t, err)
	require.Empty(t, ms, "the views keep the rollups right")

	// A lost or doubled rollup row, yesterday and today.
	for _, day := range []time.Time{time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 1, 0, 0, 0, time.UTC)} {
		require.NoError(t, db.Exec(ctx, `INSERT INTO usage_hourly (tenant_id, user_id, endpoint, method, status_code, bucket, requests, errors_4xx, errors_5xx,
			response_time_sum_us, response_time_max_us, request_bytes, response_bytes)
			VALUES ('tenant-1', 'ghost', '/ghost', 'GET', 200, {b:DateTime('UTC')}, 7, 0, 0, 0, 0, 0, 0)`, store.Named("b", day.Format(time.DateTime))))
	}
	rep, err := VerifyAndRepair(ctx, db, Single, now, 50*time.Hour)
	require.NoError(t, err)
	require.Len(t, rep.Mismatches, 2)
	for _, m := range rep.Mismatches {
		require.Equal(t, "usage_hourly", m.Table)
		require.Equal(t, m.Raw+7, m.Rollup)
	}
	require.Equal(t, []time.Time{time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC)}, rep.Rebuilt, "yesterday is complete: rebuilt")
	require.Equal(t, []time.Time{time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)}, rep.Pending, "today is still arriving: left for later")
	ms, err = VerifyRollups(ctx, db, Single, now.Add(-50*time.Hour), now)
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC), ms[0].Day)
	// The next day's run repairs it.
	rep, err = VerifyAndRepair(ctx, db, Single, now.Add(24*time.Hour), 50*time.Hour)
	require.NoError(t, err)
	require.Equal(t, []time.Time{time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)}, rep.Rebuilt)
	ms, err = VerifyRollups(ctx, db, Single, now.Add(-50*time.Hour), now)
	require.NoError(t, err)
	require.Empty(t, ms)
}

func TestDropExpiredPartitions(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	now := time.Date(2026, 10, 26, 6, 0, 0, 0, time.UTC)
	cfg := dstWeek
	cfg.Start, cfg.Span, cfg.Count = now.Add(-72*time.Hour), 72*time.Hour, 6000
	records := generate(cfg)
	loadRecords(t, db, records, 2)
	keep := 0
	cutoff := now.Add(-24 * time.Hour)
	for i := range records {
		// Partitions are UTC days: a day is dropped when all of it is
		// before the cutoff.
		day := time.UnixMilli(records[i].EventTimeMs).UTC().Truncate(24 * time.Hour)
		if records[i].Type == ingest.TypeAPICall && !day.Add(24*time.Hour).Before(cutoff.Add(time.Millisecond)) {
			keep++
		}
	}
	dropped, err := DropExpired(ctx, db, Single, 1, now)
	require.NoError(t, err)
	require.NotEmpty(t, dropped)
	left := uint64(0)
	queryRows(t, db, `SELECT count() FROM usage_events`, func(r store.Rows) { require.NoError(t, r.Scan(&left)) })
	require.EqualValues(t, keep, left)
	again, err := DropExpired(ctx, db, Single, 1, now)
	require.NoError(t, err)
	require.Empty(t, again)
}
