package sla

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/store"
)

// DB is what the reports need of a store.
type DB interface {
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// smallDB reads small results in one piece (the embedded engine).
type smallDB interface {
	QuerySmall(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// Scope narrows the records read: one tenant and one user, "" for all.
type Scope struct {
	Tenant string
	User   string
}

// Tally are requests with their 5xx responses and the responses slower
// than an objective's latency threshold.
type Tally struct {
	Total  uint64
	Errors uint64
	Slow   uint64
}

// For are the counts of one indicator.
func (t Tally) For(k Kind) Counts {
	if k == Latency {
		return Counts{Total: t.Total, Bad: t.Slow}
	}
	return Counts{Total: t.Total, Bad: t.Errors}
}

// HourTally is one hour's tally.
type HourTally struct {
	Start time.Time
	Tally
}

// The records an objective is about, within a scope. Values reach the
// SQL only as typed parameters.
const scopeSQL = `
  AND ({tenant:String} = '' OR tenant_id = {tenant:String})
  AND ({user:String} = '' OR user_id = {user:String})
  AND ({endpoint:String} = '' OR endpoint = {endpoint:String})`

func scopeParams(o plans.Objective, sc Scope) []store.Param {
	tenant := sc.Tenant
	if o.Tenant != "" {
		tenant = o.Tenant
	}
	return []store.Param{store.Named("tenant", tenant), store.Named("user", sc.User), store.Named("endpoint", o.Endpoint),
		store.Named("slow_us", uint64(o.LatencyThreshold/time.Microsecond))}
}

// hourlySQL tallies an objective's records per tenant and hour of the
// time zone (a zone half an hour off UTC has its hours at :30 UTC).
const hourlySQL = `SELECT tenant_id, toUnixTimestamp(toStartOfHour(event_time, {tz:String})) AS hour,
  count(), countIf(status_code >= 500), countIf(response_time_us > {slow_us:UInt64})
FROM usage_events
WHERE event_time >= {start:DateTime64(3, 'UTC')} AND event_time < {end:DateTime64(3, 'UTC')}` + scopeSQL + `
GROUP BY tenant_id, hour
ORDER BY tenant_id, hour`

// Hourly tallies the objective's records in [start, end) per tenant and
// hour of loc, in hour order.
func Hourly(ctx context.Context, db DB, o plans.Objective, sc Scope, start, end time.Time, loc *time.Location) (map[string][]HourTally, error) {
	out := map[string][]HourTally{}
	if sc.Tenant != "" && !o.AppliesTo(sc.Tenant) {
		return out, nil
	}
	params := append(scopeParams(o, sc), store.Named("start", start.UTC()), store.Named("end", end.UTC()), store.Named("tz", loc.String()))
	rows, err := db.Query(ctx, hourlySQL, params...)
	if err != nil {
		return nil, fmt.Errorf("sla: hourly tallies: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tenant string
		var hour int64
		var h HourTally
		if err := rows.Scan(&tenant, &hour, &h.Total, &h.Errors, &h.Slow); err != nil {
			return nil, err
		}
		h.Start = time.Unix(hour, 0).UTC()
		out[tenant] = append(out[tenant], h)
	}
	return out, rows.Err()
}

// windowsSQL tallies an objective's records per tenant over n windows
// ending now, window i starting at {from_i}; {from} is the earliest.
func windowsSQL(n int) string {
	var b strings.Builder
	b.WriteString("SELECT tenant_id")
	for i := range n {
		from := fmt.Sprintf("{from_%d:DateTime64(3, 'UTC')}", i)
		fmt.Fprintf(&b, ",\n  countIf(event_time >= %[1]s), countIf(event_time >= %[1]s AND status_code >= 500), countIf(event_time >= %[1]s AND response_time_us > {slow_us:UInt64})", from)
	}
	b.WriteString("\nFROM usage_events\nWHERE event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {now:DateTime64(3, 'UTC')}")
	b.WriteString(scopeSQL)
	b.WriteString("\nGROUP BY tenant_id\nORDER BY tenant_id")
	return b.String()
}

// Windows tallies the objective's records per tenant over each window
// ending at now, [now − window, now). Tenants without records in the
// longest window are left out.
func Windows(ctx context.Context, db DB, o plans.Objective, sc Scope, now time.Time, windows []time.Duration) (map[string]map[time.Duration]Tally, error) {
	if len(windows) == 0 || sc.Tenant != "" && !o.AppliesTo(sc.Tenant) {
		return map[string]map[time.Duration]Tally{}, nil
	}
	params := append(scopeParams(o, sc), store.Named("now", now.UTC()))
	longest := windows[0]
	for i, w := range windows {
		params = append(params, store.Named(fmt.Sprintf("from_%d", i), now.Add(-w).UTC()))
		longest = max(longest, w)
	}
	params = append(params, store.Named("from", now.Add(-longest).UTC()))
	query := db.Query
	if s, ok := db.(smallDB); ok {
		query = s.QuerySmall // a row per tenant
	}
	rows, err := query(ctx, windowsSQL(len(windows)), params...)
	if err != nil {
		return nil, fmt.Errorf("sla: window tallies: %w", err)
	}
	defer rows.Close()
	out := map[string]map[time.Duration]Tally{}
	for rows.Next() {
		var tenant string
		ts := make([]Tally, len(windows))
		dest := []any{&tenant}
		for i := range ts {
			dest = append(dest, &ts[i].Total, &ts[i].Errors, &ts[i].Slow)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		m := make(map[time.Duration]Tally, len(windows))
		for i, w := range windows {
			m[w] = ts[i]
		}
		out[tenant] = m
	}
	return out, rows.Err()
}
