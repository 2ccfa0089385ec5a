package api

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
)

// The SLA route's numbers against the fixture's records, counted here.

// slaWant is an indicator's month counted from records.
type slaWant struct {
	total, bad uint64
	hours      map[time.Time][2]uint64 // local hour → total, bad
}

// localHourOf is the start of t's hour in loc (an instant).
func localHourOf(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return t.Add(-time.Duration(l.Minute())*time.Minute - time.Duration(l.Second())*time.Second - time.Duration(l.Nanosecond())).UTC()
}

func countSLI(rs []*ingest.Record, latency bool, thresholdMs int64, loc *time.Location) slaWant {
	w := slaWant{hours: map[time.Time][2]uint64{}}
	for _, r := range rs {
		bad := r.StatusCode >= 500
		if latency {
			bad = r.ResponseTimeUs > uint64(thresholdMs)*1000
		}
		h := localHourOf(time.UnixMilli(r.EventTimeMs), loc)
		v := w.hours[h]
		v[0]++
		w.total++
		if bad {
			v[1]++
			w.bad++
		}
		w.hours[h] = v
	}
	return w
}

// check compares an indicator of the response with the counts; target
// in tenths of a percent (999 for 99.9).
func (w slaWant) check(t *testing.T, got SLI, target10 uint64, what string) {
	t.Helper()
	require.Equal(t, float64(target10)/10, got.Target, what)
	require.Equal(t, w.total, got.Total, what)
	require.Equal(t, w.total-w.bad, got.Good, what)
	require.Equal(t, w.bad, got.ErrorBudget.Consumed, what)
	// Met: good/total ≥ target, in integers.
	require.Equal(t, (w.total-w.bad)*1000 >= target10*w.total, got.Met, what)
	share := float64(1000-target10) / 1000
	require.InDelta(t, float64(w.total)*share, got.ErrorBudget.Allowed, 1e-6, what)
	if w.total == 0 {
		require.Nil(t, got.Attainment, what)
		require.Nil(t, got.BurnRate.Month, what)
		require.Equal(t, 100.0, got.ErrorBudget.Remaining, what)
		require.Empty(t, got.WorstHours, what)
		return
	}
	require.NotNil(t, got.Attainment, what)
	require.InDelta(t, 100*float64(w.total-w.bad)/float64(w.total), *got.Attainment, 1e-5, what)
	allowed := float64(w.total) * share
	require.InDelta(t, (allowed-float64(w.bad))/allowed*100, got.ErrorBudget.Remaining, 1e-4, what)
	require.NotNil(t, got.BurnRate.Month, what)
	require.InDelta(t, float64(w.bad)/float64(w.total)/share, *got.BurnRate.Month, 1e-5, what)
	// Worst hours: most bad first, ties to the earlier hour, at most 5.
	type hour struct {
		at         time.Time
		total, bad uint64
	}
	var hs []hour
	for at, v := range w.hours {
		if v[1] > 0 {
			hs = append(hs, hour{at, v[0], v[1]})
		}
	}
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].bad != hs[j].bad {
			return hs[i].bad > hs[j].bad
		}
		return hs[i].at.Before(hs[j].at)
	})
	hs = hs[:min(5, len(hs))]
	require.Len(t, got.WorstHours, len(hs), what)
	for i, h := range hs {
		g := got.WorstHours[i]
		require.True(t, h.at.Equal(g.Hour), "%s: worst hour %d: %s, want %s", what, i, g.Hour, h.at)
		require.Equal(t, h.total, g.Total, what)
		require.Equal(t, h.bad, g.Bad, what)
		require.InDelta(t, 100*float64(h.total-h.bad)/float64(h.total), g.Attainment, 1e-5, what)
	}
}

func inMonth(r *ingest.Record, year int, month time.Month, loc *time.Location) bool {
	start := time.Date(year, month, 1, 0, 0, 0, 0, loc)
	return in(r, start, start.AddDate(0, 1, 0))
}

