package limits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/forecast"
	"github.com/apimeter/apimeter/plans"
)

// app is an echo app behind the limiter, with the caller named by the
// X-Tenant and X-User request headers (an auth middleware's job).
type app struct {
	e      *echo.Echo
	l      *Limiter
	mw     *Middleware
	clock  *ManualClock
	mu     sync.Mutex
	events []Event
	served int
}

func newApp(t *testing.T, cfg Config) *app {
	a := &app{e: echo.New(), clock: NewManualClock(time.Date(2028, 2, 10, 9, 30, 0, 0, time.UTC))}
	if cfg.Clock == nil {
		cfg.Clock = a.clock
	}
	cfg.OnEvent = func(e Event) {
		a.mu.Lock()
		a.events = append(a.events, e)
		a.mu.Unlock()
	}
	a.l = New(cfg)
	a.mw = a.l.Middleware(MiddlewareConfig{})
	a.e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set("tenantId", c.Request().Header.Get("X-Tenant"))
			c.Set("userId", c.Request().Header.Get("X-User"))
			return next(c)
		}
	})
	ok := func(c echo.Context) error {
		a.mu.Lock()
		a.served++
		a.mu.Unlock()
		return c.String(http.StatusOK, "ok")
	}
	a.e.GET("/api/things", ok, a.mw.Enforce())
	a.e.POST("/api/bulk-operation", ok, a.mw.PlanRateLimit(), a.mw.EnforceQuota(), a.mw.EndpointRateLimit("/api/bulk-operation", 5, time.Minute))
	return a
}

func (a *app) call(method, path, tenant, user string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("X-Tenant", tenant)
	req.Header.Set("X-User", user)
	req.RemoteAddr = "192.0.2.7:5555"
	rec := httptest.NewRecorder()
	a.e.ServeHTTP(rec, req)
	return rec
}

func (a *app) eventsOf(typ string) []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Event
	for _, e := range a.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func TestFreeUsersHundredAndFirstRequestIsRefused(t *testing.T) {
	a := newApp(t, Config{})
	for i := 1; i <= 100; i++ {
		rec := a.call("GET", "/api/things", "acme", "alice")
		require.Equal(t, http.StatusOK, rec.Code, "request %d", i)
		require.Equal(t, "100", Header(rec.Header(), "X-RateLimit-Limit"))
		require.Equal(t, strconv.Itoa(100-i), Header(rec.Header(), "X-RateLimit-Remaining"))
		require.Equal(t, "1000", Header(rec.Header(), "X-Quota-Limit"))
		require.Equal(t, strconv.Itoa(1000-i), Header(rec.Header(), "X-Quota-Remaining"))
	}
	a.clock.Advance(10 * time.Minute)
	rec := a.call("GET", "/api/things", "acme", "alice")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, []string{"100"}, rec.Header()["X-RateLimit-Limit"], "spelled as the contract spells it")
	require.Equal(t, []string{"1000"}, rec.Header()["X-Quota-Limit"])
	// The 100 were counted in the 09:30 slot, which leaves the window at 10:31.
	require.Equal(t, "2028-02-10T10:31:00Z", Header(rec.Header(), "X-RateLimit-Reset"))
	require.Equal(t, strconv.Itoa(int((51 * time.Minute).Seconds())), rec.Header().Get("Retry-After"))
	require.Equal(t, "2028-03-01T00:00:00Z", Header(rec.Header(), "X-Quota-Reset"))
	require.Equal(t, "900", Header(rec.Header(), "X-Quota-Remaining"), "the refused request used no quota")
	require.Equal(t, []string{`"hourly";q=100;w=3600`, `"quota";q=1000;w=2505600`}, rec.Header()["RateLimit-Policy"]) // February 2028 has 29 days
	require.Equal(t, []string{`"hourly";r=0;t=3060`, `"quota";r=900;t=1693200`}, rec.Header()["RateLimit"])
	var body Refusal
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "rate_limit_exceeded", body.Error.Code)
	require.Equal(t, "hourly", body.Limit.Name)
	require.EqualValues(t, 100, *body.Limit.Limit)
	require.EqualValues(t, 0, *body.Limit.Remaining)
	require.Equal(t, "free", body.Plan)
	require.NotNil(t, body.Upgrade)
	require.Equal(t, "starter", body.Upgrade.Plan)
	require.EqualValues(t, 500, body.Upgrade.HourlyRequests)
	require.EqualValues(t, 51*60, body.RetryAfterSeconds)
	require.Equal(t, 100, a.served)
	require.Eventually(t, func() bool { return len(a.eventsOf(EventRateLimitExceeded)) == 1 }, 5*time.Second, 5*time.Millisecond)
	// Another user is not affected.
	require.Equal(t, http.StatusOK, a.call("GET", "/api/things", "acme", "bob").Code)
	// At 10:31 the window has room again.
	a.clock.Set(time.Date(2028, 2, 10, 10, 31, 0, 0, time.UTC))
	rec = a.call("GET", "/api/things", "acme", "alice")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "99", Header(rec.Header(), "X-RateLimit-Remaining"))
}

