package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/forecast"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	require.NoError(t, err)
	return l
}

func TestStatsOfAUserAcrossADSTChange(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	start, end := time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), time.Date(2026, 10, 27, 0, 0, 0, 0, berlin)
	mine := where(func(r *ingest.Record) bool {
		return r.TenantID == fx.tenant && r.UserID == fx.user && in(r, start, end)
	})
	require.Greater(t, len(mine), 200)

	var res StatsResponse
	callJSON(t, "GET", BasePath+"/stats?startDate=2026-10-24&endDate=2026-10-26&timezone=Europe/Berlin&groupBy=day&limit=3", fx.userKey, nil, 200, &res)
	want := sum(mine)
	want.checkTotals(t, res.Totals, "totals")
	want.checkQuantile(t, 0.5, res.Totals.P50ResponseTime)
	want.checkQuantile(t, 0.95, res.Totals.P95ResponseTime)
	want.checkQuantile(t, 0.99, res.Totals.P99ResponseTime)
	require.Nil(t, res.Totals.UniqueUsers, "a user key sees no user counts")
	require.Equal(t, ScopeJSON{Tenant: fx.tenant, User: fx.user}, res.Scope)
	require.True(t, res.Range.Start.Equal(start) && res.Range.End.Equal(end), "%+v", res.Range)

	classes := map[string]uint64{"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
	type em struct{ endpoint, method string }
	byEndpoint := map[em]*agg{}
	endpoints := map[string]bool{}
	for _, r := range mine {
		classes[fmt.Sprintf("%dxx", r.StatusCode/100)]++
		k := em{r.Endpoint, r.Method}
		if byEndpoint[k] == nil {
			byEndpoint[k] = &agg{}
		}
		byEndpoint[k].add(r)
		endpoints[r.Endpoint] = true
	}
	require.Equal(t, classes, res.StatusClasses)
	require.Equal(t, len(endpoints), res.UniqueEndpoints)
	require.Len(t, res.TopEndpoints, 3)
	for i, e := range res.TopEndpoints {
		a := byEndpoint[em{e.Endpoint, e.Method}]
		require.NotNil(t, a)
		a.checkTotals(t, e.Totals, e.Endpoint)
		for k, other := range byEndpoint {
			if i == 0 {
				require.LessOrEqual(t, other.n, a.n, "%v has more requests than the top endpoint", k)
			}
		}
	}

	// One point per local day; 25 October 2026 has 25 hours in Berlin.
	require.NotNil(t, res.Series)
	require.Len(t, res.Series.Series, 1)
	pts := res.Series.Series[0].Points
	require.Len(t, pts, 3)
	for i, p := range pts {
		at, err := time.Parse(time.RFC3339, p["time"].(string))
		require.NoError(t, err)
		dayStart := time.Date(2026, 10, 24+i, 0, 0, 0, 0, berlin)
		require.True(t, at.Equal(dayStart), "point %d at %s", i, at)
		next := time.Date(2026, 10, 25+i, 0, 0, 0, 0, berlin)
		if i == 1 {
			require.Equal(t, 25*time.Hour, next.Sub(dayStart))
		}
		day := sum(where(func(r *ingest.Record) bool {
			return r.TenantID == fx.tenant && r.UserID == fx.user && in(r, dayStart, next)
		}))
		require.EqualValues(t, day.n, p["requests"], "day %d", i)
		require.EqualValues(t, day.e5, p["errors"], "day %d", i)
		require.InDelta(t, day.avgMs(), p["averageResponseTime"], 1e-6, "day %d", i)
	}
}

func TestTimeSeriesByMethodInAHalfHourZone(t *testing.T) {
	kolkata := mustZone(t, "Asia/Kolkata")
	start, end := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC)
	body := map[string]any{
		"startDate": start.Format(time.RFC3339), "endDate": end.Format(time.RFC3339), "timezone": "Asia/Kolkata",
		"granularity": "hour", "metrics": []string{"requests", "errorRate", "p95ResponseTime"}, "groupBy": "method",
		"filters": map[string]any{"statusClass": []int{2, 5}},
	}
	var res SeriesJSON
	callJSON(t, "POST", BasePath+"/time-series", fx.tenantAdminKey, body, 200, &res)
	keep := func(r *ingest.Record) bool {
		return r.TenantID == fx.tenant && in(r, start, end) && (r.StatusCode/100 == 2 || r.StatusCode/100 == 5)
	}
	// Local hours start at :30 UTC: the first bucket begins before the range.
	local := start.In(kolkata)
	first := time.Date(local.Year(), local.Month(), local.Day(), local.Hour(), 0, 0, 0, kolkata)
	require.Equal(t, 30, first.UTC().Minute())
	methods := map[string]bool{}
	for _, r := range where(keep) {
		methods[r.Method] = true
	}
	require.Len(t, res.Series, len(methods))
	for _, s := range res.Series {
		m := s.Group["method"]
		require.True(t, methods[m], m)
		require.Len(t, s.Points, 37) // 36 hours, cut at :30 on both sides
		for i, p := range s.Points {
			from := first.Add(time.Duration(i) * time.Hour)
			at, err := time.Parse(time.RFC3339, p["time"].(string))
			require.NoError(t, err)
			require.True(t, at.Equal(from), "%s != %s", at, from)
			_, off := at.Zone()
			require.Equal(t, 19800, off, "times carry the request's zone")
			bucket := sum(where(func(r *ingest.Record) bool {
				return keep(r) && r.Method == m && in(r, later(from, start), earlier(from.Add(time.Hour), end))
			}))
			require.EqualValues(t, bucket.n, p["requests"], "%s %s", m, from)
			require.InDelta(t, bucket.pct(bucket.e5), p["errorRate"], 1e-9)
			if bucket.n > 0 {
				v := p["p95ResponseTime"].(float64)
				bucket.checkQuantile(t, 0.95, &v)
			} else {
				require.EqualValues(t, 0, p["p95ResponseTime"], "gaps are zeros")
			}
		}
	}
}