func TestSLAReportsTheDefaultObjective(t *testing.T) {
	setClock(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	var res SLAResponse
	callJSON(t, "GET", BasePath+"/sla?month=2026-10&timezone=Europe/Berlin", fx.tenantAdminKey, nil, 200, &res)
	require.Equal(t, "2026-10", res.Month)
	require.Equal(t, "Europe/Berlin", res.Timezone)
	require.Equal(t, time.Date(2026, 9, 30, 22, 0, 0, 0, time.UTC), res.Start)
	require.Equal(t, time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), res.End)
	require.False(t, res.Current)
	require.Len(t, res.Objectives, 1)
	o := res.Objectives[0]
	require.Equal(t, "api", o.Name)
	require.Equal(t, fx.tenant, o.Tenant)
	require.Empty(t, o.Endpoint)
	require.Len(t, o.SLIs, 2)
	require.Equal(t, "availability", o.SLIs[0].Kind)
	require.Nil(t, o.SLIs[0].ThresholdMs)
	require.Equal(t, "latency", o.SLIs[1].Kind)
	require.Equal(t, int64(3000), *o.SLIs[1].ThresholdMs)
	rs := where(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && inMonth(r, 2026, time.October, berlin) })
	require.NotEmpty(t, rs)
	countSLI(rs, false, 0, berlin).check(t, o.SLIs[0], 999, "availability")
	countSLI(rs, true, 3000, berlin).check(t, o.SLIs[1], 990, "latency")
	require.NotEmpty(t, o.SLIs[0].WorstHours)
	for _, s := range o.SLIs {
		require.Nil(t, s.BurnRate.H1, "a past month has no recent windows")
		require.Nil(t, s.BurnRate.H6)
		require.Nil(t, s.BurnRate.H24)
	}

	// The month without traffic: nothing, met, the whole budget left.
	res = SLAResponse{}
	callJSON(t, "GET", BasePath+"/sla?month=2026-09", fx.tenantAdminKey, nil, 200, &res)
	require.Len(t, res.Objectives, 1)
	for _, s := range res.Objectives[0].SLIs {
		countSLI(nil, s.Kind == "latency", 3000, time.UTC).check(t, s, map[string]uint64{"availability": 999, "latency": 990}[s.Kind], "September")
		require.True(t, s.Met)
	}
	// The raw JSON says null, not 0.
	rec := call(t, "GET", BasePath+"/sla?month=2026-09", fx.tenantAdminKey, nil)
	require.Contains(t, rec.Body.String(), `"attainment":null`)
	require.Contains(t, rec.Body.String(), `"worstHours":[]`)
}

func TestSLACurrentMonthBurnRates(t *testing.T) {
	now := time.Date(2026, 10, 26, 13, 37, 11, 0, time.UTC)
	setClock(t, now)
	var res SLAResponse
	callJSON(t, "GET", BasePath+"/sla?timezone=Asia/Kolkata", fx.userKey, nil, 200, &res)
	require.Equal(t, "2026-10", res.Month, "the current month by default")
	require.True(t, res.Current)
	require.Len(t, res.Objectives, 1)
	mine := func(start, end time.Time) []*ingest.Record {
		return where(func(r *ingest.Record) bool {
			return r.TenantID == fx.tenant && r.UserID == fx.user && in(r, start, end)
		})
	}
	for i, latency := range []bool{false, true} {
		s := res.Objectives[0].SLIs[i]
		share := map[bool]float64{false: 0.001, true: 0.01}[latency]
		for w, got := range map[time.Duration]*float64{time.Hour: s.BurnRate.H1, 6 * time.Hour: s.BurnRate.H6, 24 * time.Hour: s.BurnRate.H24} {
			c := countSLI(mine(now.Add(-w), now), latency, 3000, time.UTC)
			require.Positive(t, c.total)
			require.NotNil(t, got, "%s %v", w, latency)
			require.InDelta(t, float64(c.bad)/float64(c.total)/share, *got, 1e-5, "%s %v", w, latency)
		}
	}
}