// levels is a LevelStore kept by the test: what survives a restart.
type levels struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *levels) Level(_ context.Context, tenant, user string, p time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[tenant+"/"+user+"/"+p.String()], nil
}

func (s *levels) Record(_ context.Context, tenant, user string, p time.Time, level int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[tenant+"/"+user+"/"+p.String()] = level
	return nil
}

// recorded is a UsageSource counting what the tracking of the served
// requests would have stored.
type recorded struct {
	mu sync.Mutex
	n  map[string]uint64
}

func (r *recorded) PeriodUsage(_ context.Context, tenant, user string, _, _ time.Time) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[tenant+"/"+user], nil
}

func (r *recorded) add(user string, n uint64) {
	r.mu.Lock()
	r.n["acme/"+user] += n
	r.mu.Unlock()
}

func thresholds(evs []Event) []int {
	var out []int
	for _, e := range evs {
		out = append(out, e.Data["threshold"].(int))
	}
	return out
}

func TestQuotaNoticesOnceEachAcrossARestart(t *testing.T) {
	ps, err := plans.ParsePlans([]byte("defaultPlan: metered\nplans:\n  - name: metered\n    monthlyRequests: 100\n  - name: bigger\n    monthlyRequests: 1000\n"))
	require.NoError(t, err)
	store := &levels{m: map[string]int{}}
	usage := &recorded{n: map[string]uint64{}}
	cfg := func() Config {
		return Config{Plans: ps, Usage: usage, Notices: NewStoreNotices(store), RefreshInterval: time.Hour}
	}
	serve := func(a *app, from, to int) {
		for i := from; i <= to; i++ {
			rec := a.call("GET", "/api/things", "acme", "carol")
			require.Equal(t, http.StatusOK, rec.Code, "request %d", i)
			require.Equal(t, strconv.Itoa(100-i), Header(rec.Header(), "X-Quota-Remaining"), "request %d", i)
			usage.add("carol", 1)
		}
	}
	a := newApp(t, cfg())
	serve(a, 1, 79)
	require.Empty(t, a.eventsOf(EventQuotaWarning))
	serve(a, 80, 85)
	require.Equal(t, []int{80}, thresholds(a.eventsOf(EventQuotaWarning)))

	// A restart: a new limiter and backend; the count comes back from
	// the recorded usage, the levels from the store.
	b := newApp(t, cfg())
	serve(b, 86, 89)
	require.Empty(t, b.eventsOf(EventQuotaWarning), "80 is not sent again")
	serve(b, 90, 100)
	require.Equal(t, []int{90, 95}, thresholds(b.eventsOf(EventQuotaWarning)))
	exceeded := b.eventsOf(EventQuotaExceeded)
	require.Len(t, exceeded, 1)
	require.Equal(t, "bigger", exceeded[0].Data["upgrade"].(*Upgrade).Plan)
	rec := b.call("GET", "/api/things", "acme", "carol")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	var body Refusal
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "quota_exceeded", body.Error.Code)
	require.Equal(t, "monthly_requests", body.Limit.Name)
	require.Len(t, b.eventsOf(EventQuotaExceeded), 1, "a refusal after 100 % sends nothing new")

	// Usage that jumps from 0 to 96 % (requests recorded elsewhere) sends
	// only the highest level crossed.
	usage.add("dave", 96)
	require.Equal(t, http.StatusOK, b.call("GET", "/api/things", "acme", "dave").Code)
	var dave []int
	for _, e := range b.eventsOf(EventQuotaWarning) {
		if e.User == "dave" {
			dave = append(dave, e.Data["threshold"].(int))
		}
	}
	require.Equal(t, []int{95}, dave)
}

