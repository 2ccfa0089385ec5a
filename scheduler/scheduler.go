package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of a Job's zero fields.
const (
	DefaultRetries    = 2
	DefaultRetryDelay = 10 * time.Second
	DefaultTimeout    = 10 * time.Minute
)

// Job is a background job.
type Job struct {
	// Name identifies the job: in runs, metrics, logs and lock keys. It
	// must be unique in a Scheduler and the same on every replica.
	Name     string
	Schedule Schedule
	// Run does the work. It must return when its context is done: at the
	// attempt's Timeout or when the scheduler shuts down.
	Run func(ctx context.Context) error
	// Retries is how many more attempts a failed run gets. 0: 2
	// (DefaultRetries); negative: none.
	Retries int
	// RetryDelay is the wait between attempts, on the scheduler's clock.
	// 0: 10 s; negative: none.
	RetryDelay time.Duration
	// Timeout bounds each attempt. It is real time even when the
	// scheduler's clock is not: it bounds work, and a test moving a fake
	// clock a day ahead must not cancel an attempt in flight. 0: 10 min.
	Timeout time.Duration
}

// Config configures a Scheduler. Zero fields take the defaults in their
// comments.
type Config struct {
	// Clock drives the schedules and retry delays. Default: the real
	// clock; tests pass clockwork.NewFakeClockAt(…).
	Clock clockwork.Clock
	// Locker makes replicas run each tick once: the replicas race for a
	// lock named after the job and the tick. Default: none (every replica
	// runs every tick; fine for one replica).
	Locker gocron.Locker
	// Runs records every run. Default: none.
	Runs RunLog
	// Instance names this replica in its runs. Default: the host name.
	Instance string
	// Registerer takes the metrics. Default: none.
	Registerer prometheus.Registerer
	// Log is the logger. Default: slog.Default().
	Log *slog.Logger
	// StopTimeout is how long Shutdown waits for running jobs after
	// cancelling their contexts. Default: 30 s.
	StopTimeout time.Duration
}

// Errors callers branch on.
var (
	ErrUnknownJob = errors.New("scheduler: no such job")
	ErrRunning    = errors.New("scheduler: the job is already running")
	ErrClosed     = errors.New("scheduler: shut down")
)

// Scheduler runs jobs on their schedules.
type Scheduler struct {
	clock    clockwork.Clock
	runs     RunLog
	instance string
	log      *slog.Logger
	m        *metrics
	gs       gocron.Scheduler

	// ctx ends manual runs at shutdown (gocron ends the scheduled ones).
	ctx    context.Context
	cancel context.CancelFunc
	manual sync.WaitGroup

	mu     sync.Mutex
	jobs   map[string]*entry
	order  []string
	closed bool
}

type entry struct {
	job     Job
	g       gocron.Job
	running atomic.Bool // a run (all its attempts) is going on
	last    *Run        // guarded by Scheduler.mu
}

// New builds a scheduler; add jobs, then Start it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Instance == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "unknown"
		}
		cfg.Instance = h
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		clock:    cfg.Clock,
		runs:     cfg.Runs,
		instance: cfg.Instance,
		log:      cfg.Log.With("component", "scheduler"),
		m:        m,
		jobs:     map[string]*entry{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	opts := []gocron.SchedulerOption{
		gocron.WithClock(cfg.Clock),
		gocron.WithLocation(time.UTC),
		gocron.WithLogger(gocronLogger{s.log}),
		gocron.WithStopTimeout(cfg.StopTimeout),
		gocron.WithMonitor(overlapMonitor{s}),
	}
	if cfg.Locker != nil {
		opts = append(opts, gocron.WithDistributedLocker(tickLocker{s: s, inner: cfg.Locker}))
	}
	s.gs, err = gocron.NewScheduler(opts...)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return s, nil
}

