package sla

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/plans"
)

func TestEvaluateAtTheBoundaries(t *testing.T) {
	const h, m = time.Hour, time.Minute
	w := func(pairs ...any) map[time.Duration]Counts {
		out := map[time.Duration]Counts{}
		for i := 0; i < len(pairs); i += 3 {
			out[pairs[i].(time.Duration)] = Counts{Total: uint64(pairs[i+1].(int)), Bad: uint64(pairs[i+2].(int))}
		}
		return out
	}
	for _, c := range []struct {
		name     string
		target   float64
		windows  map[time.Duration]Counts
		severity string // "" for no alert
		min      uint64 // alertMinRequests
	}{
		// 99.9 %: a budget of 0.1 %, so 14.4× is 1.44 % bad.
		{"page at exactly 14.4 in both windows", 99.9, w(h, 10000, 144, 5*m, 1000, 15), SeverityPage, 0},
		{"page: both windows exactly 14.4", 99.9, w(h, 10000, 144, 5*m, 2500, 36), SeverityPage, 0},
		{"14.39 over the hour is no page", 99.9, w(h, 100000, 1439, 5*m, 1000, 15), "", 0},
		{"14.39 over five minutes is no page", 99.9, w(h, 10000, 144, 5*m, 100000, 1439), "", 0},
		{"only the long window burns", 99.9, w(h, 10000, 500, 5*m, 1000, 14), "", 0},
		{"only the short window burns", 99.9, w(h, 10000, 100, 5*m, 1000, 500), "", 0},
		{"no traffic in the short window", 99.9, w(h, 10000, 500, 5*m, 0, 0), "", 0},
		{"no traffic at all", 99.9, w(), "", 0},
		// 6× is 0.6 % bad.
		{"ticket at exactly 6 in both windows", 99.9, w(6*h, 1000000, 6000, 30*m, 10000, 60), SeverityTicket, 0},
		{"5.99 over six hours is no ticket", 99.9, w(6*h, 1000000, 5990, 30*m, 10000, 60), "", 0},
		{"5.99 over thirty minutes is no ticket", 99.9, w(6*h, 1000000, 6000, 30*m, 100000, 599), "", 0},
		{"only six hours burn", 99.9, w(6*h, 1000, 100, 30*m, 1000, 5), "", 0},
		{"a page supersedes the ticket", 99.9, w(h, 1000, 100, 5*m, 100, 10, 6*h, 6000, 600, 30*m, 500, 50), SeverityPage, 0},
		{"the ticket when the page's short window recovered", 99.9, w(h, 1000, 100, 5*m, 100, 0, 6*h, 6000, 600, 30*m, 500, 50), SeverityTicket, 0},
		// 99 %: 14.4× is 14.4 % bad; 99.95 %: 0.72 %.
		{"99 % at 14.4", 99, w(h, 1000, 144, 5*m, 125, 18), SeverityPage, 0},
		{"99 % just under", 99, w(h, 1000, 143, 5*m, 125, 18), "", 0},
		{"99.95 % at 14.4", 99.95, w(h, 10000, 72, 5*m, 1000, 8), SeverityPage, 0},
		{"99.95 % just under", 99.95, w(h, 10000, 71, 5*m, 1000, 8), "", 0},
		{"everything failing", 99.9, w(h, 10, 10, 5*m, 1, 1, 6*h, 10, 10, 30*m, 1, 1), SeverityPage, 0},
		// Fewer requests than alertMinRequests in a rule's long window.
		{"one failure in a quiet hour is no page", 99.9, w(h, 19, 1, 5*m, 1, 1), "", 20},
		{"twenty requests are enough", 99.9, w(h, 20, 1, 5*m, 1, 1), SeverityPage, 20},
		{"a quiet hour, a busy six hours: the ticket", 99.9, w(h, 19, 19, 5*m, 1, 1, 6*h, 2000, 20, 30*m, 100, 1), SeverityTicket, 20},
	} {
		d, ok := Evaluate(c.target, c.windows, DefaultRules, c.min)
		if c.severity == "" {
			require.False(t, ok, "%s: fired %+v", c.name, d)
			continue
		}
		require.True(t, ok, c.name)
		require.Equal(t, c.severity, d.Severity, c.name)
		require.Equal(t, c.windows[d.Rule.Long], d.Long, c.name)
		require.Equal(t, c.windows[d.Rule.Short], d.Short, c.name)
	}
	require.Equal(t, []time.Duration{5 * m, 30 * m, h, 6 * h}, RuleWindows(DefaultRules))
}

