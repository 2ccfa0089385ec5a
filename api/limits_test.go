package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/query"
)

// TestOwnAPIReportsPlansAndProtectsItself runs the analytics routes
// behind the limits as serve does: a user whose quota of the metered API
// is spent still reads its usage (nothing counted, nothing refused), each
// response carries the plan's headers exactly as /rate-limit and /quota
// report them, and the API's own limit per caller refuses the rest —
// also a caller without a key that names itself anew each time.
func TestOwnAPIReportsPlansAndProtectsItself(t *testing.T) {
	ch := limits.ClickHouse{DB: fx.db}
	clock := time.Date(2026, 10, 25, 10, 20, 0, 0, time.UTC) // October: the busiest user is past 1,000
	lim := limits.New(limits.Config{Usage: ch, Resolver: accounts.New(fx.db), Clock: limits.ClockFunc(func() time.Time { return clock })})
	mw := lim.Middleware(limits.MiddlewareConfig{Skip: IsAdmin})
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountAnalytics(&Analytics{Query: query.New(fx.db, query.Limits{}), Keys: fx.keys, Limits: lim, Now: func() time.Time { return clock },
		Enforce: OwnLimits(mw, 30, time.Minute)})
	calls := 0
	do := func(target, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", target, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		calls++ // a client naming itself anew each time does not escape its limit
		req.Header.Set("X-Forwarded-For", "203.0.113."+strconv.Itoa(calls%250))
		req.Header.Set("X-Real-IP", "203.0.113."+strconv.Itoa(calls%250))
		req.RemoteAddr = "198.51.100.4:4000"
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		return rec
	}
	hdr := func(rec *httptest.ResponseRecorder, name string) string {
		v := rec.Header()[name]
		require.Len(t, v, 1, name)
		return v[0]
	}
	for i := 1; i <= 30; i++ {
		target := []string{BasePath + "/rate-limit", BasePath + "/quota", BasePath + "/stats"}[i%3]
		rec := do(target, fx.userKey)
		require.Equal(t, http.StatusOK, rec.Code, "request %d: %s", i, rec.Body.String())
		require.Equal(t, "1000", hdr(rec, "X-Quota-Limit"))
		require.Equal(t, "0", hdr(rec, "X-Quota-Remaining"), "the quota is spent, and reading goes on")
		require.Equal(t, "100", hdr(rec, "X-RateLimit-Remaining"), "nothing is counted against the plan")
		require.Contains(t, rec.Header()["RateLimit-Policy"], `"api";q=30;w=60`)
		switch i % 3 {
		case 0:
			var rl RateLimitResponse
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &rl))
			require.Equal(t, hdr(rec, "X-RateLimit-Limit"), strconv.FormatUint(*rl.Hourly.Limit, 10))
			require.Equal(t, hdr(rec, "X-RateLimit-Remaining"), strconv.FormatUint(*rl.Hourly.Remaining, 10))
			require.Equal(t, hdr(rec, "X-RateLimit-Reset"), rl.Hourly.ResetAt.Format("2006-01-02T15:04:05Z"))
		case 1:
			var qs []Limit
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &qs))
			require.Equal(t, hdr(rec, "X-Quota-Limit"), strconv.FormatUint(*qs[0].Limit, 10))
			require.Equal(t, hdr(rec, "X-Quota-Remaining"), strconv.FormatUint(*qs[0].Remaining, 10))
			require.Equal(t, hdr(rec, "X-Quota-Reset"), qs[0].ResetAt.Format("2006-01-02T15:04:05Z"))
		}
	}
	rec := do(BasePath+"/stats", fx.userKey)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	retry, err := strconv.Atoi(hdr(rec, "Retry-After"))
	require.NoError(t, err)
	require.Positive(t, retry)
	var body limits.Refusal
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "rate_limit_exceeded", body.Error.Code)
	require.Equal(t, "api", body.Limit.Name)
	require.Nil(t, body.Upgrade, "no plan lifts the API's own limit")
	require.Equal(t, "100", hdr(rec, "X-RateLimit-Limit"), "a 429 carries the plan's headers like every other answer")
	require.Equal(t, "1000", hdr(rec, "X-Quota-Limit"))
	// Admins are not held to either.
	rec = do(BasePath+"/stats", fx.tenantAdminKey)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Header()["RateLimit-Policy"])
	// Without a key: the same limit per address.
	for i := 1; i <= 30; i++ {
		require.Equal(t, http.StatusOK, do(BasePath+"/health", "").Code)
	}
	rec = do(BasePath+"/health", "")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Empty(t, rec.Header()["X-RateLimit-Limit"], "the plan headers are the plans'; the API's limit is in the IETF fields")
	require.Contains(t, rec.Header()["RateLimit"][0], `"api";r=0`)
}

// TestClickHouseLimitsStore checks the limiter's reads and writes in
// apimeter's tables: a period's usage (429s left out), accounts, and
// notice levels that a restart reads back.
func TestClickHouseLimitsStore(t *testing.T) {
	ctx := context.Background()
	ch := limits.ClickHouse{DB: fx.db}
	start, end := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)
	want := uint64(len(where(func(r *ingest.Record) bool {
		return r.TenantID == fx.tenant && r.UserID == fx.user && in(r, start, end) && r.StatusCode != 429
	})))
	got, err := ch.PeriodUsage(ctx, fx.tenant, fx.user, start, end)
	require.NoError(t, err)
	require.Positive(t, want)
	require.Equal(t, want, got)

	acct, err := accounts.New(fx.db).Resolve(ctx, "tenant-x", "nobody")
	require.NoError(t, err)
	require.Equal(t, limits.Account{}, acct, "no account: the default plan")

	period := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	lv, err := ch.Level(ctx, "tenant-x", "u", period)
	require.NoError(t, err)
	require.Zero(t, lv)
	n := limits.NewStoreNotices(ch)
	for _, c := range []struct {
		level int
		sent  bool
	}{{80, true}, {80, false}, {95, true}, {90, false}} {
		ok, err := n.Claim(ctx, "tenant-x", "u", period, c.level)
		require.NoError(t, err)
		require.Equal(t, c.sent, ok, "level %d", c.level)
	}
	// A restart: a new claimer reads 95 back.
	n = limits.NewStoreNotices(ch)
	ok, err := n.Claim(ctx, "tenant-x", "u", period, 95)
	require.NoError(t, err)
	require.False(t, ok)
	ok, err = n.Claim(ctx, "tenant-x", "u", period, 100)
	require.NoError(t, err)
	require.True(t, ok)
	lv, err = ch.Level(ctx, "tenant-x", "u", period)
	require.NoError(t, err)
	require.Equal(t, 100, lv)
}
