package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// waitFor bounds every wait on the scheduler's goroutines.
const waitFor = 5 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// chanLog is a MemoryRunLog that also hands every run to the test.
type chanLog struct {
	*MemoryRunLog
	ch chan Run
}

func newChanLog() *chanLog {
	return &chanLog{MemoryRunLog: NewMemoryRunLog(0), ch: make(chan Run, 100)}
}

func (l *chanLog) Record(ctx context.Context, r Run) error {
	if err := l.MemoryRunLog.Record(ctx, r); err != nil {
		return err
	}
	l.ch <- r
	return nil
}

// next waits for the next recorded run.
func (l *chanLog) next(t *testing.T) Run {
	t.Helper()
	select {
	case r := <-l.ch:
		return r
	case <-time.After(waitFor):
		t.Fatal("no run was recorded")
		return Run{}
	}
}

// none checks no run has been recorded so far.
func (l *chanLog) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-l.ch:
		t.Fatalf("unexpected run %+v", r)
	default:
	}
}

// late is how long after its tick a timer fires in these tests, as real
// timers do. (With a fake clock reading exactly the tick, gocron can
// dispatch a tick twice when it handles the run's completion before its
// rescheduling; a real clock is always past the tick by then.)
const late = time.Millisecond

// advanceTo moves the fake clock to t.
func advanceTo(fc *clockwork.FakeClock, t time.Time) { fc.Advance(t.Sub(fc.Now())) }

// idle waits until gocron has marked the jobs' last runs complete, which
// it does after the runs were recorded.
func idle(t *testing.T, s *Scheduler, names ...string) {
	t.Helper()
	for _, name := range names {
		g := s.entry(name).g
		require.Eventually(t, func() bool {
			running, err := g.IsRunning()
			return err == nil && !running
		}, waitFor, time.Millisecond, "job %s still running", name)
	}
}

// fire moves the fake clock to at, where the named jobs have a tick, and
// returns their runs there. gocron skips a tick as an overlap when it
// comes while the job's previous run is in its very last steps, after the
// run was recorded and after idle could tell; only a test firing the next
// tick at once meets that. Such a tick is dispatched again, at the same
// instant.
func fire(t *testing.T, s *Scheduler, fc *clockwork.FakeClock, log *chanLog, at time.Time, jobs ...string) map[string]Run {
	t.Helper()
	overlaps := func(name string) float64 { return testutil.ToFloat64(s.m.skipped.WithLabelValues(name, SkipOverlap)) }
	seen := map[string]float64{}
	for _, j := range jobs {
		seen[j] = overlaps(j)
	}
	advanceTo(fc, at)
	got := map[string]Run{}
	deadline := time.After(waitFor)
	for len(got) < len(jobs) {
		select {
		case r := <-log.ch:
			require.Contains(t, jobs, r.Job, "unexpected run at %s", at)
			require.NotContains(t, got, r.Job, "two runs of %s at %s", r.Job, at)
			got[r.Job] = r
		case <-time.After(5 * time.Millisecond):
			for _, j := range jobs {
				if _, ok := got[j]; !ok && overlaps(j) > seen[j] {
					seen[j] = overlaps(j)
					require.NoError(t, s.entry(j).g.RunNow())
				}
			}
		case <-deadline:
			t.Fatalf("at %s: runs of %v, want %v", at, got, jobs)
		}
	}
	idle(t, s, jobs...)
	return got
}

// waiters waits until the fake clock has at least n timers armed.
func waiters(t *testing.T, fc *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, fc.BlockUntilContext(ctx, n), "waiting for %d timers", n)
}

func newTestScheduler(t *testing.T, cfg Config) *Scheduler {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	if cfg.Instance == "" {
		cfg.Instance = "test"
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Shutdown()) })
	return s
}

func ok(context.Context) error { return nil }

func jobNextRun(s *Scheduler, name string) time.Time {
	for _, j := range s.Jobs() {
		if j.Name == name {
			return j.NextRun
		}
	}
	return time.Time{}
}