func TestSoftQuotaLetsRequestsThrough(t *testing.T) {
	ps, err := plans.ParsePlans([]byte("plans:\n  - name: free\n    monthlyRequests: 3\n    quota: soft\n"))
	require.NoError(t, err)
	a := newApp(t, Config{Plans: ps})
	for i := 1; i <= 5; i++ {
		rec := a.call("GET", "/api/things", "acme", "erin")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, strconv.Itoa(max(3-i, 0)), Header(rec.Header(), "X-Quota-Remaining"))
	}
	require.Len(t, a.eventsOf(EventQuotaExceeded), 1)
}

func TestHeadersEqualStatus(t *testing.T) {
	a := newApp(t, Config{})
	var rec *httptest.ResponseRecorder
	for range 37 {
		rec = a.call("GET", "/api/things", "acme", "frank")
		a.clock.Advance(17 * time.Second)
	}
	a.clock.Advance(-17 * time.Second)
	d, err := a.l.Status(context.Background(), "acme", "frank")
	require.NoError(t, err)
	require.Len(t, d.Checks, 2)
	h, q := StateOf(d, 0), StateOf(d, 1)
	require.Equal(t, Header(rec.Header(), "X-RateLimit-Limit"), strconv.FormatUint(*h.Limit, 10))
	require.Equal(t, Header(rec.Header(), "X-RateLimit-Remaining"), strconv.FormatUint(*h.Remaining, 10))
	require.Equal(t, Header(rec.Header(), "X-RateLimit-Reset"), h.ResetAt.Format(time.RFC3339))
	require.Equal(t, Header(rec.Header(), "X-Quota-Limit"), strconv.FormatUint(*q.Limit, 10))
	require.Equal(t, Header(rec.Header(), "X-Quota-Remaining"), strconv.FormatUint(*q.Remaining, 10))
	require.Equal(t, Header(rec.Header(), "X-Quota-Reset"), q.ResetAt.Format(time.RFC3339))
	require.EqualValues(t, 37, h.Used)
	require.EqualValues(t, 63, *h.Remaining)
}

func TestEndpointAndAddressLimits(t *testing.T) {
	a := newApp(t, Config{IPLimit: 3, IPWindow: time.Minute})
	for i := 1; i <= 5; i++ {
		require.Equal(t, http.StatusOK, a.call("POST", "/api/bulk-operation", "acme", "gina").Code, "request %d", i)
	}
	rec := a.call("POST", "/api/bulk-operation", "acme", "gina")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	var body Refusal
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "endpoint:/api/bulk-operation", body.Limit.Name)
	require.Equal(t, "1m", body.Limit.Window)
	require.Equal(t, "0", Header(rec.Header(), "X-RateLimit-Remaining"), "the hourly limit has room; the endpoint limit, with none, is shown")
	require.Equal(t, "5", Header(rec.Header(), "X-RateLimit-Limit"))
	a.clock.Advance(61 * time.Second)
	require.Equal(t, http.StatusOK, a.call("POST", "/api/bulk-operation", "acme", "gina").Code)

	// Calls without a user: the per-address fallback.
	for i := 1; i <= 3; i++ {
		require.Equal(t, http.StatusOK, a.call("GET", "/api/things", "", "").Code)
	}
	rec = a.call("GET", "/api/things", "", "")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Equal(t, "3", Header(rec.Header(), "X-RateLimit-Limit"))
	body = Refusal{}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "ip", body.Limit.Name)
	require.Nil(t, body.Upgrade)
}

