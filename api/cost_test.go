package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/graphql"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
)

// TestQuotaCountsCost meters a GraphQL API whose calls cost their query's
// complexity: the quota refuses the call that would pass its total,
// headers and /quota show the weighted use, and after a restart the
// quota is seeded with the stored records' costs (refused calls left
// out).
func TestQuotaCountsCost(t *testing.T) {
	const tenant, user = "wq-tenant", "wq-user"
	ps, err := plans.ParsePlans([]byte("defaultPlan: gql\nplans:\n  - name: gql\n    hourlyRequests: 100000\n    monthlyRequests: 200\n"))
	require.NoError(t, err)
	clock := time.Date(2026, 9, 14, 12, 0, 0, 0, time.UTC)
	now := limits.ClockFunc(func() time.Time { return clock })
	ch := limits.ClickHouse{DB: fx.db}
	lim := limits.New(limits.Config{Plans: ps, Usage: ch, Clock: now})

	// The metered application: each call costs its query's complexity.
	cost := graphql.Cost(graphql.Options{})
	app := echo.New()
	app.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set("tenantId", tenant)
			c.Set("userId", user)
			return next(c)
		}
	})
	app.POST("/graphql", func(c echo.Context) error { return c.JSON(200, map[string]any{"data": nil}) },
		lim.Middleware(limits.MiddlewareConfig{Cost: cost}).Enforce())
	call := func(q string) *httptest.ResponseRecorder {
		body, _ := json.Marshal(map[string]any{"query": q})
		req := httptest.NewRequest("POST", "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, req)
		return rec
	}
	// Costs by the model (each field 1, a list's children times first):
	// users(first: 5) { id name } = 1 + 5×2 = 11; me { id } = 1 + 1 = 2.
	const big, small = `{ users(first: 5) { id name } }`, `{ me { id } }`
	var recs []ingest.Record
	record := func(status int, c uint32) {
		recs = append(recs, ingest.Record{ID: fmt.Sprintf("wq-%d", len(recs)), Type: ingest.TypeAPICall, EventTimeMs: clock.UnixMilli(),
			TenantID: tenant, UserID: user, Endpoint: "/graphql", Method: "POST", StatusCode: uint16(status), Cost: c})
	}
	for i := 1; i <= 18; i++ { // 18 × 11 = 198
		rec := call(big)
		require.Equal(t, 200, rec.Code, "call %d", i)
		require.Equal(t, strconv.Itoa(200-11*i), rec.Header().Get("X-Quota-Remaining"), "call %d", i)
		record(200, 11)
	}
	rec := call(big)
	require.Equal(t, http.StatusTooManyRequests, rec.Code, "198 + 11 would pass 200")
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	record(429, 11)
	rec = call(small)
	require.Equal(t, 200, rec.Code, "198 + 2 fits exactly")
	require.Equal(t, "0", rec.Header().Get("X-Quota-Remaining"))
	require.Equal(t, "200", rec.Header().Get("X-Quota-Limit"))
	record(200, 2)
	require.Equal(t, http.StatusTooManyRequests, call(small).Code)
	record(429, 2)

	readQuota := func(l *limits.Limiter) Limit {
		srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
		srv.MountAnalytics(&Analytics{Query: query.New(fx.db, query.Limits{}), Keys: fx.keys, Limits: l, Now: func() time.Time { return clock }})
		req := httptest.NewRequest("GET", BasePath+"/quota?tenantId="+tenant+"&userId="+user, nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var qs []QuotaLimit
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &qs))
		require.Len(t, qs, 1)
		return qs[0].Limit
	}
	q := readQuota(lim)
	require.Equal(t, uint64(200), q.Used)
	require.Equal(t, uint64(0), *q.Remaining)

	// A restart: the usage stored by the ingester seeds the quota.
	var want uint64
	var cols ingest.UsageColumns
	for i := range recs {
		if recs[i].StatusCode != 429 {
			want += uint64(recs[i].Cost)
		}
		cols.Append(&recs[i])
	}
	require.NoError(t, fx.db.Insert(context.Background(), "usage_events", cols.Block(), store.InsertOptions{DedupToken: "wq"}))
	restarted := limits.New(limits.Config{Plans: ps, Usage: ch, Clock: now})
	q = readQuota(restarted)
	require.Equal(t, want, q.Used, "the stored costs, 429s left out")
	require.Equal(t, uint64(0), *q.Remaining)
}