func TestSchedulesFireOnTheirTicks(t *testing.T) {
	day := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name     string
		start    time.Time
		schedule Schedule
		text     string
		ticks    []time.Time
	}{
		{"every 300s", day(2026, 3, 1, 0, 0), Every(300 * time.Second), "every 5m0s",
			[]time.Time{day(2026, 3, 1, 0, 5), day(2026, 3, 1, 0, 10), day(2026, 3, 1, 0, 15)}},
		{"every 300s started mid-interval", day(2026, 3, 1, 0, 2), Every(300 * time.Second), "every 5m0s",
			[]time.Time{day(2026, 3, 1, 0, 5), day(2026, 3, 1, 0, 10)}},
		{"daily at 03:00", day(2026, 3, 1, 1, 30), DailyAt(3, 0), "daily at 03:00 UTC",
			[]time.Time{day(2026, 3, 1, 3, 0), day(2026, 3, 2, 3, 0), day(2026, 3, 3, 3, 0)}},
		{"daily at 03:00 started after it", day(2026, 3, 1, 3, 1), DailyAt(3, 0), "daily at 03:00 UTC",
			[]time.Time{day(2026, 3, 2, 3, 0)}},
		{"monthly on the 1st", day(2026, 1, 15, 12, 0), MonthlyOn(1, 0, 0), "monthly on day 1 at 00:00 UTC",
			[]time.Time{day(2026, 2, 1, 0, 0), day(2026, 3, 1, 0, 0), day(2026, 4, 1, 0, 0)}},
		{"monthly on the last day", day(2026, 1, 15, 12, 0), MonthlyOn(-1, 23, 30), "monthly on day 1 from the end at 23:30 UTC",
			[]time.Time{day(2026, 1, 31, 23, 30), day(2026, 2, 28, 23, 30)}},
		{"cron", day(2026, 3, 1, 0, 10), Cron("*/30 * * * *"), "cron */30 * * * *",
			[]time.Time{day(2026, 3, 1, 0, 30), day(2026, 3, 1, 1, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := clockwork.NewFakeClockAt(tc.start)
			runs := newChanLog()
			s := newTestScheduler(t, Config{Clock: fc, Runs: runs})
			require.NoError(t, s.Add(Job{Name: "j", Schedule: tc.schedule, Run: ok}))
			require.Equal(t, tc.text, s.Jobs()[0].Schedule)
			require.True(t, s.Jobs()[0].NextRun.IsZero(), "no next run before Start")
			s.Start()
			for i, tick := range tc.ticks {
				waiters(t, fc, 1)
				require.Eventually(t, func() bool { return jobNextRun(s, "j").Equal(tick) }, waitFor, time.Millisecond,
					"tick %d: next run %s, want %s", i, jobNextRun(s, "j"), tick)
				// Up to a second before the tick: nothing runs.
				advanceTo(fc, tick.Add(-time.Second))
				runs.none(t)
				r := fire(t, s, fc, runs, tick.Add(late), "j")["j"]
				require.Equal(t, tick.Add(late), r.Start, "tick %d", i)
				require.Equal(t, OutcomeOK, r.Outcome)
				require.Equal(t, TriggerSchedule, r.Trigger)
				require.Equal(t, 1, r.Attempts)
				require.Equal(t, "test", r.Instance)
			}
			recent, err := runs.Recent(context.Background(), "j", 100)
			require.NoError(t, err)
			require.Len(t, recent, len(tc.ticks), "one run per tick, none before")
		})
	}
}

