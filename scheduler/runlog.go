package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"time"

	"github.com/apimeter/apimeter/store"
)

// Outcomes of a run.
const (
	OutcomeOK     = "ok"
	OutcomeFailed = "failed"
)

// Triggers: what started a run.
const (
	TriggerSchedule = "schedule" // its tick
	TriggerManual   = "manual"   // RunNow
)

// Run is one run of a job: every attempt it took, from the first
// attempt's start to the last one's end (retry delays included).
type Run struct {
	ID       string        `json:"id"`
	Job      string        `json:"job"`
	Instance string        `json:"instance"` // the replica that ran it
	Trigger  string        `json:"trigger"`  // TriggerSchedule or TriggerManual
	Start    time.Time     `json:"start"`    // on the scheduler's clock, UTC
	Duration time.Duration `json:"duration"`
	Attempts int           `json:"attempts"`
	Outcome  string        `json:"outcome"` // OutcomeOK or OutcomeFailed
	Error    string        `json:"error,omitempty"`
}

func newRunID() string {
	var b [12]byte
	rand.Read(b[:])
	return "run_" + hex.EncodeToString(b[:])
}

// RunLog keeps runs.
type RunLog interface {
	Record(ctx context.Context, r Run) error
	// Recent lists the newest runs first, of one job or, with job "", of
	// every job; at most limit of them.
	Recent(ctx context.Context, job string, limit int) ([]Run, error)
}

// MemoryRunLog keeps the last runs in memory (a test, a single process
// without a store).
type MemoryRunLog struct {
	mu   sync.Mutex
	max  int
	runs []Run // oldest first
}

// NewMemoryRunLog keeps at most max runs (0: 1,000).
func NewMemoryRunLog(max int) *MemoryRunLog {
	if max <= 0 {
		max = 1000
	}
	return &MemoryRunLog{max: max}
}

// Record implements RunLog.
func (l *MemoryRunLog) Record(_ context.Context, r Run) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max <= 0 {
		l.max = 1000
	}
	l.runs = append(l.runs, r)
	if over := len(l.runs) - l.max; over > 0 {
		l.runs = slices.Delete(l.runs, 0, over)
	}
	return nil
}

// Recent implements RunLog. Runs are ordered by start, newest first; runs
// that started at the same time keep the reverse of their recording order.
func (l *MemoryRunLog) Recent(_ context.Context, job string, limit int) ([]Run, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Run, 0, min(max(limit, 0), len(l.runs)))
	for i := len(l.runs) - 1; i >= 0; i-- {
		if job == "" || l.runs[i].Job == job {
			out = append(out, l.runs[i])
		}
	}
	slices.SortStableFunc(out, func(a, b Run) int { return b.Start.Compare(a.Start) })
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// DB is what ClickHouseRunLog needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// ClickHouseRunLog keeps runs in the job_runs table (migration 0011),
// where every replica's runs meet; rows expire after 90 days.
type ClickHouseRunLog struct{ DB DB }

// maxErrorLen bounds the error text stored with a run.
const maxErrorLen = 4096

// Record implements RunLog. Start is kept to the millisecond, Duration
// in whole milliseconds.
func (c ClickHouseRunLog) Record(ctx context.Context, r Run) error {
	msg := r.Error
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	return c.DB.Exec(ctx, `INSERT INTO job_runs (id, job, instance, trigger, start, duration_ms, attempts, outcome, error)
		SELECT {id:String}, {job:String}, {instance:String}, {trigger:String}, {start:DateTime64(3, 'UTC')},
		       {duration_ms:UInt64}, {attempts:UInt16}, {outcome:String}, {error:String}`,
		store.Named("id", r.ID), store.Named("job", r.Job), store.Named("instance", r.Instance),
		store.Named("trigger", r.Trigger), store.Named("start", r.Start.UTC()),
		store.Named("duration_ms", uint64(max(r.Duration, 0)/time.Millisecond)),
		store.Named("attempts", uint16(min(max(r.Attempts, 0), 65535))),
		store.Named("outcome", r.Outcome), store.Named("error", msg))
}

// Recent implements RunLog.
func (c ClickHouseRunLog) Recent(ctx context.Context, job string, limit int) ([]Run, error) {
	if limit <= 0 {
		return []Run{}, nil
	}
	rows, err := c.DB.Query(ctx, `SELECT id, job, instance, trigger, start, duration_ms, attempts, outcome, error
		FROM job_runs
		WHERE {job:String} = '' OR job = {job:String}
		ORDER BY start DESC, id DESC
		LIMIT {limit:UInt32}`,
		store.Named("job", job), store.Named("limit", uint32(min(limit, 1<<31))))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Run{}
	for rows.Next() {
		var r Run
		var ms uint64
		var attempts uint16
		if err := rows.Scan(&r.ID, &r.Job, &r.Instance, &r.Trigger, &r.Start, &ms, &attempts, &r.Outcome, &r.Error); err != nil {
			return nil, err
		}
		r.Start = r.Start.UTC()
		r.Duration = time.Duration(ms) * time.Millisecond
		r.Attempts = int(attempts)
		out = append(out, r)
	}
	return out, rows.Err()
}
