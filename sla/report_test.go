package sla

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// The engine tests load generated records — steady traffic over six
// weeks, hours of errors and of slow responses, and records on the
// instants where months begin in UTC, Berlin and Kolkata — and compare
// every report with the same numbers computed here in Go.

var (
	testDB   store.Driver
	testRecs []ingest.Record
)

func TestMain(m *testing.M) {
	db, drop, err := storetest.OpenDB()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sla tests:", err)
		os.Exit(1)
	}
	code := 1
	if err = load(db); err != nil {
		fmt.Fprintln(os.Stderr, "sla tests: load:", err)
	} else {
		testDB = db
		code = m.Run()
	}
	drop()
	os.Exit(code)
}

var (
	tenants   = []string{"t-a", "t-b", "t-c"}
	endpoints = []string{"/api/orders/:id", "/api/users", "/api/search"}
)

func generate() []ingest.Record {
	rng := rand.New(rand.NewPCG(11, 12))
	var out []ingest.Record
	add := func(at time.Time, tenant, user, endpoint string, status uint16, rt time.Duration) {
		out = append(out, ingest.Record{ID: fmt.Sprintf("r%d", len(out)), Type: ingest.TypeAPICall, EventTimeMs: at.UnixMilli(),
			IngestedAtMs: at.UnixMilli(), TenantID: tenant, UserID: user, Endpoint: endpoint, Method: "GET",
			StatusCode: status, ResponseTimeUs: uint64(rt / time.Microsecond)})
	}
	randomCall := func(at time.Time, tenant string, errShare, slowShare float64) {
		status := uint16(200)
		switch x := rng.Float64(); {
		case x < errShare:
			status = []uint16{500, 502, 503, 599}[rng.IntN(4)]
		case x < errShare+0.05:
			status = []uint16{404, 429, 499, 400}[rng.IntN(4)]
		}
		rt := time.Duration(rng.ExpFloat64() * float64(150*time.Millisecond))
		if rng.Float64() < slowShare {
			rt = 3*time.Second + time.Duration(rng.IntN(5000))*time.Millisecond
		}
		add(at, tenant, fmt.Sprintf("u%d", 1+rng.IntN(4)), endpoints[rng.IntN(len(endpoints))], status, rt)
	}
	// Steady traffic, 20 Oct – 8 Dec 2026, with few errors.
	from := time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC)
	span := 49 * 24 * time.Hour
	for range 40000 {
		at := from.Add(time.Duration(rng.Int64N(int64(span))))
		randomCall(at.Truncate(time.Millisecond), tenants[rng.IntN(3)], 0.002, 0.004)
	}
	// Bad hours.
	burst := func(start time.Time, tenant string, n int, errShare, slowShare float64) {
		for range n {
			randomCall(start.Add(time.Duration(rng.Int64N(int64(time.Hour)))).Truncate(time.Millisecond), tenant, errShare, slowShare)
		}
	}
	burst(time.Date(2026, 11, 7, 14, 0, 0, 0, time.UTC), "t-a", 400, 0.4, 0)
	burst(time.Date(2026, 11, 7, 16, 0, 0, 0, time.UTC), "t-a", 100, 0.2, 0)
	burst(time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC), "t-a", 300, 0, 0.6)
	burst(time.Date(2026, 11, 12, 9, 0, 0, 0, time.UTC), "t-b", 200, 0.1, 0.1)
	burst(time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC), "t-b", 100, 0.3, 0.3) // 02:00–03:00 CET, the second of Berlin's two 2 o'clocks
	burst(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), "t-b", 80, 0.3, 0.3)  // the first (CEST)
	burst(time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC), "t-c", 150, 0.25, 0) // 23:30 in Kolkata: the last hours of November there
	// On the months' edges in UTC, Berlin and Kolkata: bad and slow
	// calls a millisecond either side of each boundary.
	for _, edge := range []time.Time{
		time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), // Berlin
		time.Date(2026, 10, 31, 18, 30, 0, 0, time.UTC), time.Date(2026, 11, 30, 18, 30, 0, 0, time.UTC), // Kolkata
		time.Date(2026, 9, 30, 22, 0, 0, 0, time.UTC), // October begins in Berlin (no records yet: the report is empty there)
	} {
		for _, d := range []time.Duration{-time.Millisecond, 0} {
			for i, tenant := range tenants {
				add(edge.Add(d), tenant, "u1", endpoints[i], 503, 4*time.Second)
			}
		}
		// More on the first instants of November than of December, so
		// that cutting either month in the wrong place changes its count.
		if edge.Month() == time.October || edge.Day() == 1 && edge.Month() == time.November {
			for i, tenant := range tenants {
				add(edge, tenant, "u1", endpoints[i], 503, 4*time.Second)
			}
		}
	}
	// Latency exactly at a threshold is good; a microsecond more is not.
	for i := range 30 {
		at := time.Date(2026, 11, 15, 10, i, 0, 0, time.UTC)
		add(at, "t-a", "u2", "/api/orders/:id", 200, 500*time.Millisecond)
		add(at, "t-a", "u2", "/api/search", 200, 500*time.Millisecond+time.Microsecond)
		add(at, "t-c", "u3", "/api/search", 200, 3*time.Second)
		add(at, "t-c", "u3", "/api/users", 200, 3*time.Second+time.Microsecond)
	}
	return out
}