func TestFailuresAreRetriedRecordedAndIsolated(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	fc := clockwork.NewFakeClockAt(t0)
	runs := newChanLog()
	reg := prometheus.NewRegistry()
	s := newTestScheduler(t, Config{Clock: fc, Runs: runs, Registerer: reg})

	var mu sync.Mutex
	var flakyAttempts []time.Duration
	var steady atomic.Int64
	require.NoError(t, s.Add(
		Job{Name: "flaky", Schedule: Every(time.Minute), RetryDelay: 75 * time.Second, // Retries: the default 2
			Run: func(context.Context) error {
				mu.Lock()
				flakyAttempts = append(flakyAttempts, fc.Since(t0))
				mu.Unlock()
				return errors.New("flaky is down")
			}},
		Job{Name: "boom", Schedule: Every(time.Minute), Retries: -1,
			Run: func(context.Context) error { panic("boom") }},
		Job{Name: "steady", Schedule: Every(time.Minute),
			Run: func(context.Context) error { steady.Add(1); return nil }},
	))
	s.Start()

	// +60s: every job fires; flaky fails and waits 75 s for its retry.
	at := func(d time.Duration) time.Time { return t0.Add(d + late) }
	waiters(t, fc, 3)
	got := fire(t, s, fc, runs, at(time.Minute), "steady", "boom")
	require.Equal(t, OutcomeOK, got["steady"].Outcome)
	require.Equal(t, OutcomeFailed, got["boom"].Outcome)
	require.Equal(t, "panic: boom", got["boom"].Error)
	require.Equal(t, 1, got["boom"].Attempts)
	waiters(t, fc, 4) // three next ticks and flaky's retry

	// +120s: steady and boom run again; flaky's tick is skipped, its run
	// is still going on.
	got = fire(t, s, fc, runs, at(2*time.Minute), "steady", "boom")
	require.Equal(t, at(2*time.Minute), got["steady"].Start)
	require.Equal(t, at(2*time.Minute), got["boom"].Start)
	waiters(t, fc, 4)

	// +135s: flaky's second attempt fails; its retry is at +210s.
	advanceTo(fc, at(135*time.Second))
	waiters(t, fc, 4)

	// +180s: the others still run on schedule.
	got = fire(t, s, fc, runs, at(3*time.Minute), "steady", "boom")
	require.Equal(t, at(3*time.Minute), got["steady"].Start)
	require.Equal(t, OutcomeOK, got["steady"].Outcome)
	require.Equal(t, OutcomeFailed, got["boom"].Outcome)
	waiters(t, fc, 4)

	// +210s: the third attempt fails, and the run is recorded as failed.
	r := fire(t, s, fc, runs, at(210*time.Second), "flaky")["flaky"]
	require.Equal(t, OutcomeFailed, r.Outcome)
	require.Equal(t, 3, r.Attempts)
	require.Equal(t, "flaky is down", r.Error)
	require.Equal(t, at(time.Minute), r.Start)
	require.Equal(t, 150*time.Second, r.Duration)
	mu.Lock()
	require.Equal(t, []time.Duration{60*time.Second + late, 135*time.Second + late, 210*time.Second + late}, flakyAttempts)
	mu.Unlock()
	require.EqualValues(t, 3, steady.Load())

	require.Equal(t, 1.0, testutil.ToFloat64(s.m.runs.WithLabelValues("flaky", OutcomeFailed)))
	require.Equal(t, 3.0, testutil.ToFloat64(s.m.runs.WithLabelValues("boom", OutcomeFailed)))
	require.Equal(t, 3.0, testutil.ToFloat64(s.m.runs.WithLabelValues("steady", OutcomeOK)))
	require.Equal(t, 0.0, testutil.ToFloat64(s.m.runs.WithLabelValues("steady", OutcomeFailed)))
	require.Equal(t, 2.0, testutil.ToFloat64(s.m.skipped.WithLabelValues("flaky", SkipOverlap)))
	require.Equal(t, float64(at(3*time.Minute).UnixMilli())/1000, testutil.ToFloat64(s.m.lastSuccess.WithLabelValues("steady")))
	require.Equal(t, 1, testutil.CollectAndCount(s.m.lastSuccess), "no success time for jobs that never succeeded")
	n, err := testutil.GatherAndCount(reg, "apimeter_job_runs_total", "apimeter_job_duration_seconds",
		"apimeter_job_last_success_timestamp_seconds", "apimeter_job_skipped_total")
	require.NoError(t, err)
	require.Positive(t, n)

	info := s.Jobs()
	require.Equal(t, "flaky", info[0].Name)
	require.NotNil(t, info[0].LastRun)
	require.Equal(t, OutcomeFailed, info[0].LastRun.Outcome)
	require.False(t, info[0].Running)
}