func TestCountsArithmetic(t *testing.T) {
	// Exactly at the target is met; one more bad request is not.
	c := Counts{Total: 1000, Bad: 1}
	require.True(t, c.Met(99.9))
	require.False(t, Counts{Total: 1000, Bad: 2}.Met(99.9))
	require.True(t, Counts{Total: 3, Bad: 0}.Met(99.999))
	require.False(t, Counts{Total: 100000, Bad: 1}.Met(99.9999))
	a, ok := c.Attainment()
	require.True(t, ok)
	require.InDelta(t, 99.9, a, 1e-12)
	require.Equal(t, uint64(999), c.Good())
	b := c.Budget(99.9)
	require.InDelta(t, 1.0, b.Allowed, 1e-12)
	require.Equal(t, uint64(1), b.Consumed)
	require.InDelta(t, 0, b.Remaining, 1e-12)
	r, ok := c.BurnRate(99.9)
	require.True(t, ok)
	require.InDelta(t, 1.0, r, 1e-12)
	// Overspent: twice the budget leaves -100 %.
	b = Counts{Total: 1000, Bad: 2}.Budget(99.9)
	require.InDelta(t, -100, b.Remaining, 1e-9)
	// A quarter of a 99 % budget spent: 75 % left, burning at 0.25.
	b = Counts{Total: 2000, Bad: 5}.Budget(99)
	require.InDelta(t, 20, b.Allowed, 1e-12)
	require.InDelta(t, 75, b.Remaining, 1e-9)
	r, _ = Counts{Total: 2000, Bad: 5}.BurnRate(99)
	require.InDelta(t, 0.25, r, 1e-12)
	// Nothing happened: no attainment, no burn, the target met, the
	// whole budget left.
	var zero Counts
	_, ok = zero.Attainment()
	require.False(t, ok)
	_, ok = zero.BurnRate(99.9)
	require.False(t, ok)
	require.True(t, zero.Met(99.9))
	require.Equal(t, Budget{Allowed: 0, Consumed: 0, Remaining: 100}, zero.Budget(99.9))
}

func TestSLIsAndWorstHours(t *testing.T) {
	o := plans.Objective{Name: "x", Availability: 99.5, LatencyThreshold: 250 * time.Millisecond, LatencyTarget: 95}
	require.Equal(t, []SLI{{Kind: Availability, Target: 99.5}, {Kind: Latency, Target: 95, Threshold: 250 * time.Millisecond}}, SLIs(o))
	require.Equal(t, []SLI{{Kind: Latency, Target: 90, Threshold: time.Second}}, SLIs(plans.Objective{LatencyTarget: 90, LatencyThreshold: time.Second}))

	// Ties go to the earlier hour; hours without bad requests are not
	// worst hours; at most five.
	at := func(h int) time.Time { return time.Date(2026, 11, 1, h, 0, 0, 0, time.UTC) }
	hours := []HourTally{
		{at(0), Tally{Total: 10, Errors: 0}},
		{at(1), Tally{Total: 10, Errors: 3}},
		{at(2), Tally{Total: 10, Errors: 5}},
		{at(3), Tally{Total: 20, Errors: 3}},
		{at(4), Tally{Total: 10, Errors: 1, Slow: 9}},
		{at(5), Tally{Total: 10, Errors: 5}},
		{at(6), Tally{Total: 10, Errors: 2}},
		{at(7), Tally{Total: 10, Errors: 3}},
	}
	r := sliReport(SLI{Kind: Availability, Target: 99}, hours, nil, false)
	require.Equal(t, Counts{Total: 90, Bad: 22}, r.Counts)
	require.Equal(t, []Hour{
		{at(2), Counts{10, 5}}, {at(5), Counts{10, 5}}, {at(1), Counts{10, 3}}, {at(3), Counts{20, 3}}, {at(7), Counts{10, 3}},
	}, r.WorstHours)
	require.Nil(t, r.Recent)
	r = sliReport(SLI{Kind: Latency, Target: 99, Threshold: time.Second}, hours, map[time.Duration]Tally{time.Hour: {Total: 4, Errors: 1, Slow: 2}}, true)
	require.Equal(t, Counts{Total: 90, Bad: 9}, r.Counts)
	require.Equal(t, []Hour{{at(4), Counts{10, 9}}}, r.WorstHours)
	require.Equal(t, map[time.Duration]Counts{time.Hour: {4, 2}, 6 * time.Hour: {}, 24 * time.Hour: {}}, r.Recent)
}

func TestMonths(t *testing.T) {
	m, err := ParseMonth("2026-11")
	require.NoError(t, err)
	require.Equal(t, Month{2026, time.November}, m)
	require.Equal(t, "2026-11", m.String())
	require.Equal(t, Month{2027, time.January}, Month{2026, time.December}.Next())
	for _, bad := range []string{"", "2026-13", "2026-1", "26-11", "2026-11-01", "1969-12", "2201-01", "x", "2026-00"} {
		_, err := ParseMonth(bad)
		require.Error(t, err, bad)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	s, e := Month{2026, time.October}.Range(berlin)
	require.Equal(t, "2026-09-30T22:00:00Z", s.UTC().Format(time.RFC3339))
	require.Equal(t, "2026-10-31T23:00:00Z", e.UTC().Format(time.RFC3339), "October ends in winter time")
	require.Equal(t, 31*24+1, int(e.Sub(s).Hours()), "October has an hour more in Berlin")
	require.Equal(t, Month{2026, time.November}, MonthOf(e, berlin))
	require.Equal(t, Month{2026, time.October}, MonthOf(e.Add(-time.Millisecond), berlin))
	require.True(t, Month{2026, time.October}.Before(Month{2026, time.November}))
	require.False(t, Month{2027, time.January}.Before(Month{2026, time.November}))
}