func load(db store.Driver) error {
	ctx := context.Background()
	m, err := schema.NewMigrator(db, schema.Single, nil)
	if err != nil {
		return err
	}
	if _, err := m.Apply(ctx); err != nil {
		return err
	}
	testRecs = generate()
	var cols ingest.UsageColumns
	for i := range testRecs {
		cols.Append(&testRecs[i])
	}
	return db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{DedupToken: "sla-test"})
}

var testObjectives = []plans.Objective{
	{Name: "api", Availability: 99.9, LatencyThreshold: 3 * time.Second, LatencyTarget: 99},
	{Name: "orders", Tenant: "t-a", Endpoint: "/api/orders/:id", Availability: 99.5, LatencyThreshold: 500 * time.Millisecond, LatencyTarget: 95, AlertMinRequests: 20},
	{Name: "search-latency", Endpoint: "/api/search", LatencyThreshold: 500 * time.Millisecond, LatencyTarget: 90, AlertMinRequests: 200},
}

// The expected side: plain loops over the records.

func isBad(r *ingest.Record, k Kind, o plans.Objective) bool {
	if k == Latency {
		return r.ResponseTimeUs > uint64(o.LatencyThreshold.Microseconds())
	}
	return r.StatusCode >= 500
}

func selected(r *ingest.Record, o plans.Objective, sc Scope, tenant string) bool {
	return r.TenantID == tenant && (o.Tenant == "" || r.TenantID == o.Tenant) && (o.Endpoint == "" || r.Endpoint == o.Endpoint) &&
		(sc.User == "" || r.UserID == sc.User) && (sc.Tenant == "" || r.TenantID == sc.Tenant)
}

// localHour is the start of the hour of loc that t falls in.
func localHour(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return t.Add(-time.Duration(l.Minute())*time.Minute - time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond()))
}

type expectedSLI struct {
	total, bad uint64
	hours      map[time.Time][2]uint64 // hour → total, bad
}

func expectSLI(o plans.Objective, sc Scope, tenant string, k Kind, start, end time.Time, loc *time.Location) expectedSLI {
	e := expectedSLI{hours: map[time.Time][2]uint64{}}
	for i := range testRecs {
		r := &testRecs[i]
		at := time.UnixMilli(r.EventTimeMs)
		if at.Before(start) || !at.Before(end) || !selected(r, o, sc, tenant) {
			continue
		}
		h := localHour(at, loc)
		v := e.hours[h]
		v[0]++
		e.total++
		if isBad(r, k, o) {
			v[1]++
			e.bad++
		}
		e.hours[h] = v
	}
	return e
}

