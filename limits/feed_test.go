package limits

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/plans"
)

func TestDecisionIDsNameOneUsersDecision(t *testing.T) {
	d, err := NewDecisions([]byte("0123456789abcdef-a-test-secret"))
	require.NoError(t, err)
	at := time.Now()
	id := d.Issue("acme", "alice", at)
	require.Len(t, id, DecisionIDLen)
	require.True(t, strings.HasPrefix(id, "d_"))
	require.True(t, d.Verify("acme", "alice", id))
	require.NotEqual(t, id, d.Issue("acme", "alice", at), "each decision has its own name")

	require.False(t, d.Verify("acme", "bob", id), "another user's record")
	require.False(t, d.Verify("other", "alice", id), "another tenant's record")
	require.False(t, d.Verify("acmea", "lice", id), "tenant and user are not run together")
	other, err := NewDecisions([]byte("another secret of some length"))
	require.NoError(t, err)
	require.False(t, other.Verify("acme", "alice", id), "signed under another secret")
	for i := len("d_"); i < len(id); i++ { // every character matters
		b := []byte(id)
		b[i] = map[bool]byte{true: 'A', false: 'B'}[b[i] != 'A']
		require.False(t, d.Verify("acme", "alice", string(b)), "changed at %d", i)
	}
	require.False(t, d.Verify("acme", "alice", ""))
	require.False(t, d.Verify("acme", "alice", id[:len(id)-1]))
	require.False(t, d.Verify("acme", "alice", d.Issue("acme", "alice", at.Add(-41*24*time.Hour))), "older than a period and more")
	require.True(t, d.Verify("acme", "alice", d.Issue("acme", "alice", at.Add(-39*24*time.Hour))))
	require.False(t, d.Verify("acme", "alice", d.Issue("acme", "alice", at.Add(time.Hour))), "from the future")

	_, err = NewDecisions([]byte("short"))
	require.Error(t, err)
}

func TestMiddlewareNamesTheDecisionsItCounts(t *testing.T) {
	dec, err := NewDecisions(NewSecret())
	require.NoError(t, err)
	a := newApp(t, Config{Decisions: dec})
	var seen string
	a.e.GET("/api/seen", func(c echo.Context) error {
		seen, _ = c.Get(ContextDecision).(string)
		return c.String(http.StatusOK, "ok")
	}, a.mw.Enforce())
	rec := a.call("GET", "/api/seen", "acme", "alice")
	require.Equal(t, http.StatusOK, rec.Code)
	id := rec.Header().Get(HeaderDecision)
	require.Equal(t, seen, id, "the handler (and a tracking middleware) sees the id the client gets")
	require.True(t, dec.Verify("acme", "alice", id))

	for range 99 {
		require.Equal(t, http.StatusOK, a.call("GET", "/api/seen", "acme", "alice").Code)
	}
	rec = a.call("GET", "/api/seen", "acme", "alice")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.Empty(t, rec.Header().Get(HeaderDecision), "a refused call counted nothing")
}

// feedLimiter is a limiter on the default plans with a clock, a store
// of records and the events it sends.
func feedLimiter(t *testing.T, backend Backend, usage *recorded) (*Limiter, *ManualClock, func(string) []Event) {
	clock := NewManualClock(time.Date(2028, 2, 10, 9, 30, 0, 0, time.UTC))
	var events []Event
	l := New(Config{Backend: backend, Clock: clock, Usage: usage, OnEvent: func(e Event) { events = append(events, e) }})
	return l, clock, func(typ string) []Event {
		var out []Event
		for _, e := range events {
			if e.Type == typ {
				out = append(out, e)
			}
		}
		return out
	}
}

// spread reports n calls of acme/user to GET /api/things, one per
// second ending at end.
func spread(user string, n int, end time.Time) []Reported {
	out := make([]Reported, n)
	for i := range out {
		out[i] = Reported{Tenant: "acme", User: user, Method: "GET", Route: "/api/things", At: end.Add(-time.Duration(n-1-i) * time.Second), Cost: 1}
	}
	return out
}

