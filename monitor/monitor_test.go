package monitor

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store/storetest"
)

var th = Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second, Margin: 0.2}

func TestHysteresis(t *testing.T) {
	v := func(er, avg float64) Values { return Values{Requests: 100, ErrorRate: er, AvgResponseTime: avg} }
	for _, c := range []struct {
		prev string
		v    Values
		want string
	}{
		{Healthy, v(9.9, 100), Healthy},
		{Healthy, v(10, 100), Degraded},    // at the threshold: degraded
		{Degraded, v(9, 100), Degraded},    // just under it: not yet better
		{Degraded, v(7.9, 100), Healthy},   // under 8 %: better
		{Healthy, v(30, 100), Unhealthy},   // worse at once, skipping degraded
		{Unhealthy, v(21, 100), Unhealthy}, // under 25 but over 20
		{Unhealthy, v(19, 100), Degraded},  // under 20: degraded, not healthy
		{Unhealthy, v(1, 100), Healthy},    // all the way
		{Healthy, v(0, 3001), Degraded},    // slow
		{Degraded, v(0, 2500), Degraded},   // under 3000 but over 2400
		{Degraded, v(0, 2399), Healthy},    //
		{Degraded, Values{}, Healthy},      // no traffic
		{Degraded, v(26, 100), Unhealthy},  // worse
		{Unhealthy, v(12, 3100), Degraded}, // slow keeps it degraded
	} {
		require.Equal(t, c.want, th.Next(c.prev, c.v), "%s %+v", c.prev, c.v)
	}
}

// world is a monitor over a health report the test sets, with a clock,
// a store, and recorders for events and notifications.
type world struct {
	mu      sync.Mutex
	now     time.Time
	report  query.HealthReport
	store   Store
	alerts  *MemoryAlertLog
	events  []Event
	notices map[string]int // key → sends
	totals  Values
}

func newWorld() *world {
	return &world{now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), store: NewMemoryStore(), alerts: NewMemoryAlertLog(), notices: map[string]int{}}
}

// stores are the Store implementations the lifecycle runs against.
func stores() map[string]func(t *testing.T) Store {
	return map[string]func(t *testing.T) Store{
		"memory": func(*testing.T) Store { return NewMemoryStore() },
		"clickhouse": func(t *testing.T) Store {
			db := storetest.Open(t)
			m, err := schema.NewMigrator(db, schema.Single, nil)
			require.NoError(t, err)
			_, err = m.Apply(context.Background())
			require.NoError(t, err)
			return &ClickHouse{DB: db}
		},
	}
}

func (w *world) monitor() *Monitor {
	return New(Config{
		Health: func(context.Context) (query.HealthReport, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.report, nil
		},
		Totals:     func(context.Context, time.Time, time.Time) (Values, error) { return w.totals, nil },
		Thresholds: th, Store: w.store, AlertLog: w.alerts,
		Notify: func(_ context.Context, n Notification) error {
			w.mu.Lock()
			w.notices[n.Key]++
			w.mu.Unlock()
			return nil
		},
		Emit: func(e Event) { w.mu.Lock(); w.events = append(w.events, e); w.mu.Unlock() },
		Now:  func() time.Time { w.mu.Lock(); defer w.mu.Unlock(); return w.now },
	})
}

func (w *world) set(er, avg float64, endpoints ...query.EndpointHealth) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.report = query.HealthReport{Requests: 1000, ErrorRate: er, AvgResponseTime: avg, Endpoints: endpoints}
}

func (w *world) tick(d time.Duration) { w.mu.Lock(); w.now = w.now.Add(d); w.mu.Unlock() }

func (w *world) types() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, e := range w.events {
		out = append(out, e.Type)
	}
	return out
}

func (w *world) distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.notices)
}

func TestIncidentLifecycleAcrossARestart(t *testing.T) {
	for name, mk := range stores() {
		t.Run(name, func(t *testing.T) {
			w := newWorld()
			w.store = mk(t)
			lifecycle(t, w)
		})
	}
}