func TestEndpointAnalyticsOfAUser(t *testing.T) {
	mine := where(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && r.UserID == fx.user })
	count := map[string]int{}
	for _, r := range mine {
		count[r.Endpoint]++
	}
	endpoint := ""
	for e, n := range count {
		if strings.Contains(e, ":") && (endpoint == "" || n > count[endpoint] || n == count[endpoint] && e < endpoint) {
			endpoint = e
		}
	}
	require.Contains(t, endpoint, ":", "an endpoint with a path parameter, to check the escaping")
	target := BasePath + "/endpoints/" + url.PathEscape(endpoint) + "/analytics?startDate=2026-10-23&endDate=2026-10-27"
	var res EndpointResponse
	callJSON(t, "GET", target, fx.userKey, nil, 200, &res)
	require.Equal(t, endpoint, res.Endpoint)
	rs := where(func(r *ingest.Record) bool {
		return r.TenantID == fx.tenant && r.UserID == fx.user && r.Endpoint == endpoint
	})
	want := sum(rs)
	want.checkTotals(t, res.Totals, endpoint)
	for _, q := range []struct {
		q float64
		v *float64
	}{{0.5, res.Totals.P50ResponseTime}, {0.9, res.Totals.P90ResponseTime}, {0.95, res.Totals.P95ResponseTime}, {0.99, res.Totals.P99ResponseTime}} {
		want.checkQuantile(t, q.q, q.v)
	}
	codes, methods := map[string]uint64{}, map[string]uint64{}
	for _, r := range rs {
		codes[fmt.Sprint(r.StatusCode)]++
		methods[r.Method]++
	}
	require.Equal(t, codes, res.StatusCodes)
	require.Equal(t, methods, res.Methods)
	require.Equal(t, "hour", res.Series.Granularity, "five days: hourly points")
	var total float64
	for _, p := range res.Series.Series[0].Points {
		total += p["requests"].(float64)
	}
	require.EqualValues(t, want.n, total)

	// Escaped or not, a path without the endpoint's traffic shows zeros.
	callJSON(t, "GET", BasePath+"/endpoints/nothing-here/analytics", fx.userKey, nil, 200, &res)
	require.Zero(t, res.Totals.Requests)
	callJSON(t, "GET", BasePath+"/endpoints/%ZZ/analytics", fx.userKey, nil, 400, nil)
}

