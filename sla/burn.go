package sla

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/apimeter/apimeter/plans"
)

// Severities of burn-rate alerts.
const (
	SeverityPage   = "critical" // someone should look now
	SeverityTicket = "warning"  // someone should look today
)

// Rule is a multi-window burn-rate condition: it fires when the error
// budget burns at Factor or faster over both the Long window and the
// Short one (the short window says it is still burning, so a recovered
// outage stops firing within minutes).
type Rule struct {
	Severity    string
	Long, Short time.Duration
	Factor      float64
}

// DefaultRules are the conditions of the SRE workbook for a 30-day
// budget: a page when 2 % of the month's budget went in an hour (14.4×
// over 1 h and 5 min), a ticket when 5 % went in six hours (6× over 6 h
// and 30 min). Most severe first.
var DefaultRules = []Rule{
	{Severity: SeverityPage, Long: time.Hour, Short: 5 * time.Minute, Factor: 14.4},
	{Severity: SeverityTicket, Long: 6 * time.Hour, Short: 30 * time.Minute, Factor: 6},
}

// RuleWindows are the windows rules read, each once, shortest first.
func RuleWindows(rules []Rule) []time.Duration {
	var out []time.Duration
	for _, r := range rules {
		for _, w := range []time.Duration{r.Short, r.Long} {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Decision is a rule that fired, with the counts of its windows.
type Decision struct {
	Rule
	Long, Short Counts
}

// Evaluate judges an indicator's counts per window against rules, in
// their order, and returns the first that fires: a page supersedes a
// ticket. A window without requests never fires, nor a rule whose long
// window holds fewer than minRequests (a few calls an hour: one failure
// is no outage).
func Evaluate(target float64, windows map[time.Duration]Counts, rules []Rule, minRequests uint64) (Decision, bool) {
	for _, r := range rules {
		long, short := windows[r.Long], windows[r.Short]
		if long.Total < minRequests {
			continue
		}
		if long.BurnsAtLeast(target, r.Factor) && short.BurnsAtLeast(target, r.Factor) {
			return Decision{Rule: r, Long: long, Short: short}, true
		}
	}
	return Decision{}, false
}

// Alert is an objective's indicator burning its budget for one tenant.
type Alert struct {
	Objective plans.Objective
	Tenant    string
	SLI       SLI
	Decision  Decision
	At        time.Time
}

// Subject is the alert's one-line summary.
func (a Alert) Subject() string {
	rate, _ := a.Decision.Long.BurnRate(a.SLI.Target)
	return fmt.Sprintf("SLO %s (%s) of tenant %s burns its error budget %.1f× too fast", a.Objective.Name, a.SLI.Kind, a.Tenant, rate)
}

// Text says what fired, with the numbers.
func (a Alert) Text() string {
	long, _ := a.Decision.Long.BurnRate(a.SLI.Target)
	short, _ := a.Decision.Short.BurnRate(a.SLI.Target)
	what := "responses were 5xx"
	if a.SLI.Kind == Latency {
		what = "responses took longer than " + strconv.FormatInt(a.SLI.Threshold.Milliseconds(), 10) + " ms"
	}
	where := "every endpoint"
	if a.Objective.Endpoint != "" {
		where = a.Objective.Endpoint
	}
	return fmt.Sprintf("Objective %s for tenant %s (%s, target %s %%): %d of %d %s over the last %s (burn rate %.2f) and %d of %d over the last %s (burn rate %.2f); the %s threshold is %s×. At this pace the month's error budget lasts %s.",
		a.Objective.Name, a.Tenant, where, strconv.FormatFloat(a.SLI.Target, 'f', -1, 64),
		a.Decision.Long.Bad, a.Decision.Long.Total, what, a.Decision.Rule.Long, long,
		a.Decision.Short.Bad, a.Decision.Short.Total, a.Decision.Rule.Short, short,
		a.Decision.Severity, strconv.FormatFloat(a.Decision.Factor, 'f', -1, 64), lasts(long))
}

// lasts is how long a 30-day budget lasts at a burn rate.
func lasts(rate float64) string {
	d := time.Duration(float64(30*24*time.Hour) / rate)
	if d >= 48*time.Hour {
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	}
	return d.Round(time.Minute).String()
}

// Data is the alert's machine-readable detail.
func (a Alert) Data() map[string]any {
	long, _ := a.Decision.Long.BurnRate(a.SLI.Target)
	short, _ := a.Decision.Short.BurnRate(a.SLI.Target)
	d := map[string]any{
		"objective": a.Objective.Name, "tenantId": a.Tenant, "endpoint": a.Objective.Endpoint, "sli": string(a.SLI.Kind),
		"target": a.SLI.Target, "factor": a.Decision.Factor,
		"longWindowSeconds": int64(a.Decision.Rule.Long / time.Second), "shortWindowSeconds": int64(a.Decision.Rule.Short / time.Second),
		"longBurnRate": long, "shortBurnRate": short,
		"longRequests": a.Decision.Long.Total, "longBad": a.Decision.Long.Bad,
		"shortRequests": a.Decision.Short.Total, "shortBad": a.Decision.Short.Bad,
	}
	if a.SLI.Kind == Latency {
		d["thresholdMs"] = a.SLI.Threshold.Milliseconds()
	}
	return d
}

// Checker evaluates every objective for every tenant with records in the
// rules' longest window and hands what fires to Notify.
type Checker struct {
	DB         DB
	Objectives []plans.Objective
	// Rules default to DefaultRules.
	Rules []Rule
	Now   func() time.Time
	// Notify sends an alert and says whether it went out (a cooldown or
	// an open incident may hold it).
	Notify func(ctx context.Context, a Alert) (bool, error)
}

// Check runs one evaluation and returns the alerts that fired (sent or
// held). A failing objective does not stop the others.
func (c *Checker) Check(ctx context.Context) ([]Alert, error) {
	rules := c.Rules
	if rules == nil {
		rules = DefaultRules
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	windows := RuleWindows(rules)
	var fired []Alert
	var errs []error
	for _, o := range c.Objectives {
		tallies, err := Windows(ctx, c.DB, o, Scope{}, now, windows)
		if err != nil {
			errs = append(errs, fmt.Errorf("objective %s: %w", o.Name, err))
			continue
		}
		tenants := make([]string, 0, len(tallies))
		for t := range tallies {
			tenants = append(tenants, t)
		}
		slices.Sort(tenants)
		for _, t := range tenants {
			for _, s := range SLIs(o) {
				counts := make(map[time.Duration]Counts, len(windows))
				for w, tally := range tallies[t] {
					counts[w] = tally.For(s.Kind)
				}
				d, ok := Evaluate(s.Target, counts, rules, o.AlertMinRequests)
				if !ok {
					continue
				}
				a := Alert{Objective: o, Tenant: t, SLI: s, Decision: d, At: now}
				fired = append(fired, a)
				if c.Notify != nil {
					if _, err := c.Notify(ctx, a); err != nil {
						errs = append(errs, fmt.Errorf("objective %s, tenant %s: %w", o.Name, t, err))
					}
				}
			}
		}
	}
	return fired, errors.Join(errs...)
}