func testReportedCallsCount(t *testing.T, backend Backend) {
	ctx := context.Background()
	usage := &recorded{n: map[string]uint64{}}
	l, clock, events := feedLimiter(t, backend, usage)
	now := clock.Now()

	// 850 calls of a Free user (100 an hour, 1,000 a month), stored and
	// then reported: the quota counter starts from the records.
	usage.add("carol", 850)
	require.NoError(t, l.CountReported(ctx, spread("carol", 850, now)))
	d, err := l.Status(ctx, "acme", "carol")
	require.NoError(t, err)
	require.EqualValues(t, 850, d.States[0].Used, "hourly: %s", d.Checks[0].Key.Policy)
	require.True(t, d.States[0].Remaining(100) == 0)
	require.EqualValues(t, 850, d.States[1].Used, "quota: %s", d.Checks[1].Key.Policy)
	require.Equal(t, []int{80}, thresholds(events(EventQuotaWarning)), "one notice, the highest crossed")

	// A decision sees them: the hourly limit is spent.
	d, err = l.Check(ctx, Request{Tenant: "acme", User: "carol", Method: "GET", Route: "/api/things", Cost: 1})
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, "hourly", d.Checks[d.Denied].Key.Policy)

	// 100 more, reported: the counter, already started, adds them.
	usage.add("carol", 100)
	require.NoError(t, l.CountReported(ctx, spread("carol", 100, now)))
	d, err = l.Status(ctx, "acme", "carol")
	require.NoError(t, err)
	require.EqualValues(t, 950, d.States[1].Used)
	require.Equal(t, []int{80, 95}, thresholds(events(EventQuotaWarning)), "90 was passed over within one lot")

	// Calls older than the hour count toward the quota only; a call
	// of the previous billing period toward neither.
	usage.add("dave", 3)
	require.NoError(t, l.CountReported(ctx, []Reported{
		{Tenant: "acme", User: "dave", Method: "GET", Route: "/x", At: now.Add(-30 * time.Minute), Cost: 1},
		{Tenant: "acme", User: "dave", Method: "GET", Route: "/x", At: now.Add(-62 * time.Minute), Cost: 1},
		{Tenant: "acme", User: "dave", Method: "GET", Route: "/x", At: now.Add(-59 * time.Minute), Cost: 1},
	}))
	d, err = l.Status(ctx, "acme", "dave")
	require.NoError(t, err)
	require.EqualValues(t, 2, d.States[0].Used, "two of the three are within the hour")
	require.EqualValues(t, 3, d.States[1].Used, "the records say 3 this period")
	// The oldest counted call (09:31 − 59 min = 08:31) leaves at 09:32.
	require.Equal(t, time.Date(2028, 2, 10, 9, 32, 0, 0, time.UTC), d.States[0].Reset)
	// The window moves on: at 10:00:30 only the call at 09:00 is left.
	clock.Set(time.Date(2028, 2, 10, 10, 0, 30, 0, time.UTC))
	d, err = l.Status(ctx, "acme", "dave")
	require.NoError(t, err)
	require.EqualValues(t, 1, d.States[0].Used)

	// A weighted call counts its cost; a call of the last period none.
	usage.add("erin", 7)
	require.NoError(t, l.CountReported(ctx, []Reported{
		{Tenant: "acme", User: "erin", Method: "POST", Route: "/x", At: clock.Now(), Cost: 7},
	}))
	require.NoError(t, l.CountReported(ctx, []Reported{
		{Tenant: "acme", User: "erin", Method: "POST", Route: "/x", At: time.Date(2028, 1, 31, 23, 59, 0, 0, time.UTC), Cost: 5},
	}))
	d, err = l.Status(ctx, "acme", "erin")
	require.NoError(t, err)
	require.EqualValues(t, 7, d.States[0].Used)
	require.EqualValues(t, 7, d.States[1].Used)
}

func TestReportedCallsCountInMemory(t *testing.T) {
	testReportedCallsCount(t, NewMemory(0))
}

func TestReportedCallsCountInRedis(t *testing.T) {
	srv := startRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.addr()})
	t.Cleanup(func() { client.Close() })
	r := NewRedis(client, "feedtest:")
	r.ClientClock = true
	testReportedCallsCount(t, r)
}

func TestReportedCallsMatchEndpointLimits(t *testing.T) {
	ps, err := plans.ParsePlans([]byte(`plans:
  - name: free
    hourlyRequests: 1000
    endpoints:
      - {path: /api/search, method: GET, limit: 3, window: 1m}
`))
	require.NoError(t, err)
	clock := NewManualClock(time.Date(2028, 2, 10, 9, 30, 0, 0, time.UTC))
	l := New(Config{Plans: ps, Clock: clock})
	ctx := context.Background()
	now := clock.Now()
	require.NoError(t, l.CountReported(ctx, []Reported{
		{Tenant: "acme", User: "alice", Method: "GET", Route: "/api/search", At: now.Add(-10 * time.Second), Cost: 2},
		{Tenant: "acme", User: "alice", Method: "POST", Route: "/api/search", At: now, Cost: 5}, // another method
		{Tenant: "acme", User: "alice", Method: "GET", Route: "/api/other", At: now, Cost: 5},   // another route
	}))
	d, err := l.Check(ctx, Request{Tenant: "acme", User: "alice", Method: "GET", Route: "/api/search", Cost: 1})
	require.NoError(t, err)
	require.True(t, d.Allowed, "2 reported + 1 = 3")
	d, err = l.Check(ctx, Request{Tenant: "acme", User: "alice", Method: "GET", Route: "/api/search", Cost: 1})
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, "endpoint:GET /api/search", d.Checks[d.Denied].Key.Policy)
	require.EqualValues(t, 2+5+5+1, d.States[0].Used, "the hourly window holds every reported call and the allowed one")
}