func TestRedisOutageFollowsTheFailurePolicy(t *testing.T) {
	srv := startDurableRedis(t)
	client := dialTest(t, srv.url())
	backend := NewRedis(client, uniquePrefix(t))
	backend.ClientClock = true
	reg := prometheus.NewRegistry()
	open := newApp(t, Config{Backend: backend, BreakerTimeout: 50 * time.Millisecond, Registerer: reg})
	closed := newApp(t, Config{Backend: backend, BreakerTimeout: 50 * time.Millisecond, FailClosed: true})
	closed.clock = open.clock
	for i := 1; i <= 3; i++ {
		require.Equal(t, http.StatusOK, open.call("GET", "/api/things", "acme", "hank").Code)
	}
	srv.stop()
	for range 8 { // past the breaker's five failures
		rec := open.call("GET", "/api/things", "acme", "hank")
		require.Equal(t, http.StatusOK, rec.Code, "fail open")
		require.Empty(t, Header(rec.Header(), "X-RateLimit-Remaining"), "no numbers are made up")
	}
	require.EqualValues(t, 8, testutil.ToFloat64(open.l.failures))
	require.EqualValues(t, http.StatusServiceUnavailable, closed.call("GET", "/api/things", "acme", "hank").Code)
	require.Equal(t, 3+8, open.served, "fail open let them all through")
	srv.start()
	var rec *httptest.ResponseRecorder
	require.Eventually(t, func() bool {
		rec = open.call("GET", "/api/things", "acme", "hank")
		return Header(rec.Header(), "X-RateLimit-Remaining") != ""
	}, 10*time.Second, 20*time.Millisecond)
	// The three counted before the outage survived it (Redis' append-only
	// file); the requests let through while it was down were not counted.
	require.Equal(t, "96", Header(rec.Header(), "X-RateLimit-Remaining"))
}

func TestUnresolvedPlanFollowsTheFailurePolicy(t *testing.T) {
	broken := ResolverFunc(func(context.Context, string, string) (Account, error) {
		return Account{}, errors.New("accounts unreachable")
	})
	open := newApp(t, Config{Resolver: broken})
	rec := open.call("GET", "/api/things", "acme", "jo")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Empty(t, rec.Header()[HeaderLimit])
	require.EqualValues(t, 1, testutil.ToFloat64(open.l.failures))
	closed := newApp(t, Config{Resolver: broken, FailClosed: true})
	require.Equal(t, http.StatusServiceUnavailable, closed.call("GET", "/api/things", "acme", "jo").Code)
	require.Zero(t, closed.served)
}

func TestReportCountsNothingAndProtectStandsApart(t *testing.T) {
	ps, err := plans.ParsePlans([]byte("plans:\n  - name: free\n    hourlyRequests: 2\n    monthlyRequests: 3\n"))
	require.NoError(t, err)
	a := newApp(t, Config{Plans: ps})
	a.e.GET("/read", func(c echo.Context) error { return c.String(http.StatusOK, "ok") }, a.mw.RateLimit("api", 4, time.Minute), a.mw.Report())
	for i := 1; i <= 4; i++ {
		rec := a.call("GET", "/read", "acme", "kim")
		require.Equal(t, http.StatusOK, rec.Code, "request %d", i)
		require.Equal(t, []string{"2"}, rec.Header()[HeaderRemaining], "the plan's hourly limit is shown, not spent")
		require.Equal(t, []string{"3"}, rec.Header()[HeaderQuotaRemaining])
		require.Contains(t, rec.Header()[HeaderRateLimit], fmt.Sprintf(`"api";r=%d;t=60`, 4-i)) // a minute and its one-second slot, held to w
	}
	rec := a.call("GET", "/read", "acme", "kim")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	var body Refusal
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "api", body.Limit.Name)
	require.Nil(t, body.Upgrade)
	// The plan's limits were untouched: the metered route has them all.
	require.Equal(t, http.StatusOK, a.call("GET", "/api/things", "acme", "kim").Code)

	// A report never holds a request up, even failing closed.
	broken := ResolverFunc(func(context.Context, string, string) (Account, error) { return Account{}, errors.New("down") })
	b := newApp(t, Config{Resolver: broken, FailClosed: true})
	b.e.GET("/read", func(c echo.Context) error { return c.String(http.StatusOK, "ok") }, b.mw.Report())
	require.Equal(t, http.StatusOK, b.call("GET", "/read", "acme", "kim").Code)
}