func TestSLAScopes(t *testing.T) {
	setClock(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	oct := func(keep func(r *ingest.Record) bool) []*ingest.Record {
		return where(func(r *ingest.Record) bool { return inMonth(r, 2026, time.October, time.UTC) && keep(r) })
	}
	get := func(key, params string) SLAResponse {
		var res SLAResponse
		callJSON(t, "GET", BasePath+"/sla?month=2026-10&"+params, key, nil, 200, &res)
		return res
	}
	// A user key: its own requests only, whatever it asks.
	res := get(fx.userKey, "")
	require.Equal(t, ScopeJSON{Tenant: fx.tenant, User: fx.user}, res.Scope)
	require.Len(t, res.Objectives, 1)
	countSLI(oct(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && r.UserID == fx.user }), false, 0, time.UTC).
		check(t, res.Objectives[0].SLIs[0], 999, "user")
	require.Equal(t, res, get(fx.userKey, "userId="+fx.user+"&tenantId="+fx.tenant))
	for _, q := range []string{"userId=" + fx.otherUser, "tenantId=" + fx.otherTenant} {
		callJSON(t, "GET", BasePath+"/sla?"+q, fx.userKey, nil, 403, nil)
	}
	// A tenant admin: its tenant, narrowed to a user; never another tenant.
	res = get(fx.tenantAdminKey, "userId="+fx.otherUser)
	require.Len(t, res.Objectives, 1)
	countSLI(oct(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && r.UserID == fx.otherUser }), true, 3000, time.UTC).
		check(t, res.Objectives[0].SLIs[1], 990, "tenant admin, one user")
	callJSON(t, "GET", BasePath+"/sla?tenantId="+fx.otherTenant, fx.tenantAdminKey, nil, 403, nil)
	// A global admin: every tenant with traffic, each on its own, or one.
	res = get(adminKey, "")
	tenants := map[string]bool{}
	for _, r := range oct(func(*ingest.Record) bool { return true }) {
		tenants[r.TenantID] = true
	}
	require.Len(t, res.Objectives, len(tenants))
	for _, o := range res.Objectives {
		require.True(t, tenants[o.Tenant], o.Tenant)
		countSLI(oct(func(r *ingest.Record) bool { return r.TenantID == o.Tenant }), false, 0, time.UTC).check(t, o.SLIs[0], 999, o.Tenant)
	}
	require.True(t, slices.IsSortedFunc(res.Objectives, func(a, b SLAObjective) int { return strings.Compare(a.Tenant, b.Tenant) }))
	res = get(adminKey, "tenantId="+fx.otherTenant)
	require.Len(t, res.Objectives, 1)
	require.Equal(t, fx.otherTenant, res.Objectives[0].Tenant)
}

func TestSLABadInputs(t *testing.T) {
	setClock(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	for _, q := range []string{
		"month=2026-13", "month=26-10", "month=2026-10-01", "month=2026-1", "month=x", "month=1900-01", "month=2026-10&month=2026-09",
		"month=2026-12", "month=2027-01", // not begun
		"timezone=Mars/Olympus", "timezone=Local", "timezone=../../etc/passwd", "timezone=UTC&timezone=UTC",
		"objective=nope", "objective=" + strings.Repeat("x", 500), "objective=api&objective=api",
		"userId=" + url.QueryEscape("a\x01b"), "tenantId=%ZZ",
	} {
		callJSON(t, "GET", BasePath+"/sla?"+q, fx.tenantAdminKey, nil, 400, nil)
	}
	// December begins in Kiritimati (UTC+14) before it does in UTC.
	setClock(t, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	callJSON(t, "GET", BasePath+"/sla?month=2026-12", fx.tenantAdminKey, nil, 400, nil)
	callJSON(t, "GET", BasePath+"/sla?month=2026-12&timezone=Pacific/Kiritimati", fx.tenantAdminKey, nil, 200, nil)
	callJSON(t, "GET", BasePath+"/sla", "", nil, 401, nil)
	// Random pieces never make a 5xx.
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	for i := range 200 {
		var parts []string
		for _, p := range [][]string{
			{"month", "2026-10", "2026-11", "2026-13", "", "9999-01", "2026-10-01", "%ZZ"},
			{"timezone", "UTC", "Asia/Kolkata", "America/St_Johns", "Mars/Olympus", "", "Etc/GMT+12"},
			{"objective", "api", "nope", ""},
			{"tenantId", fx.tenant, fx.otherTenant, "*", ""},
			{"userId", fx.user, fx.otherUser, "ü", ""},
		} {
			if rng.IntN(2) == 0 {
				parts = append(parts, p[0]+"="+pick(p[1:]...))
			}
		}
		checkNo5xx(t, strconv.Itoa(i), "GET", BasePath+"/sla?"+strings.Join(parts, "&"), "", fuzzKeys()[rng.IntN(len(fuzzKeys()))])
	}
}

// slaServer is a server whose plans file sets objectives, over the
// fixture's store and keys.
func slaServer(t *testing.T, file string) *Server {
	ps, err := plans.ParsePlans([]byte(file))
	require.NoError(t, err)
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	lim := limits.New(limits.Config{Plans: ps, Usage: limits.ClickHouse{DB: fx.db}, Clock: limits.ClockFunc(fx.now)})
	srv.MountAnalytics(&Analytics{Query: fx.an.Query, Keys: fx.keys, Now: fx.now, Limits: lim, Records: fx.db})
	return srv
}

// callOn is callJSON against another server.
func callOn(t *testing.T, srv *Server, method, target, key string, body any, want int, out any) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req := newRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	srv.Echo().ServeHTTP(rec, req)
	require.Equal(t, want, rec.Code, "%s %s: %s", method, target, rec.Body.String())
	if want == http.StatusOK && out != nil {
		checkAgainstOpenAPI(t, method, target, want, rec.Body.Bytes())
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out))
	}
	return rec
}