func TestTopUsersOrder(t *testing.T) {
	type row struct {
		tenant, user string
		a            *agg
	}
	rank := func(tenant string, less func(a, b *agg) int) []row {
		by := map[[2]string]*agg{}
		for _, r := range where(func(r *ingest.Record) bool { return tenant == "" || r.TenantID == tenant }) {
			k := [2]string{r.TenantID, r.UserID}
			if by[k] == nil {
				by[k] = &agg{}
			}
			by[k].add(r)
		}
		var out []row
		for k, a := range by {
			out = append(out, row{k[0], k[1], a})
		}
		slices.SortFunc(out, func(x, y row) int {
			if c := less(x.a, y.a); c != 0 {
				return c
			}
			return strings.Compare(x.tenant+"\x00"+x.user, y.tenant+"\x00"+y.user)
		})
		return out
	}
	desc := func(f func(a *agg) uint64) func(a, b *agg) int {
		return func(a, b *agg) int {
			switch {
			case f(a) > f(b):
				return -1
			case f(a) < f(b):
				return 1
			}
			return 0
		}
	}
	byRequests := desc(func(a *agg) uint64 { return a.n })
	byErrors := func(a, b *agg) int {
		if c := desc(func(a *agg) uint64 { return a.e5 })(a, b); c != 0 {
			return c
		}
		return byRequests(a, b)
	}
	byBytes := desc(func(a *agg) uint64 { return a.rq + a.rs })
	for _, c := range []struct {
		key, query, tenant string
		less               func(a, b *agg) int
	}{
		{fx.tenantAdminKey, "sortBy=requests&limit=5", fx.tenant, byRequests},
		{fx.tenantAdminKey, "sortBy=errors&limit=4", fx.tenant, byErrors},
		{adminKey, "sortBy=bytes&limit=6", "", byBytes},
		{adminKey, "limit=3&tenantId=" + fx.otherTenant, fx.otherTenant, byRequests},
	} {
		var res TopUsersResponse
		callJSON(t, "GET", BasePath+"/top-users?startDate=2026-10-23&endDate=2026-10-27&"+c.query, c.key, nil, 200, &res)
		want := rank(c.tenant, c.less)
		n, _ := url.ParseQuery(c.query)
		limit := 0
		fmt.Sscan(n.Get("limit"), &limit)
		require.Len(t, res.Users, min(limit, len(want)), c.query)
		for i, u := range res.Users {
			require.Equal(t, i+1, u.Rank)
			require.Equal(t, want[i].tenant+"/"+want[i].user, u.Tenant+"/"+u.User, "%s: rank %d", c.query, i+1)
			want[i].a.checkTotals(t, u.Totals, u.User)
		}
	}
}

func TestHealthAtItsThresholds(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Minute).Add(20 * time.Second)
	setClock(t, now)
	at := now.Add(-3 * time.Minute).UnixMilli()
	var cols ingest.UsageColumns
	add := func(tenant string, n, failing int, ms uint64) {
		for i := range n {
			status := uint16(200)
			if i < failing {
				status = 500
			}
			cols.Append(&ingest.Record{ID: fmt.Sprintf("%s-%d", tenant, i), EventTimeMs: at, TenantID: tenant, UserID: "u",
				Endpoint: "/h", Method: "GET", StatusCode: status, ResponseTimeUs: ms * 1000})
		}
	}
	add("h-9", 100, 9, 10)
	add("h-10", 100, 10, 10)
	add("h-24", 100, 24, 10)
	add("h-25", 100, 25, 10)
	add("h-3000ms", 50, 0, 3000)
	add("h-3001ms", 50, 0, 3001)
	require.NoError(t, fx.db.Insert(context.Background(), "usage_events", cols.Block(), store.InsertOptions{DedupToken: "api-health"}))
	for tenant, want := range map[string]string{
		"h-9": "healthy", "h-10": "degraded", "h-24": "degraded", "h-25": "unhealthy", "h-3000ms": "healthy", "h-3001ms": "degraded",
	} {
		var res HealthResponse
		callJSON(t, "GET", BasePath+"/health?tenantId="+tenant, adminKey, nil, 200, &res)
		require.Equal(t, want, res.Status, tenant)
		if want != "healthy" {
			require.NotEmpty(t, res.Issues, tenant)
			require.True(t, slices.ContainsFunc(res.Issues, func(i query.Issue) bool { return i.Scope == "endpoint" && i.Endpoint == "/h" }), tenant)
		}
	}
	var res HealthResponse
	callJSON(t, "GET", BasePath+"/health?tenantId=h-10", adminKey, nil, 200, &res)
	require.InDelta(t, 20.0, res.Metrics.RequestsPerMinute, 1e-9)
	require.InDelta(t, 10.0, res.Metrics.ErrorRate, 1e-9)
	require.Equal(t, 1, res.Metrics.ActiveEndpoints)

	// Anonymous callers see the whole system and no endpoint names.
	callJSON(t, "GET", BasePath+"/health", "", nil, 200, &res)
	for _, is := range res.Issues {
		require.Equal(t, "global", is.Scope)
		require.Empty(t, is.Endpoint)
	}
	require.GreaterOrEqual(t, res.Metrics.RequestsPerMinute, 100.0, "every tenant's traffic (500 requests in five minutes)")
	callJSON(t, "GET", BasePath+"/health", "am_not-a-key", nil, 401, nil)
}

