package query

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// The query tests load generated records once per test process and
// compare every answer with the same numbers computed here in Go from the
// records.

type fixture struct {
	db      store.Driver
	drop    func()
	records []ingest.Record
	start   time.Time
	end     time.Time
}

var fix *fixture

func TestMain(m *testing.M) {
	var code int
	if err := setupFixture(); err != nil {
		fmt.Fprintln(os.Stderr, "query tests: fixture:", err)
		code = 1
	} else {
		code = m.Run()
		fix.drop()
	}
	os.Exit(code)
}

// setupFixture loads the records every test reads: five days around the
// end of DST in Europe/Berlin (2026-10-25) — three tenants, 40 users, 12
// endpoints — plus the last two hours, for the minute rollup.
func setupFixture() error {
	db, drop, err := storetest.OpenDB()
	if err != nil {
		return err
	}
	m, err := schema.NewMigrator(db, schema.Single, nil)
	if err == nil {
		_, err = m.Apply(context.Background())
	}
	if err != nil {
		drop()
		return err
	}
	start := time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC)
	g := ingest.NewGenerator(ingest.GeneratorConfig{Seed: 17, Tenants: 3, Users: 40, Endpoints: 12, Start: start, Span: 5 * 24 * time.Hour, Count: 60000})
	var recs []ingest.Record
	var r ingest.Record
	for g.Next(&r) {
		recs = append(recs, r)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	g = ingest.NewGenerator(ingest.GeneratorConfig{Seed: 18, Tenants: 3, Users: 40, Endpoints: 12, Start: now.Add(-2 * time.Hour), Span: 2 * time.Hour, Count: 8000})
	for g.Next(&r) {
		r.ID = "recent-" + r.ID
		recs = append(recs, r)
	}
	foldFixture(recs)
	for i := range recs {
		if recs[i].Type == ingest.TypeAPICall && i%9 == 0 {
			recs[i].Cost = uint32(i % 13) // weighted calls, some free
		}
	}
	var cols ingest.UsageColumns
	for i := range recs {
		if recs[i].Type == ingest.TypeAPICall {
			cols.Append(&recs[i])
		}
	}
	if err := db.Insert(context.Background(), "usage_events", cols.Block(), store.InsertOptions{DedupToken: "fixture"}); err != nil {
		drop()
		return err
	}
	fix = &fixture{db: db, drop: drop, records: recs, start: start, end: start.Add(5 * 24 * time.Hour)}
	return nil
}

func loadFixture(t *testing.T) *fixture {
	t.Helper()
	return fix
}

// expected aggregates records the way a query should.
type expected struct {
	requests, e4, e5, sum, max, req, resp, cost uint64
	lat                                         []uint64
	users                                       map[string]bool
}

func (e *expected) add(r *ingest.Record) {
	e.requests++
	if r.StatusCode >= 400 && r.StatusCode < 500 {
		e.e4++
	}
	if r.StatusCode >= 500 {
		e.e5++
	}
	e.sum += r.ResponseTimeUs
	e.max = max(e.max, r.ResponseTimeUs)
	e.req += r.RequestBytes
	e.resp += r.ResponseBytes
	e.cost += uint64(r.Cost)
	e.lat = append(e.lat, r.ResponseTimeUs)
	if e.users == nil {
		e.users = map[string]bool{}
	}
	// Tenants have user ids of their own: a user is a (tenant, user) pair.
	e.users[r.TenantID+"\x00"+r.UserID] = true
}

// groupDims are the dimensions a request's series are told apart by: over
// every tenant, a user is named with its tenant.
func groupDims(req SeriesRequest) []Dimension {
	if req.Scope.Tenant == "" && slices.Contains(req.GroupBy, DimUser) {
		return append([]Dimension{DimTenant}, req.GroupBy...)
	}
	return req.GroupBy
}

func (e *expected) value(m Metric) float64 {
	a := Aggregate{Requests: e.requests, Errors4xx: e.e4, Errors5xx: e.e5, TimeSumUs: e.sum, TimeMaxUs: e.max,
		RequestBytes: e.req, ResponseBytes: e.resp, Users: uint64(len(e.users)), Cost: e.cost}
	return a.Value(m)
}