func (e expectedSLI) worst() []Hour {
	var out []Hour
	for h, v := range e.hours {
		if v[1] > 0 {
			out = append(out, Hour{Start: h.UTC(), Counts: Counts{Total: v[0], Bad: v[1]}})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bad != out[j].Bad {
			return out[i].Bad > out[j].Bad
		}
		return out[i].Start.Before(out[j].Start)
	})
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// expectedTenants are the tenants a report lists for an objective.
func expectedTenants(o plans.Objective, sc Scope, start, end time.Time, extra ...time.Time) []string {
	set := map[string]bool{}
	for i := range testRecs {
		r := &testRecs[i]
		at := time.UnixMilli(r.EventTimeMs)
		inMonth := !at.Before(start) && at.Before(end)
		inRecent := len(extra) == 2 && !at.Before(extra[0]) && at.Before(extra[1])
		if (inMonth || inRecent) && selected(r, o, sc, r.TenantID) {
			set[r.TenantID] = true
		}
	}
	for _, t := range []string{sc.Tenant, o.Tenant} {
		if t != "" {
			set[t] = true
		}
	}
	var out []string
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func mustLoc(t *testing.T, name string) *time.Location {
	l, err := time.LoadLocation(name)
	require.NoError(t, err)
	return l
}

func TestMonthlyReportsAgreeWithTheRecords(t *testing.T) {
	ctx := context.Background()
	after := time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)
	rep := &Reporter{DB: testDB, Now: func() time.Time { return after }}
	months := []struct {
		month Month
		zone  string
	}{
		{Month{2026, time.November}, "UTC"},
		{Month{2026, time.November}, "Europe/Berlin"},
		{Month{2026, time.November}, "Asia/Kolkata"},
		{Month{2026, time.October}, "Europe/Berlin"}, // 745 hours, two of them 02:00
		{Month{2026, time.September}, "UTC"},         // no records
	}
	scopes := []Scope{{}, {Tenant: "t-a"}, {Tenant: "t-b", User: "u2"}, {Tenant: "t-c"}}
	seenWorst := 0
	for _, m := range months {
		loc := mustLoc(t, m.zone)
		start, end := m.month.Range(loc)
		for _, sc := range scopes {
			name := fmt.Sprintf("%s %s %+v", m.month, m.zone, sc)
			got, err := rep.Monthly(ctx, Request{Month: m.month, Loc: loc, Scope: sc, Objectives: testObjectives})
			require.NoError(t, err, name)
			require.False(t, got.Current, name)
			require.Equal(t, start, got.Start, name)
			require.Equal(t, end, got.End, name)
			// The entries: per objective that applies, per tenant.
			var want []string
			for _, o := range testObjectives {
				if sc.Tenant != "" && o.Tenant != "" && o.Tenant != sc.Tenant {
					continue
				}
				for _, tn := range expectedTenants(o, sc, start, end) {
					want = append(want, o.Name+"/"+tn)
				}
			}
			var have []string
			for _, or := range got.Objectives {
				have = append(have, or.Objective.Name+"/"+or.Tenant)
			}
			require.Equal(t, want, have, name)
			for _, or := range got.Objectives {
				o := or.Objective
				var kinds []Kind
				for _, s := range or.SLIs {
					kinds = append(kinds, s.Kind)
					e := expectSLI(o, sc, or.Tenant, s.Kind, start, end, loc)
					at := fmt.Sprintf("%s: %s/%s %s", name, o.Name, or.Tenant, s.Kind)
					require.Equal(t, Counts{Total: e.total, Bad: e.bad}, s.Counts, at)
					require.Equal(t, e.worst(), s.WorstHours, at)
					seenWorst += len(s.WorstHours)
					require.Nil(t, s.Recent, at)
				}
				require.Equal(t, kindsOf(o), kinds)
			}
		}
	}
	require.Greater(t, seenWorst, 50, "the bad hours show")
}

func kindsOf(o plans.Objective) []Kind {
	var out []Kind
	if o.Availability > 0 {
		out = append(out, Availability)
	}
	if o.LatencyTarget > 0 {
		out = append(out, Latency)
	}
	return out
}

// The boundaries matter: the records a millisecond either side of each
// month's first instant are bad, so a report that cut the month in the
// wrong place (UTC instead of the zone, or an hour off) would count them.
func TestMonthBoundariesInTheZone(t *testing.T) {
	ctx := context.Background()
	rep := &Reporter{DB: testDB, Now: func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }}
	o := []plans.Objective{{Name: "all", Availability: 99}}
	totals := map[string]Counts{}
	for _, zone := range []string{"UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"} {
		loc := mustLoc(t, zone)
		got, err := rep.Monthly(ctx, Request{Month: Month{2026, time.November}, Loc: loc, Scope: Scope{Tenant: "t-c"}, Objectives: o})
		require.NoError(t, err)
		require.Len(t, got.Objectives, 1)
		start, end := Month{2026, time.November}.Range(loc)
		e := expectSLI(o[0], Scope{Tenant: "t-c"}, "t-c", Availability, start, end, loc)
		require.Equal(t, Counts{Total: e.total, Bad: e.bad}, got.Objectives[0].SLIs[0].Counts, zone)
		totals[zone] = got.Objectives[0].SLIs[0].Counts
		// Every worst hour starts on the zone's hour.
		for _, h := range got.Objectives[0].SLIs[0].WorstHours {
			require.Zero(t, h.Start.In(loc).Minute(), zone)
		}
	}
	require.NotEqual(t, totals["UTC"], totals["Europe/Berlin"])
	require.NotEqual(t, totals["UTC"], totals["Asia/Kolkata"])
}