// The warnings say when the quota runs out at the current pace (the
// Forecast hook's projection); the exceeded notice needs no forecast.
func TestQuotaWarningsCarryTheForecast(t *testing.T) {
	ps, err := plans.ParsePlans([]byte("defaultPlan: metered\nplans:\n  - name: metered\n    monthlyRequests: 100\n"))
	require.NoError(t, err)
	runsOut := time.Date(2028, 2, 20, 0, 0, 0, 0, time.UTC)
	type call struct {
		tenant, user string
		start, end   time.Time
		limit, used  uint64
	}
	var calls []call
	fail := false
	cfg := Config{Plans: ps, Forecast: func(_ context.Context, tenant, user string, _ time.Time, start, end time.Time, limit, used uint64) (forecast.Result, error) {
		calls = append(calls, call{tenant, user, start, end, limit, used})
		if fail {
			return forecast.Result{}, errors.New("store away")
		}
		return forecast.Result{ProjectedAtPeriodEnd: 140, RunsOutAt: &runsOut, Method: "test"}, nil
	}}
	a := newApp(t, cfg)
	for i := 1; i <= 80; i++ {
		require.Equal(t, http.StatusOK, a.call("GET", "/api/things", "acme", "carol").Code)
	}
	w := a.eventsOf(EventQuotaWarning)
	require.Len(t, w, 1)
	require.Equal(t, []call{{"acme", "carol", time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC), 100, 80}}, calls)
	require.Equal(t, uint64(140), w[0].Data["forecast"].(forecast.Result).ProjectedAtPeriodEnd)
	require.Equal(t, "80 % of the metered plan's 100 requests used this period; the quota resets on 1 March 2028. At this rate you reach your limit on 20 February 2028.", w[0].Data["message"])

	fail = true
	for i := 81; i <= 90; i++ {
		require.Equal(t, http.StatusOK, a.call("GET", "/api/things", "acme", "carol").Code)
	}
	w = a.eventsOf(EventQuotaWarning)
	require.Len(t, w, 2, "a failing forecast does not hold the warning back")
	require.NotContains(t, w[1].Data, "forecast")
	for i := 91; i <= 100; i++ {
		require.Equal(t, http.StatusOK, a.call("GET", "/api/things", "acme", "carol").Code)
	}
	ex := a.eventsOf(EventQuotaExceeded)
	require.Len(t, ex, 1)
	require.NotContains(t, ex[0].Data, "forecast")
	require.Len(t, calls, 3, "80, 90 and 95: one forecast per warning")
	require.Equal(t, "At this rate the period ends at about 70 of 100.", ForecastSentence(forecast.Result{ProjectedAtPeriodEnd: 70}, 100))
}

func TestRolloverCountsThePeriodsThatBegin(t *testing.T) {
	l := New(Config{})
	anchors := map[int]int{1: 5, 15: 2, 31: 3}
	d := func(m time.Month, day int) time.Time { return time.Date(2028, m, day, 0, 0, 0, 0, time.UTC) }
	require.Equal(t, 3, l.Rollover(d(2, 29), anchors), "the 31st falls on the 29th in a leap February")
	require.Equal(t, 5, l.Rollover(d(3, 1), anchors))
	require.Equal(t, 2, l.Rollover(d(3, 15).Add(3*time.Hour), anchors))
	require.Equal(t, 0, l.Rollover(d(3, 16), anchors))
	require.Equal(t, 3, l.Rollover(d(3, 31), anchors))
}
