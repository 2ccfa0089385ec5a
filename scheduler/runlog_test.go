package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store/storetest"
)

func newClickHouseRunLog(t *testing.T) ClickHouseRunLog {
	t.Helper()
	db := storetest.Open(t)
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return ClickHouseRunLog{DB: db}
}

func TestClickHouseRunLogRoundTrip(t *testing.T) {
	ctx := context.Background()
	l := newClickHouseRunLog(t)
	// Recent times: the table keeps 90 days.
	t0 := time.Now().UTC().Truncate(time.Second).Add(-3*time.Hour + 123*time.Millisecond)
	runs := []Run{
		{ID: "run_1", Job: "cleanup", Instance: "replica-1", Trigger: TriggerSchedule, Start: t0,
			Duration: 1500 * time.Millisecond, Attempts: 1, Outcome: OutcomeOK},
		{ID: "run_2", Job: "health", Instance: "replica-2", Trigger: TriggerSchedule, Start: t0.Add(5 * time.Minute),
			Duration: 42 * time.Millisecond, Attempts: 3, Outcome: OutcomeFailed,
			Error: "query failed:\n\tcode 241 'memory' \\ limit"},
		{ID: "run_3", Job: "cleanup", Instance: "replica-1", Trigger: TriggerManual, Start: t0.Add(time.Hour),
			Duration: 0, Attempts: 1, Outcome: OutcomeOK},
	}
	for _, r := range runs {
		require.NoError(t, l.Record(ctx, r))
	}

	all, err := l.Recent(ctx, "", 10)
	require.NoError(t, err)
	require.Equal(t, []Run{runs[2], runs[1], runs[0]}, all)

	cleanup, err := l.Recent(ctx, "cleanup", 1)
	require.NoError(t, err)
	require.Equal(t, []Run{runs[2]}, cleanup)

	none, err := l.Recent(ctx, "no-such-job", 10)
	require.NoError(t, err)
	require.Empty(t, none)
	zero, err := l.Recent(ctx, "", 0)
	require.NoError(t, err)
	require.Empty(t, zero)

	// Kept to the millisecond; long errors are cut.
	long := make([]byte, 10_000)
	for i := range long {
		long[i] = 'x'
	}
	require.NoError(t, l.Record(ctx, Run{ID: "run_4", Job: "rollups", Instance: "r", Trigger: TriggerSchedule,
		Start: t0.Add(2*time.Hour + 456789*time.Nanosecond), Duration: 2*time.Second + 999*time.Microsecond,
		Attempts: 1, Outcome: OutcomeFailed, Error: string(long)}))
	got, err := l.Recent(ctx, "rollups", 5)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, t0.Add(2*time.Hour), got[0].Start)
	require.Equal(t, 2*time.Second, got[0].Duration)
	require.Len(t, got[0].Error, maxErrorLen)

	// Runs older than 90 days expire.
	require.NoError(t, l.Record(ctx, Run{ID: "run_old", Job: "rollups", Start: t0.AddDate(0, 0, -91), Outcome: OutcomeOK}))
	require.NoError(t, l.DB.Exec(ctx, "OPTIMIZE TABLE job_runs FINAL"))
	got, err = l.Recent(ctx, "rollups", 5)
	require.NoError(t, err)
	require.Equal(t, []string{"run_4"}, ids(got))
}

func TestSchedulerRecordsInClickHouse(t *testing.T) {
	ctx := context.Background()
	l := newClickHouseRunLog(t)
	s := newTestScheduler(t, Config{Runs: l, Instance: "replica-9"})
	require.NoError(t, s.Add(Job{Name: "cleanup", Schedule: DailyAt(3, 0), Run: ok}))
	require.NoError(t, s.RunNow(ctx, "cleanup"))
	got, err := l.Recent(ctx, "cleanup", 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "replica-9", got[0].Instance)
	require.Equal(t, TriggerManual, got[0].Trigger)
	require.Equal(t, OutcomeOK, got[0].Outcome)
}
