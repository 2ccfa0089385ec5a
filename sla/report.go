package sla

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/apimeter/apimeter/plans"
)

// RecentWindows are the windows, ending now, whose burn rates the report
// of the current month shows.
var RecentWindows = []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}

// WorstHourCount is how many worst hours a report lists per indicator.
const WorstHourCount = 5

// Request asks for a month's report.
type Request struct {
	Month Month
	Loc   *time.Location
	// Scope narrows the records: a tenant ("" for every tenant, each
	// judged on its own) and a user ("" for all).
	Scope      Scope
	Objectives []plans.Objective
}

// Report is one month's attainment of the objectives.
type Report struct {
	Month      Month
	Loc        *time.Location
	Start, End time.Time
	// Current says the month is under way: its numbers are the month so
	// far, and the indicators carry the recent windows' counts.
	Current    bool
	Objectives []ObjectiveReport
}

// ObjectiveReport is one objective for one tenant.
type ObjectiveReport struct {
	Objective plans.Objective
	Tenant    string
	SLIs      []SLIReport
}

// SLIReport is one indicator of an objective over the month.
type SLIReport struct {
	SLI
	Counts
	// Recent are the counts of RecentWindows ending now (the current
	// month only, else nil).
	Recent map[time.Duration]Counts
	// WorstHours are the hours with the most bad requests, most first
	// (ties: the earlier first), at most WorstHourCount; hours without a
	// bad request are not listed.
	WorstHours []Hour
}

// Hour is one hour's counts.
type Hour struct {
	Start time.Time
	Counts
}

// Reporter makes monthly reports from a store's raw records.
type Reporter struct {
	DB  DB
	Now func() time.Time
}

// Monthly reports req's month: per objective that applies to the scope,
// one entry per tenant — the scope's tenant or the objective's, or else
// every tenant with records in the month (or, in the current month, in
// the last RecentWindows).
func (r *Reporter) Monthly(ctx context.Context, req Request) (*Report, error) {
	loc := req.Loc
	if loc == nil {
		loc = time.UTC
	}
	now := time.Now()
	if r.Now != nil {
		now = r.Now()
	}
	rep := &Report{Month: req.Month, Loc: loc}
	rep.Start, rep.End = req.Month.Range(loc)
	rep.Current = !now.Before(rep.Start) && now.Before(rep.End)
	for _, o := range req.Objectives {
		if req.Scope.Tenant != "" && !o.AppliesTo(req.Scope.Tenant) {
			continue
		}
		hours, err := Hourly(ctx, r.DB, o, req.Scope, rep.Start, rep.End, loc)
		if err != nil {
			return nil, err
		}
		var recent map[string]map[time.Duration]Tally
		if rep.Current {
			if recent, err = Windows(ctx, r.DB, o, req.Scope, now, RecentWindows); err != nil {
				return nil, err
			}
		}
		tenants := map[string]bool{}
		for t := range hours {
			tenants[t] = true
		}
		for t := range recent {
			tenants[t] = true
		}
		for _, t := range []string{req.Scope.Tenant, o.Tenant} {
			if t != "" {
				tenants[t] = true
			}
		}
		names := make([]string, 0, len(tenants))
		for t := range tenants {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			or := ObjectiveReport{Objective: o, Tenant: t}
			for _, s := range SLIs(o) {
				or.SLIs = append(or.SLIs, sliReport(s, hours[t], recent[t], rep.Current))
			}
			rep.Objectives = append(rep.Objectives, or)
		}
	}
	return rep, nil
}

func sliReport(s SLI, hours []HourTally, recent map[time.Duration]Tally, current bool) SLIReport {
	out := SLIReport{SLI: s}
	var worst []Hour
	for _, h := range hours {
		c := h.For(s.Kind)
		out.Add(c)
		if c.Bad > 0 {
			worst = append(worst, Hour{Start: h.Start, Counts: c})
		}
	}
	slices.SortStableFunc(worst, func(a, b Hour) int {
		if a.Bad != b.Bad {
			if a.Bad > b.Bad {
				return -1
			}
			return 1
		}
		return a.Start.Compare(b.Start)
	})
	out.WorstHours = worst[:min(len(worst), WorstHourCount)]
	if current {
		out.Recent = make(map[time.Duration]Counts, len(RecentWindows))
		for _, w := range RecentWindows {
			out.Recent[w] = recent[w].For(s.Kind)
		}
	}
	return out
}
