package query

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/store"
)

// expectBy aggregates the fixture in Go by the given dimensions.
func (fx *fixture) expectBy(sc Scope, r Range, f Filters, dims []Dimension) map[string]*expected {
	out := map[string]*expected{}
	for i := range fx.records {
		rec := &fx.records[i]
		if !matches(rec, sc, f, r) {
			continue
		}
		var key []string
		for _, d := range dims {
			key = append(key, dimValue(rec, d))
		}
		k := strings.Join(key, "|")
		if out[k] == nil {
			out[k] = &expected{}
		}
		out[k].add(rec)
	}
	return out
}

func checkAggregate(t *testing.T, e *expected, a Aggregate, latency bool) {
	t.Helper()
	for _, m := range []Metric{Requests, Errors, ClientErrors, ErrorRate, ClientErrorRate, AvgResponseTime, MaxResponseTime, RequestBytes, ResponseBytes} {
		require.InDelta(t, e.value(m), a.Value(m), 1e-9*max(1, e.value(m)), m)
	}
	if latency {
		for m, q := range map[Metric]float64{P50ResponseTime: 0.5, P90ResponseTime: 0.9, P95ResponseTime: 0.95, P99ResponseTime: 0.99} {
			lo, hi := e.quantileBounds(q)
			got := a.Value(m)
			require.True(t, got >= lo*(1-ddError)-1e-9 && got <= hi*(1+ddError)+1e-9, "%s: %v not in [%v, %v]", m, got, lo, hi)
		}
	}
}

func TestTotalsBreakdownsAndTopUsers(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{})
	ctx := context.Background()
	berlin := mustLoc(t, "Europe/Berlin")
	ranges := []Range{
		{fx.start, fx.end, time.UTC},
		{time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), time.Date(2026, 10, 26, 0, 0, 0, 0, berlin), berlin},
		{fx.start.Add(37 * time.Minute), fx.end.Add(-5 * time.Hour), time.UTC},
	}
	for _, r := range ranges {
		for _, sc := range []Scope{{Tenant: "tenant-1"}, {Tenant: "tenant-2", User: "user-3"}, {}} {
			want := fx.expectBy(sc, r, Filters{}, nil)[""]
			got, err := svc.Total(ctx, sc, r, Filters{}, true)
			require.NoError(t, err)
			checkAggregate(t, want, got, true)
			require.Equal(t, uint64(len(want.users)), got.Users)

			for _, dims := range [][]Dimension{{DimEndpoint, DimMethod}, {DimStatusCode}, {DimStatusClass}} {
				bd, err := svc.Breakdown(ctx, sc, r, Filters{}, dims, true, 0)
				require.NoError(t, err)
				w := fx.expectBy(sc, r, Filters{}, dims)
				require.Len(t, bd, len(w))
				for i, b := range bd {
					if i > 0 {
						require.GreaterOrEqual(t, bd[i-1].Requests, b.Requests, "largest first")
					}
					checkAggregate(t, w[strings.Join(b.Key, "|")], b.Aggregate, dims[0] != DimStatusCode)
				}
			}
		}
	}

	// Top users, by each ranking, against a Go ranking.
	r := ranges[0]
	for _, rank := range []RankBy{RankRequests, RankErrors, RankResponseTime, RankBytes} {
		for _, sc := range []Scope{{Tenant: "tenant-3"}, {}} {
			top, err := svc.TopUsers(ctx, sc, r, Filters{}, rank, 5)
			require.NoError(t, err)
			w := fx.expectBy(sc, r, Filters{}, []Dimension{DimTenant, DimUser})
			type kv struct {
				key string
				e   *expected
				v   float64
			}
			var all []kv
			for k, e := range w {
				v := map[RankBy]float64{RankRequests: float64(e.requests), RankErrors: float64(e.e5)*1e9 + float64(e.requests),
					RankResponseTime: float64(e.sum) / float64(e.requests), RankBytes: float64(e.req + e.resp)}[rank]
				all = append(all, kv{k, e, v})
			}
			sort.Slice(all, func(i, j int) bool {
				if all[i].v != all[j].v {
					return all[i].v > all[j].v
				}
				return all[i].key < all[j].key
			})
			require.Len(t, top, 5)
			for i, u := range top {
				require.Equal(t, all[i].key, u.Tenant+"|"+u.User, "rank %s position %d", rank, i)
				checkAggregate(t, all[i].e, u.Aggregate, false)
			}
		}
	}
	_, err := svc.TopUsers(ctx, Scope{}, r, Filters{}, "vanity", 5)
	require.True(t, IsInvalid(err))
	_, err = svc.TopUsers(ctx, Scope{}, r, Filters{}, RankRequests, 0)
	require.True(t, IsInvalid(err))
}

