package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/sla"
)

// SLAResponse is GET /sla: a month's attainment of the service-level
// objectives, per objective and tenant.
type SLAResponse struct {
	Month    string    `json:"month"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Timezone string    `json:"timezone"`
	// Current says the month is under way: numbers are the month so far,
	// and the burn rates of the last 1, 6 and 24 hours are given.
	Current    bool           `json:"current"`
	Scope      ScopeJSON      `json:"scope"`
	Objectives []SLAObjective `json:"objectives"`
}

// SLAObjective is one objective for one tenant.
type SLAObjective struct {
	Name     string `json:"name"`
	Tenant   string `json:"tenantId"`
	Endpoint string `json:"endpoint"` // "" for every endpoint
	SLIs     []SLI  `json:"slis"`
}

// SLI is one indicator of an objective over the month.
type SLI struct {
	Kind        string      `json:"kind"` // availability or latency
	Target      float64     `json:"target"`
	ThresholdMs *int64      `json:"thresholdMs"` // latency only
	Total       uint64      `json:"total"`
	Good        uint64      `json:"good"`
	Attainment  *float64    `json:"attainment"` // percent; null without requests
	Met         bool        `json:"met"`
	ErrorBudget SLABudget   `json:"errorBudget"`
	BurnRate    BurnRates   `json:"burnRate"`
	WorstHours  []WorstHour `json:"worstHours"`
}

// SLABudget is an indicator's error budget for the month: the bad
// requests the target allows for the requests seen, those spent, and
// the percent left (negative when overspent).
type SLABudget struct {
	Allowed   float64 `json:"allowed"`
	Consumed  uint64  `json:"consumed"`
	Remaining float64 `json:"remaining"`
}

// BurnRates are (bad/total) / (1 − target/100) over the month so far and,
// in the current month, over the last hour, 6 hours and 24 hours; null
// without requests.
type BurnRates struct {
	Month *float64 `json:"month"`
	H1    *float64 `json:"1h"`
	H6    *float64 `json:"6h"`
	H24   *float64 `json:"24h"`
}

// WorstHour is one of the month's hours with the most bad requests.
type WorstHour struct {
	Hour       time.Time `json:"hour"`
	Total      uint64    `json:"total"`
	Bad        uint64    `json:"bad"`
	Attainment float64   `json:"attainment"`
}

// sla reports a month (month=YYYY-MM, default the current one in
// timezone) of the objectives that apply to the caller's scope.
func (a *Analytics) sla(c echo.Context) error {
	q, err := queryParams(c)
	if err != nil {
		return err
	}
	sc, err := requestScope(c)
	if err != nil {
		return err
	}
	var month, zone, objective string
	for name, dst := range map[string]*string{"month": &month, "timezone": &zone, "objective": &objective} {
		if *dst, err = single(q, name); err != nil {
			return err
		}
	}
	loc := time.UTC
	if zone != "" {
		if loc, err = loadZone(zone); err != nil {
			return err
		}
	}
	current := sla.MonthOf(a.now(), loc)
	m := current
	if month != "" {
		if m, err = sla.ParseMonth(month); err != nil {
			return BadRequest("%v", err)
		}
		if current.Before(m) {
			return BadRequest("month %s has not begun in %s (it is %s there)", m, loc, current)
		}
	}
	objectives, err := a.objectivesFor(sc, objective)
	if err != nil {
		return err
	}
	rep, err := a.slaReport(c, m, loc, sc, objectives)
	if err != nil {
		return err
	}
	out := SLAResponse{Month: m.String(), Start: rep.Start.UTC(), End: rep.End.UTC(), Timezone: loc.String(), Current: rep.Current,
		Scope: ScopeJSON{Tenant: sc.Tenant, User: sc.User}, Objectives: make([]SLAObjective, 0, len(rep.Objectives))}
	for _, or := range rep.Objectives {
		o := SLAObjective{Name: or.Objective.Name, Tenant: or.Tenant, Endpoint: or.Objective.Endpoint, SLIs: make([]SLI, 0, len(or.SLIs))}
		for _, s := range or.SLIs {
			o.SLIs = append(o.SLIs, sliJSON(s))
		}
		out.Objectives = append(out.Objectives, o)
	}
	return c.JSON(http.StatusOK, out)
}

// objectivesFor are the plans' objectives that apply to the scope's
// tenant (all of them for every tenant), or the one named.
func (a *Analytics) objectivesFor(sc query.Scope, name string) ([]plans.Objective, error) {
	var visible []plans.Objective
	var names []string
	for _, o := range a.Limits.Plans().Objectives() {
		if sc.Tenant == "" || o.AppliesTo(sc.Tenant) {
			visible = append(visible, o)
			names = append(names, o.Name)
		}
	}
	if name == "" {
		return visible, nil
	}
	for _, o := range visible {
		if o.Name == name {
			return []plans.Objective{o}, nil
		}
	}
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	if len(names) == 0 {
		return nil, BadRequest("objective %q: no objectives apply here", name)
	}
	return nil, BadRequest("objective %q: no such objective here (objectives: %s)", name, strings.Join(names, ", "))
}

func (a *Analytics) slaReport(c echo.Context, m sla.Month, loc *time.Location, sc query.Scope, objectives []plans.Objective) (*sla.Report, error) {
	if a.Records == nil {
		return nil, Errorf(http.StatusServiceUnavailable, "unavailable", "SLA reports read the usage records, and this server has no store for them")
	}
	r := &sla.Reporter{DB: a.Records, Now: a.now}
	return r.Monthly(c.Request().Context(), sla.Request{Month: m, Loc: loc, Scope: sla.Scope{Tenant: sc.Tenant, User: sc.User}, Objectives: objectives})
}

// round6 keeps six decimals: enough for a percent of a billion requests,
// without binary noise (99.899999999…).
func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

func ptr6(x float64, ok bool) *float64 {
	if !ok {
		return nil
	}
	v := round6(x)
	return &v
}

func sliJSON(s sla.SLIReport) SLI {
	b := s.Budget(s.Target)
	out := SLI{Kind: string(s.Kind), Target: s.Target, Total: s.Total, Good: s.Good(), Met: s.Met(s.Target),
		ErrorBudget: SLABudget{Allowed: round6(b.Allowed), Consumed: b.Consumed, Remaining: round6(b.Remaining)},
		WorstHours:  make([]WorstHour, 0, len(s.WorstHours))}
	if s.Kind == sla.Latency {
		ms := s.Threshold.Milliseconds()
		out.ThresholdMs = &ms
	}
	out.Attainment = ptr6(s.Attainment())
	out.BurnRate.Month = ptr6(s.BurnRate(s.Target))
	if s.Recent != nil {
		out.BurnRate.H1 = ptr6(s.Recent[time.Hour].BurnRate(s.Target))
		out.BurnRate.H6 = ptr6(s.Recent[6*time.Hour].BurnRate(s.Target))
		out.BurnRate.H24 = ptr6(s.Recent[24*time.Hour].BurnRate(s.Target))
	}
	for _, h := range s.WorstHours {
		att, _ := h.Attainment()
		out.WorstHours = append(out.WorstHours, WorstHour{Hour: h.Start.UTC(), Total: h.Total, Bad: h.Bad, Attainment: round6(att)})
	}
	return out
}

// slaColumns are the columns of an SLA export.
var slaColumns = []string{"month", "objective", "tenant_id", "endpoint", "sli", "target", "threshold_ms", "total", "good",
	"attainment", "met", "budget_allowed", "budget_consumed", "budget_remaining", "burn_rate"}

// maxSLAMonths bounds the months of one SLA export.
const maxSLAMonths = 24

// exportSLA writes a row per month, objective, tenant and indicator for
// the months the range touches in its time zone, up to the current one.
// CSV, JSON or NDJSON.
func (a *Analytics) exportSLA(c echo.Context, b ExportBody, sc query.Scope, rng query.Range, f query.Filters) error {
	format, err := fixedExport(b, f, "SLA", slaColumns, "report whole objectives")
	if err != nil {
		return err
	}
	first, last := sla.MonthOf(rng.Start, rng.Loc), sla.MonthOf(rng.End.Add(-time.Millisecond), rng.Loc)
	if current := sla.MonthOf(a.now(), rng.Loc); current.Before(last) {
		last = current
	}
	var months []sla.Month
	for m := first; !last.Before(m); m = m.Next() {
		if len(months) == maxSLAMonths {
			return BadRequest("the range touches more than %d months: export at most %d at once", maxSLAMonths, maxSLAMonths)
		}
		months = append(months, m)
	}
	objectives, err := a.objectivesFor(sc, "")
	if err != nil {
		return err
	}
	var rows [][]any
	for _, m := range months {
		rep, err := a.slaReport(c, m, rng.Loc, sc, objectives)
		if err != nil {
			return err
		}
		for _, or := range rep.Objectives {
			for _, s := range or.SLIs {
				j := sliJSON(s)
				var threshold, attainment, burn any
				if j.ThresholdMs != nil {
					threshold = *j.ThresholdMs
				}
				if j.Attainment != nil {
					attainment = *j.Attainment
				}
				if j.BurnRate.Month != nil {
					burn = *j.BurnRate.Month
				}
				rows = append(rows, []any{m.String(), or.Objective.Name, or.Tenant, or.Objective.Endpoint, j.Kind, j.Target, threshold,
					j.Total, j.Good, attainment, j.Met, j.ErrorBudget.Allowed, j.ErrorBudget.Consumed, j.ErrorBudget.Remaining, burn})
			}
		}
	}
	if last.Before(first) { // the range lies ahead: no month to report
		last = first
	}
	compact := func(m sla.Month) string { return strings.ReplaceAll(m.String(), "-", "") }
	name := fmt.Sprintf("apimeter-sla-%s-%s.%s", compact(first), compact(last), format.Extension())
	rec := make([]string, len(slaColumns))
	return writeFixedExport(c, format, name, slaColumns, len(rows),
		func(i int) []string {
			for k, v := range rows[i] {
				rec[k] = csvValue(v)
			}
			return rec
		},
		func(i int) []byte { return orderedObject(slaColumns, rows[i]) })
}

// csvValue writes a cell: nothing for null, numbers as JSON writes them.
func csvValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// orderedObject is a JSON object with the keys in the columns' order.
func orderedObject(keys []string, vals []any) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(vals[i])
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes()
}