func TestRateLimitAndQuotaCountRealUsage(t *testing.T) {
	clock := time.Date(2026, 10, 25, 10, 20, 0, 0, time.UTC)
	setClock(t, clock)
	// Quota use is the period's recorded requests, less those a limit
	// refused (429).
	count := func(user string, from, to time.Time) uint64 {
		return sum(where(func(r *ingest.Record) bool {
			return r.TenantID == fx.tenant && r.UserID == user && in(r, from, to) && r.StatusCode != 429
		})).n
	}
	var rl RateLimitResponse
	callJSON(t, "GET", BasePath+"/rate-limit", fx.userKey, nil, 200, &rl)
	require.Equal(t, "free", rl.Plan)
	require.Equal(t, uint64(100), *rl.Hourly.Limit)
	// The fixture's routes enforce nothing, so the window holds nothing;
	// a request now would leave it at the end of its minute plus an hour.
	require.Zero(t, rl.Hourly.Used)
	require.Equal(t, uint64(100), *rl.Hourly.Remaining)
	require.True(t, rl.Hourly.ResetAt.Equal(time.Date(2026, 10, 25, 11, 21, 0, 0, time.UTC)), rl.Hourly.ResetAt)

	var qs []Limit
	callJSON(t, "GET", BasePath+"/quota", fx.userKey, nil, 200, &qs)
	require.Len(t, qs, 1)
	month := count(fx.user, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	require.Positive(t, month)
	require.Equal(t, month, qs[0].Used)
	require.Equal(t, uint64(1000), *qs[0].Limit)
	require.InDelta(t, min(100, 100*float64(month)/1000), qs[0].PercentUsed, 1e-9)
	require.True(t, qs[0].ResetAt.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)))
	require.Equal(t, "hard", qs[0].Mode)

	// The forecast reads the user's daily requests of the last five
	// weeks: the same projection from counts made here from the records.
	var withForecast []QuotaLimit
	callJSON(t, "GET", BasePath+"/quota", fx.userKey, nil, 200, &withForecast)
	today := clock.Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -query.ForecastDays)
	days := make([]uint64, query.ForecastDays+1)
	for d := range days {
		days[d] = count(fx.user, first.AddDate(0, 0, d), first.AddDate(0, 0, d+1))
	}
	require.Positive(t, days[query.ForecastDays-1], "the day before has traffic")
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	want := forecast.Project(forecast.Input{Days: days, LastDay: today, TodayElapsed: float64(clock.Sub(today)) / float64(24*time.Hour),
		PeriodStart: start, PeriodEnd: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Limit: 1000, UsedInPeriod: month})
	require.NotNil(t, withForecast[0].Forecast)
	require.Equal(t, want, *withForecast[0].Forecast)
	require.NotNil(t, want.RunsOutAt, "past its quota: the quota ran out")
	require.GreaterOrEqual(t, want.ProjectedAtPeriodEnd, month)

	// An account on Pro with its cycle on the 24th.
	require.NoError(t, fx.db.Exec(context.Background(), `INSERT INTO accounts (tenant_id, user_id, plan, billing_anchor_day, created_at, updated_at, version)
		VALUES ({t:String}, {u:String}, 'pro', 24, now64(3), now64(3), 1)`, store.Named("t", fx.tenant), store.Named("u", fx.otherUser)))
	callJSON(t, "GET", BasePath+"/quota?userId="+fx.otherUser, fx.tenantAdminKey, nil, 200, &qs)
	from := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC)
	require.Equal(t, uint64(100_000), *qs[0].Limit)
	require.True(t, qs[0].PeriodStart.Equal(from))
	require.Equal(t, count(fx.otherUser, from, from.AddDate(0, 1, 0)), qs[0].Used)
	callJSON(t, "GET", BasePath+"/rate-limit?userId="+fx.otherUser, fx.tenantAdminKey, nil, 200, &rl)
	require.Equal(t, "pro", rl.Plan)
	require.Equal(t, uint64(2000), *rl.Hourly.Limit)

	// Enterprise is unlimited: /quota still says what was used.
	require.NoError(t, fx.db.Exec(context.Background(), `INSERT INTO accounts (tenant_id, user_id, plan, billing_anchor_day, created_at, updated_at, version)
		VALUES ({t:String}, {u:String}, 'enterprise', 1, now64(3), now64(3), 2)`, store.Named("t", fx.tenant), store.Named("u", fx.otherUser)))
	callJSON(t, "GET", BasePath+"/quota?userId="+fx.otherUser, fx.tenantAdminKey, nil, 200, &qs)
	require.True(t, qs[0].Unlimited)
	require.Nil(t, qs[0].Limit)
	require.Equal(t, count(fx.otherUser, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)), qs[0].Used)
	callJSON(t, "GET", BasePath+"/rate-limit?userId="+fx.otherUser, fx.tenantAdminKey, nil, 200, &rl)
	require.True(t, rl.Hourly.Unlimited)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestPointsEncodeLikeEncodingJSON(t *testing.T) {
	p := Point{"time": "2026-10-25T00:00:00+02:00", "requests": 12.0, "errorRate": 1e-7, "big": 3e21, "avg": 245.125, "zero": 0.0, "neg": -1.5}
	got, err := json.Marshal(p)
	require.NoError(t, err)
	want, err := json.Marshal(map[string]any(p))
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(got))
	require.True(t, strings.HasPrefix(string(got), `{"time":`), string(got))
}