func TestRunNowAndJobs(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC)
	fc := clockwork.NewFakeClockAt(t0)
	runs := newChanLog()
	s := newTestScheduler(t, Config{Clock: fc, Runs: runs, Instance: "replica-1"})

	release := make(chan struct{})
	started := make(chan struct{}, 1)
	var failures atomic.Int64
	errDown := errors.New("store down")
	require.NoError(t, s.Add(
		Job{Name: "cleanup", Schedule: DailyAt(3, 0), Run: ok},
		Job{Name: "health", Schedule: Every(5 * time.Minute), Run: ok},
		Job{Name: "broken", Schedule: MonthlyOn(1, 0, 0), Retries: 1, RetryDelay: -1,
			Run: func(context.Context) error { failures.Add(1); return errDown }},
		Job{Name: "slow", Schedule: Cron("0 * * * *"), Run: func(ctx context.Context) error {
			started <- struct{}{}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}},
	))
	s.Start()
	waiters(t, fc, 4)
	want := map[string]time.Time{
		"cleanup": time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC),
		"health":  time.Date(2026, 3, 1, 1, 5, 0, 0, time.UTC),
		"broken":  time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),
		"slow":    time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC),
	}
	require.Eventually(t, func() bool {
		for _, j := range s.Jobs() {
			if !j.NextRun.Equal(want[j.Name]) {
				return false
			}
		}
		return true
	}, waitFor, time.Millisecond)
	info := s.Jobs()
	require.Equal(t, []string{"cleanup", "health", "broken", "slow"}, []string{info[0].Name, info[1].Name, info[2].Name, info[3].Name})
	require.Equal(t, "every 5m0s", info[1].Schedule)
	require.Nil(t, info[0].LastRun)

	// A manual run, recorded like a scheduled one.
	require.NoError(t, s.RunNow(ctx, "cleanup"))
	r := runs.next(t)
	require.Equal(t, Run{ID: r.ID, Job: "cleanup", Instance: "replica-1", Trigger: TriggerManual, Start: t0, Attempts: 1, Outcome: OutcomeOK}, r)
	require.NotEmpty(t, r.ID)
	require.Equal(t, &r, s.Jobs()[0].LastRun)
	require.Equal(t, want["cleanup"], s.Jobs()[0].NextRun, "a manual run leaves the schedule alone")

	// A failing manual run: retried, recorded, its error returned.
	err := s.RunNow(ctx, "broken")
	require.ErrorIs(t, err, errDown)
	require.EqualValues(t, 2, failures.Load())
	r = runs.next(t)
	require.Equal(t, OutcomeFailed, r.Outcome)
	require.Equal(t, 2, r.Attempts)
	require.Equal(t, "store down", r.Error)

	require.ErrorIs(t, s.RunNow(ctx, "nope"), ErrUnknownJob)

	// A job added to a running scheduler.
	require.NoError(t, s.Add(Job{Name: "added", Schedule: Every(10 * time.Minute), Run: ok}))
	require.Eventually(t, func() bool {
		return jobNextRun(s, "added").Equal(time.Date(2026, 3, 1, 1, 10, 0, 0, time.UTC))
	}, waitFor, time.Millisecond)

	// No second run while one is going on.
	done := make(chan error, 1)
	go func() { done <- s.RunNow(ctx, "slow") }()
	<-started
	require.True(t, s.Jobs()[3].Running)
	require.ErrorIs(t, s.RunNow(ctx, "slow"), ErrRunning)
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, "slow", runs.next(t).Job)
	runs.none(t)
}

func TestAttemptTimeout(t *testing.T) {
	runs := newChanLog()
	s := newTestScheduler(t, Config{Runs: runs})
	require.NoError(t, s.Add(Job{Name: "stuck", Schedule: DailyAt(3, 0), Retries: -1, Timeout: 20 * time.Millisecond,
		Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}))
	err := s.RunNow(context.Background(), "stuck")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	r := runs.next(t)
	require.Equal(t, OutcomeFailed, r.Outcome)
	require.Contains(t, r.Error, "timed out after 20ms")
}

