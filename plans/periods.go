package plans

import (
	"slices"
	"time"
)

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

// Periods are the n billing periods up to the one holding now, newest
// first.
func Periods(now time.Time, anchor, n int) [][2]time.Time {
	return periodsBack(now, anchor, func(_, _ time.Time, have int) bool { return have < n })
}

// PeriodsOverlapping are the billing periods that overlap [from, to),
// oldest first.
func PeriodsOverlapping(from, to time.Time, anchor int) [][2]time.Time {
	ps := periodsBack(to.Add(-time.Nanosecond), anchor, func(_, end time.Time, _ int) bool { return end.After(from) })
	slices.Reverse(ps)
	return ps
}

// periodsBack walks the periods back from the one holding at while more
// says so.
func periodsBack(at time.Time, anchor int, more func(start, end time.Time, have int) bool) [][2]time.Time {
	var out [][2]time.Time
	for {
		s, e := BillingPeriod(at, anchor)
		if !more(s, e, len(out)) {
			return out
		}
		out = append(out, [2]time.Time{s, e})
		at = s.Add(-time.Nanosecond)
	}
}