func TestFeedCountsWhatIsAdded(t *testing.T) {
	l := New(Config{})
	f := NewFeed(l, FeedConfig{MaxPending: 3})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	now := time.Now()
	// Four distinct (user, route, second) entries and a bound of three:
	// the fourth is dropped, and a repeat of a pending one merges.
	f.Add([]Reported{
		{Tenant: "acme", User: "a", Method: "GET", Route: "/x", At: now, Cost: 1},
		{Tenant: "acme", User: "a", Method: "GET", Route: "/x", At: now, Cost: 2},
		{Tenant: "acme", User: "b", Method: "GET", Route: "/x", At: now, Cost: 1},
		{Tenant: "acme", User: "c", Method: "GET", Route: "/x", At: now, Cost: 1},
		{Tenant: "acme", User: "d", Method: "GET", Route: "/x", At: now, Cost: 4},
	})
	go func() { done <- f.Run(ctx) }()
	used := func(user string) uint64 {
		d, err := l.Status(ctx, "acme", user)
		require.NoError(t, err)
		return d.States[0].Used
	}
	require.Eventually(t, func() bool { return used("a") == 3 && used("b") == 1 && used("c") == 1 }, 5*time.Second, 10*time.Millisecond)
	require.EqualValues(t, 0, used("d"))
	cancel()
	require.NoError(t, <-done)
}

// Across replicas: what the ingesting replica counts into Redis, every
// other replica's decisions, /quota and /rate-limit see, and the quota
// notice goes out once whichever replica crosses next.
func TestReportedCallsReachEveryReplica(t *testing.T) {
	srv := startRedis(t)
	client := redis.NewClient(&redis.Options{Addr: srv.addr()})
	t.Cleanup(func() { client.Close() })
	usage := &recorded{n: map[string]uint64{}}
	store := &levels{m: map[string]int{}}
	clock := NewManualClock(time.Date(2028, 2, 10, 9, 30, 0, 0, time.UTC))
	var events []Event
	// A quota without an hourly limit, so decisions past 790 go through.
	ps, err := plans.ParsePlans([]byte("plans:\n  - name: free\n    monthlyRequests: 1000\n"))
	require.NoError(t, err)
	replica := func() *Limiter {
		r := NewRedis(client, "replicas:")
		r.ClientClock = true
		return New(Config{Backend: r, Clock: clock, Usage: usage, Plans: ps, Notices: NewRedisNotices(client, "replicas:", store),
			OnEvent: func(e Event) { events = append(events, e) }})
	}
	ingesting, serving := replica(), replica()
	ctx := context.Background()
	usage.add("gina", 790)
	require.NoError(t, ingesting.CountReported(ctx, spread("gina", 790, clock.Now())))
	d, err := serving.Status(ctx, "acme", "gina")
	require.NoError(t, err)
	require.EqualValues(t, 790, d.States[0].Used)
	require.Empty(t, events, "79 %: no notice yet")
	// The other replica decides the calls that cross 80 %.
	for range 10 {
		usage.add("gina", 1)
		d, err := serving.Check(ctx, Request{Tenant: "acme", User: "gina", Method: "GET", Route: "/api/things", Cost: 1})
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	require.Equal(t, []int{80}, thresholds(events))
	// The ingesting replica hears of more calls: 800 → 810, no second 80.
	usage.add("gina", 10)
	require.NoError(t, ingesting.CountReported(ctx, spread("gina", 10, clock.Now())))
	require.Equal(t, []int{80}, thresholds(events))
}

// RateLimit's t (seconds to reset) is never more than the policy's w.
func TestRateLimitResetWithinTheWindow(t *testing.T) {
	a := newApp(t, Config{})
	a.clock.Set(time.Date(2028, 2, 10, 9, 30, 30, 0, time.UTC)) // mid-slot: the slot leaves at 10:31:00
	rec := a.call("GET", "/api/things", "acme", "alice")
	require.Equal(t, http.StatusOK, rec.Code)
	policies := map[string]int{}
	for _, p := range rec.Header()["RateLimit-Policy"] {
		name, rest, _ := strings.Cut(p, ";q=")
		_, w, _ := strings.Cut(rest, ";w=")
		n, err := strconv.Atoi(w)
		require.NoError(t, err)
		policies[name] = n
	}
	require.Len(t, policies, 2)
	for _, f := range rec.Header()["RateLimit"] {
		name, rest, _ := strings.Cut(f, ";r=")
		_, tv, _ := strings.Cut(rest, ";t=")
		n, err := strconv.Atoi(tv)
		require.NoError(t, err)
		require.LessOrEqual(t, n, policies[name], "%s", f)
	}
	require.Contains(t, rec.Header()["RateLimit"], `"hourly";r=99;t=3600`)
}
