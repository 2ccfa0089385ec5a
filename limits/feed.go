package limits

import (
	"context"
	"fmt"
	"github.com/apimeter/apimeter/plans"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reported is usage the limiter hears of after the fact: calls of one
// user to one route in one second (stored usage records) that no
// decision counted.
type Reported struct {
	Tenant, User, Method, Route string
	At                          time.Time
	// Cost is what the calls count for together (1 each unless weighted).
	Cost uint64
}

// ManyResolver resolves the accounts of many users in one step (the
// account store does it in one query).
type ManyResolver interface {
	ResolveMany(ctx context.Context, users [][2]string) (map[[2]string]Account, error)
}

// ResolveMany implements ManyResolver: cached accounts from the cache,
// the others from the next resolver (in one step when it can).
func (r *CachedResolver) ResolveMany(ctx context.Context, users [][2]string) (map[[2]string]Account, error) {
	out := make(map[[2]string]Account, len(users))
	now := r.clock.Now().UnixNano()
	var miss [][2]string
	for _, u := range users {
		if v, ok := r.cache.get(u); ok && v.expires > now {
			out[u] = v.a
		} else {
			miss = append(miss, u)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := resolveMany(ctx, r.next, miss)
	if err != nil {
		return nil, err
	}
	for u, a := range got {
		out[u] = a
		r.cache.update(u, func(cachedAccount, bool) (cachedAccount, bool) {
			return cachedAccount{a: a, expires: now + int64(r.ttl)}, true
		})
	}
	return out, nil
}

func resolveMany(ctx context.Context, r Resolver, users [][2]string) (map[[2]string]Account, error) {
	if m, ok := r.(ManyResolver); ok {
		return m.ResolveMany(ctx, users)
	}
	out := make(map[[2]string]Account, len(users))
	for _, u := range users {
		a, err := r.Resolve(ctx, u[0], u[1])
		if err != nil {
			return nil, err
		}
		out[u] = a
	}
	return out, nil
}

// CountReported adds reported calls to their users' limits — the
// hourly window, the quota and the endpoint windows of their routes —
// refusing none, and sends the quota notices they cross (once per
// user, period and threshold, the highest crossed). A quota counter the
// backend does not hold yet is started from the recorded usage, which
// holds these calls (they are stored before they are reported).
func (l *Limiter) CountReported(ctx context.Context, rs []Reported) error {
	if len(rs) == 0 {
		return nil
	}
	now := l.cfg.Clock.Now()
	var users [][2]string
	seen := map[[2]string]bool{}
	for _, r := range rs {
		if u := [2]string{r.Tenant, r.User}; r.User != "" && !seen[u] {
			seen[u] = true
			users = append(users, u)
		}
	}
	accts, err := resolveMany(ctx, l.cfg.Resolver, users)
	if err != nil {
		return fmt.Errorf("resolve the plans of %d users: %w", len(users), err)
	}
	type meta struct {
		req  Request
		plan *plans.Plan
		acct Account
	}
	items := make([]Counted, 0, len(rs))
	metas := make([]meta, 0, len(rs))
	for _, r := range rs {
		if r.User == "" || r.Cost == 0 {
			continue
		}
		acct := accts[[2]string{r.Tenant, r.User}]
		p := l.plans.Resolve(acct.Plan)
		req := Request{Tenant: r.Tenant, User: r.User, Method: r.Method, Route: r.Route, Cost: r.Cost}
		checks := planChecks(nil, req, p, acct, scopeHourly|scopeQuota|scopeEndpoints, now)
		if len(checks) == 0 {
			continue
		}
		items = append(items, Counted{Checks: checks, At: r.At, Cost: r.Cost, States: make([]State, len(checks))})
		metas = append(metas, meta{req, p, acct})
	}
	if len(items) == 0 {
		return nil
	}
	if l.memory {
		err = l.backend.Count(ctx, now, items)
	} else {
		_, err = l.breaker.Execute(func() (bool, error) { return false, l.backend.Count(ctx, now, items) })
	}
	if err != nil {
		l.failures.Inc()
		return fmt.Errorf("count %d reported calls: %w", len(items), err)
	}
	// Per quota counter, its state after the last item: the notice is
	// the highest threshold the whole lot crossed.
	type last struct {
		item, check int
		seed        bool
	}
	quotas := map[seedKey]last{}
	var order []seedKey
	for i, it := range items {
		l.reported.Add(float64(it.Cost))
		for j, c := range it.Checks {
			if c.Window > 0 {
				continue
			}
			k := seedKey{c.Key, c.PeriodStart.UnixNano()}
			if _, ok := quotas[k]; !ok {
				order = append(order, k)
			}
			quotas[k] = last{i, j, it.States[j].Unseeded}
		}
	}
	for _, k := range order {
		q := quotas[k]
		m, c := metas[q.item], items[q.item].Checks[q.check]
		st := items[q.item].States[q.check]
		if q.seed {
			if st, err = l.seedReported(ctx, c, now); err != nil {
				l.cfg.Log.Warn("start a quota counter from the records", "tenantId", c.Key.Tenant, "userId", c.Key.User, "err", err)
				continue
			}
		}
		l.quotaNotice(&Decision{Request: m.req, Plan: m.plan, Account: m.acct, Now: now}, c, st)
	}
	return nil
}

// seedReported starts a quota counter from the records and reads it. It
// queries afresh rather than joining a seed in flight: one that started
// before the reported calls were stored would not hold them.
func (l *Limiter) seedReported(ctx context.Context, c Check, now time.Time) (State, error) {
	var used uint64
	if l.cfg.Usage != nil {
		u, err := l.cfg.Usage.PeriodUsage(ctx, c.Key.Tenant, c.Key.User, c.PeriodStart, c.PeriodEnd)
		if err != nil {
			return State{}, err
		}
		used = u
	}
	if err := l.backend.Raise(ctx, c.Key, c.PeriodStart, c.PeriodEnd, used); err != nil {
		return State{}, err
	}
	l.refresh.update(seedKey{c.Key, c.PeriodStart.UnixNano()}, func(int64, bool) (int64, bool) { return now.UnixNano(), true })
	st := make([]State, 1)
	if _, err := l.backend.Take(ctx, now, []Check{c}, 0, st); err != nil {
		return State{}, err
	}
	return st[0], nil
}

// FeedConfig configures a Feed. Zero fields take the defaults in their
// comments.
type FeedConfig struct {
	// MaxPending bounds the calls (user, route and second) waiting to be
	// counted. While the limiter is away and the bound is reached, new
	// ones are dropped and counted in
	// apimeter_limit_reported_dropped_total (the store keeps them: quota
	// counters catch up from the records when next refreshed). Default
	// 200,000.
	MaxPending int
	// Registerer receives the feed's metrics. Default: none.
	Registerer prometheus.Registerer
}

// Feed hands reported calls to the limiter off the path that stores
// them: Add merges them into a pending set and returns at once; Run
// counts the set while new calls gather. The ingester never waits on
// Redis or on account lookups.
type Feed struct {
	l       *Limiter
	max     int
	mu      sync.Mutex
	pending map[reportedKey]uint64
	wake    chan struct{}
	dropped prometheus.Counter
	waiting prometheus.GaugeFunc
}

type reportedKey struct {
	Tenant, User, Method, Route string
	Second                      int64
}

// NewFeed feeds l.
func NewFeed(l *Limiter, cfg FeedConfig) *Feed {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 200_000
	}
	f := &Feed{l: l, max: cfg.MaxPending, pending: map[reportedKey]uint64{}, wake: make(chan struct{}, 1),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_limit_reported_dropped_total", Help: "Reported calls dropped before the limiter counted them (the limits backend was away too long).",
		})}
	f.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "apimeter_limit_reported_pending", Help: "Reported calls (user, route and second) waiting to be counted by the limiter.",
	}, func() float64 {
		f.mu.Lock()
		defer f.mu.Unlock()
		return float64(len(f.pending))
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(f.dropped, f.waiting)
	}
	return f
}