func TestShutdownEndsRetryWaitsAndStillRecords(t *testing.T) {
	fc := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	runs := newChanLog()
	s, err := New(Config{Clock: fc, Runs: runs, Log: quiet})
	require.NoError(t, err)
	require.NoError(t, s.Add(Job{Name: "j", Schedule: Every(time.Hour), RetryDelay: time.Hour,
		Run: func(context.Context) error { return errors.New("nope") }}))
	s.Start()
	done := make(chan error, 1)
	go func() { done <- s.RunNow(context.Background(), "j") }()
	waiters(t, fc, 2) // the job's tick and the retry wait
	require.NoError(t, s.Shutdown())
	err = <-done
	require.ErrorContains(t, err, "no retry")
	r := runs.next(t)
	require.Equal(t, 1, r.Attempts)
	require.Equal(t, OutcomeFailed, r.Outcome)
	require.ErrorIs(t, s.RunNow(context.Background(), "j"), ErrClosed)
	require.ErrorIs(t, s.Add(Job{Name: "k", Schedule: Every(time.Hour), Run: ok}), ErrClosed)
}

func TestAddRejectsInvalidJobs(t *testing.T) {
	s := newTestScheduler(t, Config{})
	require.NoError(t, s.Add(Job{Name: "a", Schedule: Every(time.Minute), Run: ok}))
	for _, tc := range []struct {
		job  Job
		want string
	}{
		{Job{Schedule: Every(time.Minute), Run: ok}, "no name"},
		{Job{Name: "a", Schedule: Every(time.Minute), Run: ok}, "added twice"},
		{Job{Name: "b", Schedule: Every(time.Minute)}, "no Run"},
		{Job{Name: "b", Run: ok}, "no schedule"},
		{Job{Name: "b", Schedule: Every(0), Run: ok}, "at least 1s"},
		{Job{Name: "b", Schedule: DailyAt(24, 0), Run: ok}, "not a time of day"},
		{Job{Name: "b", Schedule: MonthlyOn(0, 3, 0), Run: ok}, "day 0"},
		{Job{Name: "b", Schedule: MonthlyOn(32, 3, 0), Run: ok}, "day 32"},
		{Job{Name: "b", Schedule: Cron("61 * * * *"), Run: ok}, "cron"},
		{Job{Name: "b", Schedule: Cron("@every 1m"), Run: ok}, "use Every"},
	} {
		err := s.Add(Job{Name: "fine", Schedule: Every(time.Minute), Run: ok}, tc.job)
		require.ErrorContains(t, err, tc.want)
	}
	require.Len(t, s.Jobs(), 1, "nothing added when a job is invalid")
	// Two jobs of one call with the same name.
	err := s.Add(Job{Name: "c", Schedule: Every(time.Minute), Run: ok}, Job{Name: "c", Schedule: Every(time.Minute), Run: ok})
	require.ErrorContains(t, err, "added twice")
}

func TestMetricsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newTestScheduler(t, Config{Registerer: reg})
	b := newTestScheduler(t, Config{Registerer: reg})
	require.NoError(t, a.Add(Job{Name: "x", Schedule: Every(time.Minute), Run: ok}))
	require.NoError(t, b.Add(Job{Name: "x", Schedule: Every(time.Minute), Run: ok}))
	require.NoError(t, a.RunNow(context.Background(), "x"))
	require.NoError(t, b.RunNow(context.Background(), "x"))
	require.Equal(t, 2.0, testutil.ToFloat64(a.m.runs.WithLabelValues("x", OutcomeOK)))
}

func TestMemoryRunLog(t *testing.T) {
	ctx := context.Background()
	l := NewMemoryRunLog(3)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		require.NoError(t, l.Record(ctx, Run{ID: fmt.Sprint(i), Job: []string{"a", "b"}[i%2], Start: t0.Add(time.Duration(i) * time.Minute)}))
	}
	all, err := l.Recent(ctx, "", 10)
	require.NoError(t, err)
	require.Equal(t, []string{"4", "3", "2"}, ids(all))
	a, err := l.Recent(ctx, "a", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"4"}, ids(a))
	none, err := l.Recent(ctx, "zzz", 10)
	require.NoError(t, err)
	require.Empty(t, none)
}

func ids(rs []Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