// Add schedules jobs; it may be called before or after Start. Nothing is
// added when any job is invalid.
func (s *Scheduler) Add(jobs ...Job) error {
	now := s.clock.Now()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	var errs []error
	seen := map[string]bool{}
	for i, j := range jobs {
		name := j.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
			errs = append(errs, fmt.Errorf("job %s: no name", name))
		} else if seen[name] || s.jobs[name] != nil {
			errs = append(errs, fmt.Errorf("job %q: added twice", name))
		}
		seen[name] = true
		if j.Run == nil {
			errs = append(errs, fmt.Errorf("job %q: no Run function", name))
		}
		if err := j.Schedule.validate(now); err != nil {
			errs = append(errs, fmt.Errorf("job %q: %w", name, err))
		}
	}
	s.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, j := range jobs {
		if err := s.add(withDefaults(j), now); err != nil {
			return err
		}
	}
	return nil
}

func withDefaults(j Job) Job {
	switch {
	case j.Retries == 0:
		j.Retries = DefaultRetries
	case j.Retries < 0:
		j.Retries = 0
	}
	switch {
	case j.RetryDelay == 0:
		j.RetryDelay = DefaultRetryDelay
	case j.RetryDelay < 0:
		j.RetryDelay = 0
	}
	if j.Timeout <= 0 {
		j.Timeout = DefaultTimeout
	}
	return j
}

func (s *Scheduler) add(j Job, now time.Time) error {
	e := &entry{job: j}
	// Registered before gocron knows the job: its first tick may come at
	// once and looks the entry up.
	s.mu.Lock()
	if s.jobs[j.Name] != nil {
		s.mu.Unlock()
		return fmt.Errorf("job %q: added twice", j.Name)
	}
	s.jobs[j.Name] = e
	s.order = append(s.order, j.Name)
	s.mu.Unlock()

	def, opts := j.Schedule.definition(now)
	opts = append(opts,
		gocron.WithName(j.Name),
		gocron.WithSingletonMode(gocron.LimitModeReschedule),
		gocron.WithEventListeners(
			gocron.AfterLockError(func(_ uuid.UUID, name string, err error) { s.lockRefused(name, err) }),
			// The runs recover their own panics; this only guards the
			// scheduler's bookkeeping around them.
			gocron.AfterJobRunsWithPanic(func(_ uuid.UUID, name string, p any) {
				s.log.Error("job bookkeeping panicked", "job", name, "panic", p)
			}),
		),
	)
	g, err := s.gs.NewJob(def, gocron.NewTask(func(ctx context.Context) { s.scheduled(ctx, e) }), opts...)
	if err != nil {
		s.mu.Lock()
		delete(s.jobs, j.Name)
		s.order = slices.DeleteFunc(s.order, func(n string) bool { return n == j.Name })
		s.mu.Unlock()
		return fmt.Errorf("job %q: %w", j.Name, err)
	}
	s.mu.Lock()
	e.g = g
	s.mu.Unlock()
	s.m.runs.WithLabelValues(j.Name, OutcomeOK)
	s.m.runs.WithLabelValues(j.Name, OutcomeFailed)
	return nil
}

// Start starts running the jobs on their schedules.
func (s *Scheduler) Start() { s.gs.Start() }

// Shutdown stops scheduling, cancels the contexts of running jobs (manual
// ones included) and waits for them up to Config.StopTimeout.
func (s *Scheduler) Shutdown() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	err := s.gs.Shutdown()
	s.manual.Wait()
	return err
}

// RunNow runs a job here and now, in the caller's goroutine, with the
// job's retries, and records the run like a scheduled one (trigger
// "manual"). It does not ask the Locker: it is an operator's or a test's
// explicit request to this replica. It refuses (ErrRunning) while a run of
// the job is going on in this process; a tick that comes during a manual
// run is skipped. It returns the last attempt's error when the run failed.
func (s *Scheduler) RunNow(ctx context.Context, name string) error {
	s.mu.Lock()
	e := s.jobs[name]
	closed := s.closed
	if e != nil && !closed {
		s.manual.Add(1)
	}
	s.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case e == nil:
		return fmt.Errorf("%w: %q", ErrUnknownJob, name)
	}
	defer s.manual.Done()
	if !e.running.CompareAndSwap(false, true) {
		return fmt.Errorf("job %q: %w", name, ErrRunning)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	run, err := s.executeAndRelease(ctx, e, TriggerManual)
	s.record(ctx, run)
	if err != nil {
		return fmt.Errorf("job %q failed after %d attempt(s): %w", name, run.Attempts, err)
	}
	return nil
}