func lifecycle(t *testing.T, w *world) {
	ctx := context.Background()
	m := w.monitor()
	w.set(1, 100)
	res, err := m.Check(ctx)
	require.NoError(t, err)
	require.Equal(t, Healthy, res.Status)
	require.Empty(t, w.types())

	// An error burst: unhealthy, a critical incident, one notification.
	w.tick(5 * time.Minute)
	w.set(40, 100)
	res, err = m.Check(ctx)
	require.NoError(t, err)
	require.Equal(t, Unhealthy, res.Status)
	require.Len(t, res.Opened, 1)
	inc := res.Opened[0]
	require.Equal(t, SeverityCritical, inc.Severity)
	require.Equal(t, []string{EventUnhealthy, EventIncidentCreated}, w.types())
	require.Equal(t, map[string]int{"incident:" + inc.ID + ":created": 1}, w.notices)

	// A restart in the middle: the state and the incident are read back.
	w.tick(5 * time.Minute)
	w.set(35, 100)
	m = w.monitor()
	res, err = m.Check(ctx)
	require.NoError(t, err)
	require.Empty(t, res.Opened, "no second incident")
	require.Empty(t, res.Transitions, "still unhealthy: nothing new to say")
	require.Equal(t, 1, w.distinct(), "no new notification")
	open, _ := w.store.Incidents(ctx, "open", 0)
	require.Len(t, open, 1)

	// Values move: a timeline entry, no new incident.
	w.tick(5 * time.Minute)
	w.set(27, 100)
	_, err = m.Check(ctx)
	require.NoError(t, err)
	got, _ := w.store.Incident(ctx, inc.ID)
	require.Len(t, got.Updates, 3, "opened at 40 %, then 35 % (after the restart) and 27 %")

	// Recovery: resolved, recovered once.
	w.tick(5 * time.Minute)
	w.set(0.5, 100)
	res, err = m.Check(ctx)
	require.NoError(t, err)
	require.Len(t, res.Resolved, 1)
	w.tick(5 * time.Minute)
	_, err = m.Check(ctx)
	require.NoError(t, err)
	recovered := 0
	for _, typ := range w.types() {
		if typ == EventRecovered {
			recovered++
		}
	}
	require.Equal(t, 1, recovered)
	got, _ = w.store.Incident(ctx, inc.ID)
	require.Equal(t, StatusResolved, got.Status)
	require.NotNil(t, got.ResolvedAt)
	require.Equal(t, 1, w.notices["incident:"+inc.ID+":resolved"])
	require.Equal(t, 2, w.distinct())
}

func TestSustainedDegradedOpensAMajorIncidentAndEscalates(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	m := w.monitor()
	ep := query.EndpointHealth{Endpoint: "/api/x", Method: "GET", Requests: 50, ErrorRate: 12, AvgResponseTime: 80}
	w.set(2, 100, ep)
	res, _ := m.Check(ctx)
	require.Len(t, res.Transitions, 1)
	require.Equal(t, "endpoint:GET /api/x", res.Transitions[0].Subject)
	require.Empty(t, res.Opened, "one degraded check is not sustained")
	w.tick(5 * time.Minute)
	res, _ = m.Check(ctx)
	require.Len(t, res.Opened, 1)
	require.Equal(t, SeverityMajor, res.Opened[0].Severity)
	require.Equal(t, "GET /api/x", res.Opened[0].Endpoint)
	// Hovering at the threshold does not flap.
	for _, er := range []float64{9.5, 10.2, 8.5, 10} {
		w.tick(5 * time.Minute)
		ep.ErrorRate = er
		w.set(2, 100, ep)
		res, _ = m.Check(ctx)
		require.Empty(t, res.Transitions, "error rate %v", er)
	}
	// Escalation to critical: the same incident, a new notification.
	w.tick(5 * time.Minute)
	ep.ErrorRate = 50
	w.set(2, 100, ep)
	res, _ = m.Check(ctx)
	require.Empty(t, res.Opened)
	open, _ := w.store.Incidents(ctx, "open", 0)
	require.Len(t, open, 1)
	require.Equal(t, SeverityCritical, open[0].Severity)
	require.Equal(t, 1, w.notices["incident:"+open[0].ID+":escalated-critical"])
	// The endpoint goes quiet: recovered, resolved.
	w.tick(5 * time.Minute)
	w.set(2, 100)
	res, _ = m.Check(ctx)
	require.Len(t, res.Resolved, 1)
}

func TestAlertsCoolDownAndDeferToIncidents(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	m := w.monitor()
	w.totals = Values{Requests: 1000, ErrorRate: 12, AvgResponseTime: 3500}
	sent, err := m.AlertCheck(ctx)
	require.NoError(t, err)
	require.Len(t, sent, 2, "error rate and slow responses")
	w.tick(30 * time.Minute)
	sent, _ = m.AlertCheck(ctx)
	require.Empty(t, sent, "within the hour's cooldown")
	w.tick(31 * time.Minute)
	sent, _ = m.AlertCheck(ctx)
	require.Len(t, sent, 2, "after the cooldown")
	require.Equal(t, 4, w.distinct())
	// With an incident open about the same subject, the alert is held.
	w.set(40, 100)
	_, _ = m.Check(ctx)
	w.tick(2 * time.Hour)
	sent, _ = m.AlertCheck(ctx)
	require.Empty(t, sent)
}

