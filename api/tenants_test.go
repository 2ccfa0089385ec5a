package api

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
)

// The fixture's tenants share user ids (user-1 of tenant-1 is not user-1
// of tenant-2): over several tenants a user is a (tenant, user) pair.

type tenantUser struct{ tenant, user string }

func pairsOf(rs []*ingest.Record) map[tenantUser]bool {
	out := map[tenantUser]bool{}
	for _, r := range rs {
		out[tenantUser{r.TenantID, r.UserID}] = true
	}
	return out
}

// sharedUserIDs requires the fixture to have user ids in several tenants.
func sharedUserIDs(t *testing.T) {
	t.Helper()
	tenantsOf := map[string]map[string]bool{}
	for _, r := range fx.recs {
		if tenantsOf[r.UserID] == nil {
			tenantsOf[r.UserID] = map[string]bool{}
		}
		tenantsOf[r.UserID][r.TenantID] = true
	}
	shared := 0
	for _, ts := range tenantsOf {
		if len(ts) > 1 {
			shared++
		}
	}
	require.Greater(t, shared, 1, "the fixture needs user ids that several tenants have")
}

func TestUniqueUsersCountTenantUserPairs(t *testing.T) {
	sharedUserIDs(t)
	q := "?startDate=" + fx.start.Format(time.RFC3339) + "&endDate=" + fx.end.Format(time.RFC3339)
	all := where(func(r *ingest.Record) bool { return in(r, fx.start, fx.end) })
	mine := where(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && in(r, fx.start, fx.end) })
	ids := map[string]bool{}
	for p := range pairsOf(all) {
		ids[p.user] = true
	}
	require.Greater(t, len(pairsOf(all)), len(ids))

	var res StatsResponse
	callJSON(t, "GET", BasePath+"/stats"+q, adminKey, nil, 200, &res)
	require.NotNil(t, res.Totals.UniqueUsers)
	require.EqualValues(t, len(pairsOf(all)), *res.Totals.UniqueUsers, "a global admin counts (tenant, user) pairs")
	var top TopUsersResponse
	callJSON(t, "GET", BasePath+"/top-users"+q+"&limit=1000", adminKey, nil, 200, &top)
	require.Len(t, top.Users, int(*res.Totals.UniqueUsers), "/stats and /top-users agree")

	// One tenant: its users, as before.
	for _, c := range []struct{ key, query string }{{fx.tenantAdminKey, ""}, {adminKey, "&tenantId=" + fx.tenant}} {
		res = StatsResponse{}
		callJSON(t, "GET", BasePath+"/stats"+q+c.query, c.key, nil, 200, &res)
		require.EqualValues(t, len(pairsOf(mine)), *res.Totals.UniqueUsers)
	}

	// Active users of the system metrics: pairs too.
	now := fx.end.Add(-2 * time.Hour)
	setClock(t, now)
	var sm SystemMetrics
	callJSON(t, "GET", BasePath+"/system-metrics", adminKey, nil, 200, &sm)
	for name, window := range map[string]time.Duration{"lastHour": time.Hour, "last24Hours": 24 * time.Hour} {
		from, to := now.Add(-window).Truncate(time.Minute), now.Truncate(time.Minute).Add(time.Minute)
		want := pairsOf(where(func(r *ingest.Record) bool { return in(r, from, to) }))
		require.EqualValues(t, len(want), sm.ActiveUsers[name], name)
	}
}