// JobInfo describes a job for people.
type JobInfo struct {
	Name     string    `json:"name"`
	Schedule string    `json:"schedule"`
	NextRun  time.Time `json:"nextRun"` // zero before Start
	Running  bool      `json:"running"`
	// LastRun is the last run this replica made (nil: none since it
	// started); the RunLog has every replica's.
	LastRun *Run `json:"lastRun,omitempty"`
}

// Jobs lists the jobs in the order they were added.
func (s *Scheduler) Jobs() []JobInfo {
	s.mu.Lock()
	entries := make([]*entry, 0, len(s.order))
	gjobs := make([]gocron.Job, 0, len(s.order))
	out := make([]JobInfo, 0, len(s.order))
	for _, name := range s.order {
		e := s.jobs[name]
		info := JobInfo{Name: name, Schedule: e.job.Schedule.String(), Running: e.running.Load()}
		if e.last != nil {
			r := *e.last
			info.LastRun = &r
		}
		entries = append(entries, e)
		gjobs = append(gjobs, e.g)
		out = append(out, info)
	}
	s.mu.Unlock()
	now := s.clock.Now()
	for i, g := range gjobs {
		if g != nil {
			out[i].NextRun = nextRun(g, now)
		}
	}
	return out
}

// nextRun is a gocron job's next run at or after now. gocron's own NextRun
// can be a tick that was skipped (the run before it was still going on)
// until the job next completes a run.
func nextRun(g gocron.Job, now time.Time) time.Time {
	next, err := g.NextRuns(16)
	if err != nil {
		return time.Time{}
	}
	for _, t := range next {
		if !t.Before(now) {
			return t.UTC()
		}
	}
	return time.Time{}
}

func (s *Scheduler) entry(name string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[name]
}

// scheduled is a tick's run, called by gocron once this replica holds the
// tick's lock (and no earlier run of the job is still going on).
func (s *Scheduler) scheduled(ctx context.Context, e *entry) {
	if !e.running.CompareAndSwap(false, true) {
		// A manual run is going on; it stands for this tick.
		s.m.skipped.WithLabelValues(e.job.Name, SkipOverlap).Inc()
		s.log.Info("job tick skipped: the job is running", "job", e.job.Name)
		return
	}
	run, _ := s.executeAndRelease(ctx, e, TriggerSchedule)
	s.record(ctx, run)
}

// executeAndRelease is execute, then marks the job as not running —
// before the run reaches the RunLog, so whoever sees it there can start
// the job again.
func (s *Scheduler) executeAndRelease(ctx context.Context, e *entry, trigger string) (Run, error) {
	defer e.running.Store(false)
	return s.execute(ctx, e, trigger)
}

// execute runs the job's attempts and publishes the run (Jobs, metrics,
// log); the caller records it once it marked the job as not running.
func (s *Scheduler) execute(ctx context.Context, e *entry, trigger string) (Run, error) {
	j := e.job
	start := s.clock.Now()
	run := Run{ID: newRunID(), Job: j.Name, Instance: s.instance, Trigger: trigger, Start: start.UTC()}
	var err error
	for attempt := 1; ; attempt++ {
		run.Attempts = attempt
		err = s.attempt(ctx, j)
		if err == nil || attempt > j.Retries {
			break
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (no retry: %v)", err, context.Cause(ctx))
			break
		}
		s.log.Warn("job attempt failed, retrying", "job", j.Name, "attempt", attempt, "retry_in", j.RetryDelay, "err", err)
		if !s.sleep(ctx, j.RetryDelay) {
			err = fmt.Errorf("%w (no retry: %v)", err, context.Cause(ctx))
			break
		}
	}
	end := s.clock.Now()
	run.Duration = end.Sub(start)
	run.Outcome = OutcomeOK
	if err != nil {
		run.Outcome = OutcomeFailed
		run.Error = err.Error()
	}
	s.publish(e, run, end)
	return run, err
}