func TestCurrentMonthHasRecentBurnRates(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 20, 3, 41, 17, 123e6, time.UTC) // in t-a's slow hour
	rep := &Reporter{DB: testDB, Now: func() time.Time { return now }}
	loc := mustLoc(t, "Europe/Berlin")
	got, err := rep.Monthly(ctx, Request{Month: Month{2026, time.November}, Loc: loc, Objectives: testObjectives})
	require.NoError(t, err)
	require.True(t, got.Current)
	start, end := Month{2026, time.November}.Range(loc)
	var have []string
	for _, o := range testObjectives {
		for _, tn := range expectedTenants(o, Scope{}, start, end, now.Add(-24*time.Hour), now) {
			have = append(have, o.Name+"/"+tn)
		}
	}
	var names []string
	for _, or := range got.Objectives {
		names = append(names, or.Objective.Name+"/"+or.Tenant)
		for _, s := range or.SLIs {
			require.Len(t, s.Recent, 3)
			for _, w := range []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour} {
				e := expectSLI(or.Objective, Scope{}, or.Tenant, s.Kind, now.Add(-w), now, loc)
				require.Equal(t, Counts{Total: e.total, Bad: e.bad}, s.Recent[w], "%s/%s %s %s", or.Objective.Name, or.Tenant, s.Kind, w)
			}
			// The month so far: the records up to the end of the month
			// (none are in the future of this clock but the generated
			// ones, which count: the month's records as stored).
			e := expectSLI(or.Objective, Scope{}, or.Tenant, s.Kind, start, end, loc)
			require.Equal(t, Counts{Total: e.total, Bad: e.bad}, s.Counts)
		}
	}
	require.Equal(t, have, names)
	// t-a's latency burns in its slow hour.
	api := got.Objectives[slices.IndexFunc(got.Objectives, func(o ObjectiveReport) bool { return o.Objective.Name == "api" && o.Tenant == "t-a" })]
	r, ok := api.SLIs[1].Recent[time.Hour].BurnRate(99)
	require.True(t, ok)
	require.Greater(t, r, 14.4)
}