// Grouping by user over several tenants groups by (tenant, user), on
// every source the planner picks for a question about users; the group
// names the tenant as /top-users does (tenantId beside userId).
func TestSeriesByUserAcrossTenants(t *testing.T) {
	sharedUserIDs(t)
	endpoint := busiestValue(func(r *ingest.Record) string { return r.Endpoint })
	region := busiestValue(func(r *ingest.Record) string { return r.Dimensions["region"] })
	dayStart, dayEnd := fx.start.Add(24*time.Hour), fx.end.Add(-24*time.Hour)
	hourStart, hourEnd := fx.start.Add(25*time.Hour), fx.end.Add(-23*time.Hour)
	for _, c := range []struct {
		source     string
		start, end time.Time
		grain      string
		metrics    []string
		groupBy    []string
		filters    map[string]any
		keep       func(r *ingest.Record) bool
	}{
		{source: "user_daily", start: dayStart, end: dayEnd, grain: "day", metrics: []string{"requests"}, groupBy: []string{"userId"}},
		{source: "user_hourly", start: hourStart, end: hourEnd, grain: "hour", metrics: []string{"requests"}, groupBy: []string{"userId"}},
		{source: "usage_daily", start: dayStart, end: dayEnd, grain: "day", metrics: []string{"requests"}, groupBy: []string{"userId"},
			filters: map[string]any{"endpoint": endpoint}, keep: func(r *ingest.Record) bool { return r.Endpoint == endpoint }},
		{source: "usage_hourly", start: hourStart, end: hourEnd, grain: "hour", metrics: []string{"requests"}, groupBy: []string{"userId", "method"},
			filters: map[string]any{"endpoint": endpoint}, keep: func(r *ingest.Record) bool { return r.Endpoint == endpoint }},
		{source: "dimension_hourly", start: hourStart, end: hourEnd, grain: "day", metrics: []string{"requests"}, groupBy: []string{"userId"},
			filters: map[string]any{"dimensions": map[string]any{"region": region}}, keep: func(r *ingest.Record) bool { return r.Dimensions["region"] == region }},
		{source: "usage_events", start: dayStart, end: dayEnd, grain: "day", metrics: []string{"requests", "p95ResponseTime"}, groupBy: []string{"userId"}},
		{source: "user_daily", start: dayStart, end: dayEnd, grain: "day", metrics: []string{"uniqueUsers"}},
		{source: "usage_daily", start: dayStart, end: dayEnd, grain: "day", metrics: []string{"uniqueUsers"}, groupBy: []string{"endpoint"}},
		{source: "usage_events", start: dayStart.Add(time.Minute), end: dayEnd, grain: "day", metrics: []string{"uniqueUsers"}},
	} {
		name := fmt.Sprintf("%s %v by %v", c.source, c.metrics, c.groupBy)
		keep := func(r *ingest.Record) bool { return in(r, c.start, c.end) && (c.keep == nil || c.keep(r)) }
		body := map[string]any{"startDate": c.start.Format(time.RFC3339), "endDate": c.end.Format(time.RFC3339), "granularity": c.grain,
			"metrics": c.metrics}
		if c.groupBy != nil {
			body["groupBy"] = c.groupBy
		}
		if c.filters != nil {
			body["filters"] = c.filters
		}
		bucket := func(r *ingest.Record) int64 {
			at := time.UnixMilli(r.EventTimeMs).UTC()
			if c.grain == "hour" {
				return at.Truncate(time.Hour).Unix()
			}
			return at.Truncate(24 * time.Hour).Unix()
		}
		for _, scope := range []struct {
			key     string
			tenant  string // "" for every tenant
			byPairs bool
		}{{adminKey, "", true}, {fx.tenantAdminKey, fx.tenant, false}} {
			// Go's answer: per group (its dimension values by name) and
			// bucket, the requests and the (tenant, user) pairs.
			type cell struct {
				n     int
				pairs map[tenantUser]bool
			}
			want := map[string]map[int64]*cell{}
			for _, r := range where(func(r *ingest.Record) bool { return keep(r) && (scope.tenant == "" || r.TenantID == scope.tenant) }) {
				g := map[string]string{}
				for _, d := range c.groupBy {
					switch d {
					case "userId":
						g["userId"] = r.UserID
						if scope.byPairs {
							g["tenantId"] = r.TenantID
						}
					case "method":
						g["method"] = r.Method
					case "endpoint":
						g["endpoint"] = r.Endpoint
					}
				}
				key := groupKey(g)
				if want[key] == nil {
					want[key] = map[int64]*cell{}
				}
				b := bucket(r)
				if want[key][b] == nil {
					want[key][b] = &cell{pairs: map[tenantUser]bool{}}
				}
				want[key][b].n++
				want[key][b].pairs[tenantUser{r.TenantID, r.UserID}] = true
			}
			var res SeriesJSON
			callJSON(t, "POST", BasePath+"/time-series", scope.key, body, 200, &res)
			require.Equal(t, c.source, res.Source, name)
			require.Len(t, res.Series, len(want), "%s: one series per group", name)
			for _, s := range res.Series {
				cells, ok := want[groupKey(s.Group)]
				require.True(t, ok, "%s: no such group %v", name, s.Group)
				for _, p := range s.Points {
					at, err := time.Parse(time.RFC3339, p["time"].(string))
					require.NoError(t, err)
					var w cell
					if x := cells[at.Unix()]; x != nil {
						w = *x
					}
					if slices.Contains(c.metrics, "requests") {
						require.EqualValues(t, w.n, p["requests"], "%s %v %s", name, s.Group, at)
					}
					if slices.Contains(c.metrics, "uniqueUsers") {
						n := len(w.pairs)
						if !scope.byPairs {
							ids := map[string]bool{}
							for p := range w.pairs {
								ids[p.user] = true
							}
							n = len(ids)
						}
						require.EqualValues(t, n, p["uniqueUsers"], "%s %v %s", name, s.Group, at)
					}
				}
			}
		}
	}
}

// groupKey is a group's values in name order.
func groupKey(g map[string]string) string {
	var out string
	for _, k := range slices.Sorted(maps.Keys(g)) {
		out += k + "=" + g[k] + ";"
	}
	return out
}

// busiestValue is the value of field most records have (not empty, not a
// folded dimension value).
func busiestValue(field func(r *ingest.Record) string) string {
	n := map[string]int{}
	for i := range fx.recs {
		if v := field(&fx.recs[i]); v != "" && v[0] != '_' {
			n[v]++
		}
	}
	best := ""
	for v, c := range n {
		if c > n[best] || c == n[best] && v < best {
			best = v
		}
	}
	return best
}
