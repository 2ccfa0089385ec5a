package scheduler

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a tick did not run here (apimeter_job_skipped_total).
const (
	SkipLocked    = "locked"     // another replica holds the tick
	SkipLockError = "lock_error" // the locker failed (Redis down…): nobody may run it
	SkipOverlap   = "overlap"    // the previous run of the job is still going
)

type metrics struct {
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	skipped     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_job_runs_total", Help: "Background job runs on this replica, by job and outcome (ok, failed); retries are part of a run.",
		}, []string{"job", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "apimeter_job_duration_seconds", Help: "Duration of background job runs, every attempt and retry delay included.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10 ms to 43 min
		}, []string{"job"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apimeter_job_last_success_timestamp_seconds", Help: "When a background job last finished successfully on this replica (Unix seconds).",
		}, []string{"job"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_job_skipped_total", Help: "Ticks of background jobs not run on this replica, by reason (locked: another replica ran it; lock_error; overlap: the previous run was still going).",
		}, []string{"job", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.runs, err = register(reg, m.runs); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = register(reg, m.lastSuccess); err != nil {
		return nil, err
	}
	if m.skipped, err = register(reg, m.skipped); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the same collector registered before
// (two schedulers in one process share their series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("scheduler metrics: %w", err)
}