// attempt runs the job once, bounded by its timeout, a panic turned into
// an error.
func (s *Scheduler) attempt(ctx context.Context, j Job) (err error) {
	ctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("job panicked", "job", j.Name, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	err = j.Run(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", j.Timeout, err)
	}
	return err
}

// sleep waits d on the scheduler's clock; false when ctx ended first.
func (s *Scheduler) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
		return true
	case <-ctx.Done():
		return false
	}
}

// publish makes a run visible in Jobs(), the metrics and the log.
func (s *Scheduler) publish(e *entry, run Run, end time.Time) {
	name := e.job.Name
	r := run
	s.mu.Lock()
	e.last = &r
	s.mu.Unlock()
	s.m.runs.WithLabelValues(name, run.Outcome).Inc()
	s.m.duration.WithLabelValues(name).Observe(run.Duration.Seconds())
	if run.Outcome == OutcomeOK {
		s.m.lastSuccess.WithLabelValues(name).Set(float64(end.UnixMilli()) / 1000)
		s.log.Info("job ran", "job", name, "trigger", run.Trigger, "attempts", run.Attempts, "duration", run.Duration)
	} else {
		s.log.Error("job failed", "job", name, "trigger", run.Trigger, "attempts", run.Attempts, "duration", run.Duration, "err", run.Error)
	}
}

// record keeps a run in the RunLog.
func (s *Scheduler) record(ctx context.Context, run Run) {
	if s.runs == nil {
		return
	}
	// Recorded even when the run ended because the scheduler is shutting
	// down.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.runs.Record(rctx, run); err != nil {
		s.log.Warn("job run not recorded", "job", run.Job, "run", run.ID, "err", err)
	}
}

// lockRefused counts a tick another replica took, or that the locker
// could not decide.
func (s *Scheduler) lockRefused(name string, err error) {
	if errors.Is(err, ErrLocked) {
		s.m.skipped.WithLabelValues(name, SkipLocked).Inc()
		s.log.Debug("job tick taken by another replica", "job", name)
		return
	}
	s.m.skipped.WithLabelValues(name, SkipLockError).Inc()
	s.log.Warn("job tick skipped: the locker failed", "job", name, "err", err)
}

// tickLocker gives the Locker a key per job and tick. gocron asks for the
// job's name only; the tick — the instant the run was scheduled for,
// from the schedule and this replica's clock — makes the key the same on
// every replica for one tick and different for the next.
type tickLocker struct {
	s     *Scheduler
	inner gocron.Locker
}

func (t tickLocker) Lock(ctx context.Context, name string) (gocron.Lock, error) {
	key := name
	if e := t.s.entry(name); e != nil {
		key = name + "@" + e.job.Schedule.tick(t.s.clock.Now()).Format("2006-01-02T15:04:05.999999999Z")
	}
	return t.inner.Lock(ctx, key)
}

// overlapMonitor counts the ticks gocron skipped because the job's
// previous run was still going on (singleton mode).
type overlapMonitor struct{ s *Scheduler }

func (m overlapMonitor) IncrementJob(_ uuid.UUID, name string, _ []string, status gocron.JobStatus) {
	if status == gocron.SingletonRescheduled {
		m.s.m.skipped.WithLabelValues(name, SkipOverlap).Inc()
		m.s.log.Info("job tick skipped: the previous run is still going on", "job", name)
	}
}

func (overlapMonitor) RecordJobTiming(time.Time, time.Time, uuid.UUID, string, []string) {}

// gocronLogger passes gocron's messages to slog, its chatter (Info) at
// debug level.
type gocronLogger struct{ l *slog.Logger }

func (g gocronLogger) Debug(msg string, args ...any) { g.l.Debug(msg, args...) }
func (g gocronLogger) Info(msg string, args ...any)  { g.l.Debug(msg, args...) }
func (g gocronLogger) Warn(msg string, args ...any)  { g.l.Warn(msg, args...) }
func (g gocronLogger) Error(msg string, args ...any) { g.l.Error(msg, args...) }