// Add takes reported calls to count.
func (f *Feed) Add(rs []Reported) {
	if len(rs) == 0 {
		return
	}
	f.mu.Lock()
	f.merge(rs)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// merge adds rs to the pending set, dropping what does not fit. f.mu
// is held.
func (f *Feed) merge(rs []Reported) {
	for _, r := range rs {
		k := reportedKey{r.Tenant, r.User, r.Method, r.Route, r.At.Unix()}
		if _, ok := f.pending[k]; !ok && len(f.pending) >= f.max {
			f.dropped.Add(float64(r.Cost))
			continue
		}
		f.pending[k] += r.Cost
	}
}

// Run counts what was added until ctx ends; a failed count is kept and
// tried again a second later.
func (f *Feed) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.wake:
		}
		f.mu.Lock()
		batch := f.pending
		f.pending = make(map[reportedKey]uint64, len(batch))
		f.mu.Unlock()
		rs := make([]Reported, 0, len(batch))
		for k, cost := range batch {
			rs = append(rs, Reported{Tenant: k.Tenant, User: k.User, Method: k.Method, Route: k.Route, At: time.Unix(k.Second, 0), Cost: cost})
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f.l.CountReported(cctx, rs)
		cancel()
		if err == nil {
			continue
		}
		f.l.cfg.Log.Warn("count reported calls; trying again", "calls", len(rs), "err", err)
		f.mu.Lock()
		f.merge(rs)
		f.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}
