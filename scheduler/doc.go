// Package scheduler runs apimeter's background jobs — health checks, alert
// checks, rollup verification, quota period rollover, data cleanup — on
// gocron, once per tick across replicas.
//
// A Job has a name, a Schedule (Every, DailyAt, MonthlyOn or Cron, all in
// UTC) and a Run function. Each run is given Retries extra attempts after a
// failure, RetryDelay apart on the scheduler's clock, each attempt bounded
// by Timeout; a panic is recovered and counts as a failed attempt. A run
// that still fails is recorded as failed and the job runs again at its next
// tick; it never stops other jobs or the scheduler. A job never overlaps
// itself in a process: a tick that comes while the previous run (retries
// included) is still going is skipped and counted.
//
// # Runs
//
// Every run — scheduled or started with RunNow — becomes a Run in the
// RunLog (MemoryRunLog, or ClickHouseRunLog on the job_runs table), in the
// metrics apimeter_job_runs_total{job,outcome},
// apimeter_job_duration_seconds{job} and
// apimeter_job_last_success_timestamp_seconds{job}, and in Jobs(). Ticks
// that did not run here are counted in
// apimeter_job_skipped_total{job,reason} and not recorded as runs: with
// several replicas every tick would otherwise leave one "skipped" row per
// replica that lost the lock.
//
// # Once per tick
//
// With a Locker (RedisLocker) every replica fires every tick, and the
// replicas race for a lock named after the job and the tick — the instant
// the run was scheduled for, computed from the schedule and the replica's
// own clock (Every(d) ticks fall on multiples of d, so replicas started at
// different times still share them). Replicas whose clocks differ by a few
// seconds fire at slightly different real times but name the same tick;
// the first takes the lock and the others skip. A lock is not released at
// once after a fast run: RedisLocker keeps it for at least its Hold, so a
// replica whose clock is behind cannot take the same tick after the winner
// finished. See RedisLocker.
package scheduler