const slaPlans = `plans:
  - name: free
slos:
  - name: orders
    tenant: tenant-1
    endpoint: /api/orders/:id
    availability: 99.5
    latency: {thresholdMs: 200, target: 95}
  - name: t2-only
    tenant: tenant-2
    availability: 99
  - name: all-latency
    latency: {thresholdMs: 1000, target: 90}
`

func TestSLAObjectivesFromThePlansFile(t *testing.T) {
	setClock(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	srv := slaServer(t, slaPlans)
	oct := func(keep func(r *ingest.Record) bool) []*ingest.Record {
		return where(func(r *ingest.Record) bool { return inMonth(r, 2026, time.October, time.UTC) && keep(r) })
	}
	// The tenant admin of tenant-1 sees its objectives, not tenant-2's.
	var res SLAResponse
	callOn(t, srv, "GET", BasePath+"/sla?month=2026-10", fx.tenantAdminKey, nil, 200, &res)
	var names []string
	for _, o := range res.Objectives {
		names = append(names, o.Name)
	}
	require.Equal(t, []string{"orders", "all-latency"}, names)
	orders := res.Objectives[0]
	require.Equal(t, "/api/orders/:id", orders.Endpoint)
	rs := oct(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && r.Endpoint == "/api/orders/:id" })
	require.NotEmpty(t, rs)
	countSLI(rs, false, 0, time.UTC).check(t, orders.SLIs[0], 995, "orders availability")
	countSLI(rs, true, 200, time.UTC).check(t, orders.SLIs[1], 950, "orders latency")
	require.Equal(t, int64(200), *orders.SLIs[1].ThresholdMs)
	countSLI(oct(func(r *ingest.Record) bool { return r.TenantID == fx.tenant }), true, 1000, time.UTC).check(t, res.Objectives[1].SLIs[0], 900, "all-latency")
	require.Len(t, res.Objectives[1].SLIs, 1)
	callOn(t, srv, "GET", BasePath+"/sla?month=2026-10&objective=t2-only", fx.tenantAdminKey, nil, 400, nil)
	res = SLAResponse{}
	callOn(t, srv, "GET", BasePath+"/sla?month=2026-10&objective=orders", fx.tenantAdminKey, nil, 200, &res)
	require.Len(t, res.Objectives, 1)

	// A global admin: each objective for its tenant, or for every tenant.
	res = SLAResponse{}
	callOn(t, srv, "GET", BasePath+"/sla?month=2026-10", adminKey, nil, 200, &res)
	var pairs []string
	for _, o := range res.Objectives {
		pairs = append(pairs, o.Name+"/"+o.Tenant)
	}
	require.Equal(t, []string{"orders/tenant-1", "t2-only/tenant-2", "all-latency/tenant-1", "all-latency/tenant-2", "all-latency/tenant-3"}, pairs)
	countSLI(oct(func(r *ingest.Record) bool { return r.TenantID == "tenant-2" }), false, 0, time.UTC).check(t, res.Objectives[1].SLIs[0], 990, "t2-only")

	// slos: [] turns reports off.
	res = SLAResponse{}
	callOn(t, slaServer(t, "plans:\n  - name: free\nslos: []\n"), "GET", BasePath+"/sla?month=2026-10", adminKey, nil, 200, &res)
	require.Empty(t, res.Objectives)
}