// quantile is the exact value at rank q·(n-1), in ms.
func (e *expected) quantileBounds(q float64) (lo, hi float64) {
	s := slices.Clone(e.lat)
	slices.Sort(s)
	rank := q * float64(len(s)-1)
	return float64(s[int(math.Floor(rank))]) / 1000, float64(s[int(math.Ceil(rank))]) / 1000
}

func dimValue(r *ingest.Record, d Dimension) string {
	switch d {
	case DimEndpoint:
		return r.Endpoint
	case DimMethod:
		return r.Method
	case DimStatusCode:
		return fmt.Sprint(r.StatusCode)
	case DimStatusClass:
		return fmt.Sprintf("%dxx", r.StatusCode/100)
	case DimUser:
		return r.UserID
	case DimTenant:
		return r.TenantID
	}
	if name, ok := d.Custom(); ok {
		return r.Dimensions[name]
	}
	return ""
}

func matches(r *ingest.Record, sc Scope, f Filters, rng Range) bool {
	if r.Type != ingest.TypeAPICall {
		return false
	}
	t := time.UnixMilli(r.EventTimeMs)
	if t.Before(rng.Start) || !t.Before(rng.End) {
		return false
	}
	if sc.Tenant != "" && r.TenantID != sc.Tenant || sc.User != "" && r.UserID != sc.User {
		return false
	}
	in := func(v string, set []string) bool { return len(set) == 0 || slices.Contains(set, v) }
	for name, set := range f.Custom {
		if v, ok := r.Dimensions[name]; len(set) > 0 && (!ok || !slices.Contains(set, v)) {
			return false
		}
	}
	inInt := func(v int, set []int) bool { return len(set) == 0 || slices.Contains(set, v) }
	return in(r.Endpoint, f.Endpoint) && in(r.Method, f.Method) && inInt(int(r.StatusCode), f.StatusCode) &&
		inInt(int(r.StatusCode/100), f.StatusClass) && in(r.UserID, f.User)
}

// expectSeries computes a series request in Go.
func (fx *fixture) expectSeries(req SeriesRequest) map[string]map[int64]*expected {
	out := map[string]map[int64]*expected{}
	for i := range fx.records {
		r := &fx.records[i]
		if !matches(r, req.Scope, req.Filters, req.Range) {
			continue
		}
		var key []string
		has := true
		for _, d := range groupDims(req) {
			if name, ok := d.Custom(); ok {
				_, present := r.Dimensions[name]
				has = has && present
			}
			key = append(key, string(d)+"="+dimValue(r, d))
		}
		if !has {
			continue // a series by a custom dimension counts the records that have it
		}
		k := strings.Join(key, ",")
		if out[k] == nil {
			out[k] = map[int64]*expected{}
		}
		b := bucketStart(time.UnixMilli(r.EventTimeMs).In(req.Range.Loc), req.Granularity).Unix()
		if out[k][b] == nil {
			out[k][b] = &expected{}
		}
		out[k][b].add(r)
	}
	return out
}

const ddError = 0.01