func TestManualUpdatesAndResolve(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	m := w.monitor()
	w.set(40, 100)
	res, _ := m.Check(ctx)
	id := res.Opened[0].ID
	inc, err := m.AddUpdate(ctx, id, StatusIdentified, "a bad deploy", "key_1")
	require.NoError(t, err)
	require.Equal(t, StatusIdentified, inc.Status)
	_, err = m.AddUpdate(ctx, id, "panicking", "", "key_1")
	require.Error(t, err)
	inc, err = m.Resolve(ctx, id, "rolled back", "key_1")
	require.NoError(t, err)
	require.Equal(t, StatusResolved, inc.Status)
	require.Equal(t, "rolled back", inc.Updates[len(inc.Updates)-1].Message)
	_, err = m.Resolve(ctx, id, "", "key_1")
	require.Error(t, err, "already resolved")
	// Still failing at the next check: a new incident.
	w.tick(5 * time.Minute)
	res, _ = m.Check(ctx)
	require.Len(t, res.Opened, 1)
	require.NotEqual(t, id, res.Opened[0].ID)
}

func TestOneOutageOneIncident(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	m := w.monitor()
	eps := []query.EndpointHealth{
		{Endpoint: "/a", Method: "GET", Requests: 500, ErrorRate: 45, AvgResponseTime: 50},
		{Endpoint: "/b", Method: "POST", Requests: 500, ErrorRate: 35, AvgResponseTime: 50},
	}
	w.set(40, 50, eps...)
	res, err := m.Check(ctx)
	require.NoError(t, err)
	require.Len(t, res.Opened, 1, "the API's incident only")
	require.Equal(t, "global", res.Opened[0].Scope)
	require.Len(t, res.Transitions, 3, "each subject still reports its own status")
	inc, _ := w.store.Incident(ctx, res.Opened[0].ID)
	require.Len(t, inc.Updates, 3, "opened, and an entry per failing endpoint")
	require.Contains(t, inc.Updates[1].Message+inc.Updates[2].Message, "GET /a")
	require.Equal(t, 1, w.distinct())
	// The API recovers but /a still fails: now it gets its own incident.
	w.tick(5 * time.Minute)
	eps[1].ErrorRate = 0
	w.set(4, 50, eps...)
	res, _ = m.Check(ctx)
	require.Len(t, res.Resolved, 1)
	require.Len(t, res.Opened, 1)
	require.Equal(t, "GET /a", res.Opened[0].Endpoint)
}

// TestReplicasTakingTurns: two monitors over one store check in turn
// (as replicas do, one per tick): one incident, one transition.
func TestReplicasTakingTurns(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	a, b := w.monitor(), w.monitor()
	w.set(1, 50)
	_, _ = a.Check(ctx)
	_, _ = b.Check(ctx)
	w.set(40, 50)
	w.tick(5 * time.Minute)
	res, _ := a.Check(ctx)
	require.Len(t, res.Opened, 1)
	for _, m := range []*Monitor{b, a, b} {
		w.tick(5 * time.Minute)
		res, _ = m.Check(ctx)
		require.Empty(t, res.Opened)
		require.Empty(t, res.Transitions)
	}
	w.set(1, 50)
	w.tick(5 * time.Minute)
	res, _ = b.Check(ctx)
	require.Len(t, res.Resolved, 1)
	require.Equal(t, 2, w.distinct(), "created and resolved, once each")
}

// apimeter_health_status stays bounded: 500 endpoints that come and go
// leave no series behind; a failing endpoint has one while it fails.
func TestHealthSeriesAreBounded(t *testing.T) {
	w := newWorld()
	m := w.monitor()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.status)
	ctx := context.Background()
	var eps []query.EndpointHealth
	for i := range 500 {
		eps = append(eps, query.EndpointHealth{Endpoint: fmt.Sprintf("/api/e%d", i), Method: "GET", Requests: 100})
	}
	eps[7].ErrorRate = 50 // unhealthy
	w.set(0, 10, eps...)
	_, err := m.Check(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, testutil.CollectAndCount(reg, "apimeter_health_status"), "global and the failing endpoint")
	require.Equal(t, 2.0, testutil.ToFloat64(m.status.WithLabelValues("endpoint:GET /api/e7")))

	w.tick(5 * time.Minute)
	w.set(0, 10) // every endpoint went quiet
	_, err = m.Check(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, testutil.CollectAndCount(reg, "apimeter_health_status"), "only global is left")

	// A restarted monitor reads its states back without bringing the
	// quiet endpoints' series back.
	m2 := w.monitor()
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(m2.status)
	_, err = m2.Check(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, testutil.CollectAndCount(reg2, "apimeter_health_status"))
}