// The windows' query against Go's counts, for every tenant and window,
// at an instant that is not on a minute.
func TestWindowsQuery(t *testing.T) {
	ctx := context.Background()
	windows := RuleWindows(DefaultRules)
	for _, now := range []time.Time{
		time.Date(2026, 11, 7, 14, 52, 30, 500e6, time.UTC),
		time.Date(2026, 11, 20, 3, 31, 0, 0, time.UTC),
		time.Date(2026, 11, 1, 0, 0, 0, 1e6, time.UTC), // a millisecond after a boundary record
	} {
		for _, o := range testObjectives {
			for _, sc := range []Scope{{}, {Tenant: "t-b"}, {Tenant: "t-a", User: "u2"}} {
				got, err := Windows(ctx, testDB, o, sc, now, windows)
				require.NoError(t, err)
				longest := windows[len(windows)-1]
				// Only tenants with records are listed.
				var want []string
				for _, tn := range tenants {
					if expectSLI(o, sc, tn, Availability, now.Add(-longest), now, time.UTC).total > 0 {
						want = append(want, tn)
					}
				}
				var have []string
				for tn := range got {
					have = append(have, tn)
				}
				sort.Strings(have)
				require.Equal(t, want, have, "%s %s %+v", now, o.Name, sc)
				for tn, byWindow := range got {
					for _, w := range windows {
						for _, k := range []Kind{Availability, Latency} {
							e := expectSLI(o, sc, tn, k, now.Add(-w), now, time.UTC)
							require.Equal(t, Counts{Total: e.total, Bad: e.bad}, byWindow[w].For(k), "%s %s %s %s %s", now, o.Name, tn, w, k)
						}
					}
				}
			}
		}
	}
}

// The check pages for t-a's error hour and opens a ticket for nothing
// else; the alerts agree with a burn-rate computation in integers.
func TestCheckerFiresOnTheRecords(t *testing.T) {
	ctx := context.Background()
	for _, now := range []time.Time{
		time.Date(2026, 11, 7, 14, 50, 0, 0, time.UTC),
		time.Date(2026, 11, 7, 17, 40, 0, 0, time.UTC),
		time.Date(2026, 11, 20, 3, 45, 0, 0, time.UTC),
		time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC),
	} {
		var notified []string
		c := &Checker{DB: testDB, Objectives: testObjectives, Now: func() time.Time { return now },
			Notify: func(_ context.Context, a Alert) (bool, error) {
				notified = append(notified, a.Objective.Name+"/"+a.Tenant+"/"+string(a.SLI.Kind)+"/"+a.Decision.Severity)
				return true, nil
			}}
		fired, err := c.Check(ctx)
		require.NoError(t, err)
		var want []string
		for _, o := range testObjectives {
			for _, tn := range tenants {
				for _, s := range SLIs(o) {
					sev := ""
					for _, r := range DefaultRules {
						l := expectSLI(o, Scope{}, tn, s.Kind, now.Add(-r.Long), now, time.UTC)
						sh := expectSLI(o, Scope{}, tn, s.Kind, now.Add(-r.Short), now, time.UTC)
						if l.total >= o.AlertMinRequests && burnsInIntegers(l, s.Target, r.Factor) && burnsInIntegers(sh, s.Target, r.Factor) {
							sev = r.Severity
							break
						}
					}
					if sev != "" {
						want = append(want, o.Name+"/"+tn+"/"+string(s.Kind)+"/"+sev)
					}
				}
			}
		}
		sort.Strings(want)
		sort.Strings(notified)
		require.Equal(t, want, notified, now)
		require.Len(t, fired, len(want))
		for _, a := range fired {
			require.Equal(t, now, a.At)
			require.Contains(t, a.Subject(), a.Objective.Name)
			require.Contains(t, a.Text(), a.Tenant)
			require.Equal(t, a.Objective.Name, a.Data()["objective"])
		}
		if now.Hour() == 14 {
			require.Contains(t, want, "api/t-a/availability/critical")
		}
		if now.Day() == 20 {
			require.True(t, slices.ContainsFunc(want, func(s string) bool { return strings.HasPrefix(s, "api/t-a/latency/") }))
		}
		if now.Day() == 3 {
			require.Empty(t, want, "quiet traffic fires nothing")
		}
	}
}

// burnsInIntegers: bad/total ≥ factor × (100 − target)/100, with target
// and factor in thousandths.
func burnsInIntegers(e expectedSLI, target, factor float64) bool {
	if e.total == 0 {
		return false
	}
	t := uint64(target*1000 + 0.5)
	f := uint64(factor*1000 + 0.5)
	return e.bad*100*1000*1000 >= f*(100*1000-t)*e.total
}