func checkSeries(t *testing.T, fx *fixture, req SeriesRequest, res *SeriesResult) {
	t.Helper()
	want := fx.expectSeries(req)
	if len(req.GroupBy) > 0 {
		require.Len(t, res.Series, len(want))
	}
	nb := len(buckets(req.Range, req.Granularity))
	for _, ser := range res.Series {
		var key []string
		for _, d := range groupDims(req) {
			key = append(key, string(d)+"="+ser.Group[d])
		}
		require.Len(t, ser.Group, len(groupDims(req)), "the group names its dimensions")
		w := want[strings.Join(key, ",")]
		require.Len(t, ser.Points, nb, "every bucket, gaps filled")
		for _, pt := range ser.Points {
			e := w[pt.Time.Unix()]
			if e == nil {
				e = &expected{}
			}
			for _, m := range req.Metrics {
				got := pt.Values[m]
				if e.requests == 0 && m != Requests && m != Errors && m != ClientErrors && m != RequestBytes && m != ResponseBytes && m != Cost && m != UniqueUsers {
					// A rate or latency of a bucket without requests: none.
					require.True(t, math.IsNaN(got), "%s at %s without requests: %v, want no value", m, pt.Time, got)
					continue
				}
				if m.latency() {
					q := map[Metric]float64{P50ResponseTime: 0.5, P90ResponseTime: 0.9, P95ResponseTime: 0.95, P99ResponseTime: 0.99}[m]
					lo, hi := e.quantileBounds(q)
					require.True(t, got >= lo*(1-ddError)-1e-9 && got <= hi*(1+ddError)+1e-9, "%s at %s: %v not in [%v, %v]", m, pt.Time, got, lo, hi)
					continue
				}
				require.InDelta(t, e.value(m), got, 1e-9*math.Max(1, math.Abs(got)), "%s %v at %s", m, ser.Group, pt.Time)
			}
		}
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	require.NoError(t, err)
	return l
}

func TestSeriesAgainstRecords(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{})
	ctx := context.Background()
	utc, berlin, kolkata := time.UTC, mustLoc(t, "Europe/Berlin"), mustLoc(t, "Asia/Kolkata")
	berlinDays := Range{Start: time.Date(2026, 10, 23, 0, 0, 0, 0, berlin), End: time.Date(2026, 10, 27, 0, 0, 0, 0, berlin), Loc: berlin}
	all := []Metric{Requests, Errors, ClientErrors, ErrorRate, ClientErrorRate, AvgResponseTime, MaxResponseTime, RequestBytes, ResponseBytes}
	lat := []Metric{Requests, P50ResponseTime, P95ResponseTime, P99ResponseTime}
	for _, c := range []struct {
		name   string
		req    SeriesRequest
		source string
	}{
		{"tenant daily UTC", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: all}, "endpoint_daily"},
		{"tenant daily UTC with latency", SeriesRequest{Scope: Scope{Tenant: "tenant-2"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: lat, GroupBy: []Dimension{DimEndpoint}}, "endpoint_daily"},
		{"user daily Berlin across DST", SeriesRequest{Scope: Scope{Tenant: "tenant-1", User: "user-1"}, Range: berlinDays, Granularity: GrainDay, Metrics: all}, "user_hourly"},
		{"tenant hourly Berlin by status class", SeriesRequest{Scope: Scope{Tenant: "tenant-3"}, Range: berlinDays, Granularity: GrainHour, Metrics: append(all, P95ResponseTime), GroupBy: []Dimension{DimStatusClass}}, "endpoint_hourly"},
		{"user latency (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-1", User: "user-2"}, Range: berlinDays, Granularity: GrainDay, Metrics: lat}, "usage_events"},
		{"Kolkata days (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{time.Date(2026, 10, 23, 0, 0, 0, 0, kolkata), time.Date(2026, 10, 26, 0, 0, 0, 0, kolkata), kolkata}, Granularity: GrainDay, Metrics: all}, "usage_events"},
		{"Kolkata hours (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-2"}, Range: Range{time.Date(2026, 10, 24, 0, 0, 0, 0, kolkata), time.Date(2026, 10, 25, 0, 0, 0, 0, kolkata), kolkata}, Granularity: GrainHour, Metrics: all}, "usage_events"},
		{"unaligned range (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start.Add(90 * time.Minute), fx.start.Add(50 * time.Hour), utc}, Granularity: GrainHour, Metrics: all}, "usage_events"},
		{"admin by user, status code filter", SeriesRequest{Scope: Scope{Tenant: "tenant-2"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: all, GroupBy: []Dimension{DimUser}, Filters: Filters{StatusCode: []int{200, 404}}}, "usage_daily"},
		{"weeks in Berlin", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{time.Date(2026, 10, 19, 0, 0, 0, 0, berlin), time.Date(2026, 11, 2, 0, 0, 0, 0, berlin), berlin}, Granularity: GrainWeek, Metrics: all}, "endpoint_hourly"},
		{"month UTC, every tenant, unique users", SeriesRequest{Range: Range{time.Date(2026, 10, 1, 0, 0, 0, 0, utc), time.Date(2026, 11, 1, 0, 0, 0, 0, utc), utc}, Granularity: GrainMonth, Metrics: []Metric{Requests, UniqueUsers}}, "user_daily"},
		{"every tenant by user, days", SeriesRequest{Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: []Metric{Requests, UniqueUsers}, GroupBy: []Dimension{DimUser}, Filters: Filters{User: []string{"user-1", "user-2"}}}, "user_daily"},
		{"every tenant by user and method, Berlin days (raw)", SeriesRequest{Range: berlinDays, Granularity: GrainDay, Metrics: []Metric{Requests, P95ResponseTime}, GroupBy: []Dimension{DimMethod, DimUser}, Filters: Filters{User: []string{"user-1"}}}, "usage_events"},
		{"user cost by day", SeriesRequest{Scope: Scope{Tenant: "tenant-1", User: "user-3"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: []Metric{Requests, Cost}}, "usage_daily"},
		{"tenant cost by endpoint, Berlin hours", SeriesRequest{Scope: Scope{Tenant: "tenant-2"}, Range: berlinDays, Granularity: GrainHour, Metrics: []Metric{Cost}, GroupBy: []Dimension{DimEndpoint}}, "usage_hourly"},
		{"endpoint and method filters", SeriesRequest{Scope: Scope{Tenant: "tenant-3"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: lat, Filters: Filters{Endpoint: []string{"/api/users", "/api/orders"}, Method: []string{"GET"}}}, "endpoint_daily"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := svc.Series(ctx, c.req)
			require.NoError(t, err)
			require.Equal(t, c.source, res.Source)
			checkSeries(t, fx, c.req, res)
		})
	}

	// Minutes of the last two hours, tenant-wide: the minute rollup.
	now := time.Now().UTC().Truncate(time.Minute)
	req := SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{now.Add(-100 * time.Minute), now.Add(-10 * time.Minute), utc}, Granularity: GrainMinute, Metrics: append(all, P99ResponseTime)}
	res, err := svc.Series(ctx, req)
	require.NoError(t, err)
	require.Equal(t, "endpoint_minute", res.Source)
	checkSeries(t, fx, req, res)
}

func TestSeriesDSTDaysHaveTheirLength(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{})
	berlin := mustLoc(t, "Europe/Berlin")
	res, err := svc.Series(context.Background(), SeriesRequest{Scope: Scope{Tenant: "tenant-1"},
		Range: Range{time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), time.Date(2026, 10, 26, 0, 0, 0, 0, berlin), berlin}, Granularity: GrainHour, Metrics: []Metric{Requests}})
	require.NoError(t, err)
	require.Len(t, res.Series[0].Points, 24+25, "the 25th of October has 25 hours in Berlin")
}

func TestSeriesRefusesOversizedRequests(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{MaxSeries: 5})
	ctx := context.Background()
	r := Range{fx.start, fx.end, time.UTC}
	for _, req := range []SeriesRequest{
		{Range: Range{fx.end, fx.start, time.UTC}, Granularity: GrainDay},
		{Range: Range{fx.start, fx.start.Add(500 * 24 * time.Hour), time.UTC}, Granularity: GrainDay},
		{Range: Range{fx.start, fx.start.Add(10 * 24 * time.Hour), time.UTC}, Granularity: GrainMinute},
		{Range: r, Granularity: "fortnight"},
		{Range: r, Granularity: GrainDay, Metrics: []Metric{"vibes"}},
		{Range: r, Granularity: GrainDay, GroupBy: []Dimension{"color"}},
		{Range: r, Granularity: GrainDay, GroupBy: []Dimension{DimEndpoint}},
		{Range: Range{fx.start, fx.start.Add(250 * 24 * time.Hour), time.UTC}, Granularity: GrainHour}, // 6,000 points
	} {
		_, err := svc.Series(ctx, req)
		require.Error(t, err, "%+v", req)
		require.True(t, IsInvalid(err), "%v", err)
	}
}