func TestHealthThresholds(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{})
	clock := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	svc.SetClock(func() time.Time { return clock })
	// Traffic two minutes ago, in tenants of its own.
	at := clock.Add(-2 * time.Minute).UnixMilli()
	var cols ingest.UsageColumns
	add := func(tenant, endpoint string, n, failing int, ms uint64) {
		for i := 0; i < n; i++ {
			status := uint16(200)
			if i < failing {
				status = 503
			}
			cols.Append(&ingest.Record{ID: fmt.Sprintf("%s-%s-%d", tenant, endpoint, i), EventTimeMs: at, TenantID: tenant, UserID: "u",
				Endpoint: endpoint, Method: "GET", StatusCode: status, ResponseTimeUs: ms * 1000})
		}
	}
	add("h-ok", "/a", 100, 5, 100)
	add("h-degraded", "/a", 100, 15, 100)
	add("h-unhealthy", "/a", 100, 30, 100)
	add("h-slow", "/a", 100, 0, 3500)
	add("h-one-bad-endpoint", "/a", 95, 0, 100)
	add("h-one-bad-endpoint", "/b", 5, 5, 100)
	add("h-quiet-failure", "/a", 196, 0, 100)
	add("h-quiet-failure", "/rare", 2, 2, 100)
	require.NoError(t, fx.db.Insert(context.Background(), "usage_events", cols.Block(), store.InsertOptions{DedupToken: "health-test"}))

	th := Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second}
	for tenant, want := range map[string]struct {
		status string
		issues []string
	}{
		"h-ok":               {Healthy, nil},
		"h-degraded":         {Degraded, []string{"global errorRate degraded", "endpoint /a errorRate degraded"}},
		"h-unhealthy":        {Unhealthy, []string{"global errorRate unhealthy", "endpoint /a errorRate unhealthy"}},
		"h-slow":             {Degraded, []string{"global averageResponseTime degraded", "endpoint /a averageResponseTime degraded"}},
		"h-one-bad-endpoint": {Healthy, []string{"endpoint /b errorRate unhealthy"}},
		"h-quiet-failure":    {Healthy, nil}, // /rare fails twice: too little traffic to judge alone
		"h-nobody":           {Healthy, nil},
	} {
		rep, err := svc.Health(context.Background(), Scope{Tenant: tenant}, th)
		require.NoError(t, err)
		require.Equal(t, want.status, rep.Status, tenant)
		var got []string
		for _, is := range rep.Issues {
			what := is.Scope
			if is.Endpoint != "" {
				what += " " + is.Endpoint
			}
			got = append(got, what+" "+is.Metric+" "+is.Status)
		}
		require.ElementsMatch(t, want.issues, got, tenant)
	}
	rep, err := svc.Health(context.Background(), Scope{Tenant: "h-degraded"}, th)
	require.NoError(t, err)
	require.Equal(t, uint64(100), rep.Requests)
	require.InDelta(t, 20.0, rep.RequestsPerMin, 1e-9)
	require.InDelta(t, 15.0, rep.ErrorRate, 1e-9)
	require.Equal(t, 1, rep.ActiveEndpoints)
}

func TestStorageAndRecentRequests(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{})
	st, err := svc.Storage(context.Background())
	require.NoError(t, err)
	var raw Storage
	for _, s := range st {
		if s.Table == "usage_events" {
			raw = s
		}
	}
	require.GreaterOrEqual(t, raw.Rows, uint64(60000))
	require.Positive(t, raw.BytesOnDisk)

	now := time.Now()
	n, err := svc.RecentRequests(context.Background(), Scope{Tenant: "tenant-1", User: "user-1"}, time.Hour)
	require.NoError(t, err)
	want := fx.expectBy(Scope{Tenant: "tenant-1", User: "user-1"}, Range{now.Add(-time.Hour), now, time.UTC}, Filters{}, nil)[""]
	if want == nil {
		want = &expected{}
	}
	require.InDelta(t, float64(want.requests), float64(n), 2, "a sliding hour (the clocks differ by a moment)")
}