// SLA reports read the store they are given, not the limiter's: a server
// whose limiter counts from the records but that names no store for
// them answers 503.
func TestSLANeedsItsOwnRecordsStore(t *testing.T) {
	setClock(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	lim := limits.New(limits.Config{Usage: limits.ClickHouse{DB: fx.db}, Clock: limits.ClockFunc(fx.now)})
	srv.MountAnalytics(&Analytics{Query: fx.an.Query, Keys: fx.keys, Now: fx.now, Limits: lim})
	rec := callOn(t, srv, "GET", BasePath+"/sla?month=2026-10", adminKey, nil, http.StatusServiceUnavailable, nil)
	require.Contains(t, rec.Body.String(), `"code":"unavailable"`)
	body := map[string]any{"dataset": "sla", "format": "csv", "startDate": "2026-10-01", "endDate": "2026-10-31"}
	callOn(t, srv, "POST", BasePath+"/export", adminKey, body, http.StatusServiceUnavailable, nil)
}

func TestSLAExportMatchesTheRoute(t *testing.T) {
	setClock(t, time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC))
	srv := slaServer(t, slaPlans)
	for _, key := range []string{adminKey, fx.tenantAdminKey, fx.userKey} {
		body := map[string]any{"dataset": "sla", "format": "csv", "startDate": "2026-10-01", "endDate": "2026-11-30", "timezone": "Europe/Berlin"}
		rec := callOn(t, srv, "POST", BasePath+"/export", key, body, 200, nil)
		require.Equal(t, `attachment; filename="apimeter-sla-202610-202611.csv"`, rec.Header().Get("Content-Disposition"))
		require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv"))
		rows, err := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll()
		require.NoError(t, err)
		require.Equal(t, slaColumns, rows[0])
		rows = rows[1:]
		require.Equal(t, strconv.Itoa(len(rows)), rec.Header().Get("X-Export-Rows"))

		// The route's answers for October and November, row for row.
		var want [][]string
		for _, month := range []string{"2026-10", "2026-11"} {
			var res SLAResponse
			callOn(t, srv, "GET", BasePath+"/sla?timezone=Europe/Berlin&month="+month, key, nil, 200, &res)
			for _, o := range res.Objectives {
				for _, s := range o.SLIs {
					num := func(p *float64) string {
						if p == nil {
							return ""
						}
						return strconv.FormatFloat(*p, 'f', -1, 64)
					}
					th := ""
					if s.ThresholdMs != nil {
						th = strconv.FormatInt(*s.ThresholdMs, 10)
					}
					want = append(want, []string{month, o.Name, o.Tenant, o.Endpoint, s.Kind, num(&s.Target), th,
						strconv.FormatUint(s.Total, 10), strconv.FormatUint(s.Good, 10), num(s.Attainment), strconv.FormatBool(s.Met),
						num(&s.ErrorBudget.Allowed), strconv.FormatUint(s.ErrorBudget.Consumed, 10), num(&s.ErrorBudget.Remaining), num(s.BurnRate.Month)})
				}
			}
		}
		require.Equal(t, want, rows, key)
		require.True(t, slices.ContainsFunc(rows, func(r []string) bool { return r[0] == "2026-11" && r[9] == "" }), "November has no traffic: no attainment")

		// JSON and NDJSON carry the same rows, typed.
		body["format"] = "json"
		rec = callOn(t, srv, "POST", BasePath+"/export", key, body, 200, nil)
		var objs []map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &objs))
		require.Len(t, objs, len(rows))
		body["format"] = "ndjson"
		rec = callOn(t, srv, "POST", BasePath+"/export", key, body, 200, nil)
		sc := bufio.NewScanner(bytes.NewReader(rec.Body.Bytes()))
		i := 0
		for sc.Scan() {
			var o map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &o))
			require.Equal(t, objs[i], o)
			require.Len(t, o, len(slaColumns))
			require.Equal(t, rows[i][1], o["objective"])
			require.Equal(t, rows[i][7], strconv.FormatFloat(o["total"].(float64), 'f', -1, 64))
			require.Equal(t, rows[i][10] == "true", o["met"])
			if rows[i][9] == "" {
				require.Nil(t, o["attainment"])
			}
			i++
		}
		require.Equal(t, len(rows), i)
	}
	// Refusals, each a JSON error.
	for _, c := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"dataset": "sla", "format": "arrow"}, 400},
		{map[string]any{"dataset": "sla", "format": "xml"}, 400},
		{map[string]any{"dataset": "sla", "format": "csv", "fields": []string{"month"}}, 400},
		{map[string]any{"dataset": "sla", "format": "csv", "filters": map[string]any{"endpoint": "/api/users"}}, 400},
		{map[string]any{"dataset": "sla", "format": "csv", "startDate": "2000-01-01", "endDate": "2026-11-30"}, 400},
		{map[string]any{"dataset": "sla", "format": "csv", "timezone": "Mars/Olympus"}, 400},
		{map[string]any{"dataset": "sla", "format": "csv", "tenantId": fx.otherTenant}, 403},
	} {
		rec := callOn(t, srv, "POST", BasePath+"/export", fx.tenantAdminKey, c.body, c.want, nil)
		var e struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
		require.NotEmpty(t, e.Error.Message)
	}
	// A range still ahead: the header alone.
	rec := callOn(t, srv, "POST", BasePath+"/export", fx.tenantAdminKey,
		map[string]any{"dataset": "sla", "format": "csv", "startDate": "2027-01-01", "endDate": "2027-02-01"}, 200, nil)
	require.Equal(t, strings.Join(slaColumns, ",")+"\n", rec.Body.String())
}
