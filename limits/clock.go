// Package limits decides whether a request may go on: the hourly rate
// limit of a user's plan, per-endpoint limits, the monthly quota of the
// billing period and a per-IP limit for unauthenticated calls. It counts
// in memory (one replica) or in Redis (shared by replicas), and ships as
// echo middleware any application can use.
package limits

import (
	"sync"
	"time"
)

// Clock is where every decision reads the time, so tests can move it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the machine's clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a clock that moves only when told to.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock starts a clock at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now is the clock's time.
func (m *ManualClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

// Set moves the clock to t.
func (m *ManualClock) Set(t time.Time) {
	m.mu.Lock()
	m.t = t
	m.mu.Unlock()
}

// Advance moves the clock forward by d.
func (m *ManualClock) Advance(d time.Duration) {
	m.mu.Lock()
	m.t = m.t.Add(d)
	m.mu.Unlock()
}

// BillingPeriod is the monthly billing period holding now for a cycle
// that starts on day anchor of each month at 00:00 UTC. An anchor past
// a month's last day falls on that last day (31 → 28 or 29 February,
// 30 April); anchors outside 1..31 are 1, the calendar month.
func BillingPeriod(now time.Time, anchor int) (start, end time.Time) {
	if anchor < 1 || anchor > 31 {
		anchor = 1
	}
	at := func(y int, m time.Month) time.Time {
		last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
		return time.Date(y, m, min(anchor, last), 0, 0, 0, 0, time.UTC)
	}
	// time.Date normalizes months 0 and 13 into the neighbouring years.
	now = now.UTC()
	y, m, _ := now.Date()
	if start = at(y, m); start.After(now) {
		start, m = at(y, m-1), m-1
	}
	return start, at(y, m+1)
}

// ClockFunc adapts a function to Clock.
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }
