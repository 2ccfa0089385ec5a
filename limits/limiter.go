package limits

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/forecast"
	"github.com/apimeter/apimeter/plans"
	"github.com/sony/gobreaker/v2"
)

// Account is what the limiter needs to know of a user: the plan's name,
// the day of the month the billing period starts (1–31) and the quota
// mode ("" for the plan's).
type Account struct {
	Plan      string
	AnchorDay int
	QuotaMode string
}

// Resolver says which account a user has; an application plugs its
// billing system in here. A user without an account gets Account{}
// (the default plan, calendar months).
type Resolver interface {
	Resolve(ctx context.Context, tenant, user string) (Account, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, tenant, user string) (Account, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, tenant, user string) (Account, error) {
	return f(ctx, tenant, user)
}

// UsageSource counts a user's requests in a period from the records kept
// (ClickHouse): what seeds a quota counter, so a restart never resets
// anyone's count, and what refreshes it with requests other services
// recorded.
type UsageSource interface {
	PeriodUsage(ctx context.Context, tenant, user string, start, end time.Time) (uint64, error)
}

// Notices remembers which quota thresholds a user was told of in a
// period, across restarts and replicas. Claim returns true for the one
// caller that should send the notice for level: the first to claim a
// level above every level claimed before.
type Notices interface {
	Claim(ctx context.Context, tenant, user string, period time.Time, level int) (bool, error)
}

// Event types.
const (
	EventRateLimitExceeded = "api.rate_limit.exceeded"
	EventQuotaWarning      = "api.quota.warning"
	EventQuotaExceeded     = "api.quota.exceeded"
)

// Event is something the limiter tells subscribers about.
type Event struct {
	// ID names the occurrence: the same for every replica that might
	// report it (quota notices), empty when there is no such name.
	ID     string         `json:"id,omitempty"`
	Type   string         `json:"type"`
	Time   time.Time      `json:"time"`
	Tenant string         `json:"tenantId"`
	User   string         `json:"userId"`
	Data   map[string]any `json:"data"`
}

// WarningLevels are the quota thresholds notices go out at, in percent;
// 100 is the exceeded notice.
var WarningLevels = []int{80, 90, 95, 100}

// Config configures a Limiter. Zero fields take the defaults in their
// comments.
type Config struct {
	// Backend keeps the counters. Default: NewMemory(0).
	Backend Backend
	// Plans are the plans. Default: plans.DefaultPlans().
	Plans *plans.Plans
	// Resolver finds a user's account. Default: everyone on the default
	// plan with calendar-month periods.
	Resolver Resolver
	// Usage seeds and refreshes quota counters. Default: none (counts
	// start at zero).
	Usage UsageSource
	// RefreshInterval is how often an active quota counter is lifted to
	// the recorded usage. Default 1 minute.
	RefreshInterval time.Duration
	// Notices keeps quota notices once per period. Default: in memory.
	Notices Notices
	// Clock is the time decisions are made at. Default: SystemClock.
	Clock Clock
	// IPLimit requests per IPWindow for calls without a user: the
	// API_RATE_LIMIT_MAX_REQUESTS and API_RATE_LIMIT_WINDOW_MS fallback.
	// Default 100 per minute.
	IPLimit  uint64
	IPWindow time.Duration
	// FailClosed refuses requests (503) while the backend fails; the
	// default lets them through. Either way the failure is counted.
	FailClosed bool
	// BreakerTimeout is how long the circuit breaker stays open after
	// five failures in a row before it lets a decision try the backend
	// again. Default 5 s.
	BreakerTimeout time.Duration
	// OnEvent receives events; it must not block for long.
	OnEvent func(Event)
	// Forecast, when set, projects a quota to its period's end for the
	// warnings ("at this rate you reach your limit on …"); at most four
	// calls per user and period. query.Service.QuotaForecast fits.
	Forecast func(ctx context.Context, tenant, user string, now, periodStart, periodEnd time.Time, limit, used uint64) (forecast.Result, error)
	// Decisions names every counted decision (Decision.ID), so that the
	// call's usage record can say it was counted. Default: none (ids
	// are not issued; every stored record counts).
	Decisions *Decisions
	// Registerer receives the limiter's metrics. Default: none.
	Registerer prometheus.Registerer
	// Log is the logger. Default: slog.Default().
	Log *slog.Logger
}

// Limiter makes the decisions.
type Limiter struct {
	cfg      Config
	backend  Backend
	plans    *plans.Plans
	breaker  *gobreaker.CircuitBreaker[bool]
	seeding  sync.Map // seedKey → *seedCall
	refresh  *shardMap[seedKey, int64]
	levels   *shardMap[seedKey, int]
	lastDeny *shardMap[Key, int64]

	decisions *prometheus.CounterVec
	allowed   prometheus.Counter
	memory    bool
	failures  prometheus.Counter
	notices   *prometheus.CounterVec
	reported  prometheus.Counter
}

type seedKey struct {
	Key    Key
	Period int64
}

// New builds a limiter.
func New(cfg Config) *Limiter {
	if cfg.Backend == nil {
		cfg.Backend = NewMemory(0)
	}
	if cfg.Plans == nil {
		cfg.Plans = plans.DefaultPlans()
	}
	if cfg.Resolver == nil {
		cfg.Resolver = ResolverFunc(func(context.Context, string, string) (Account, error) { return Account{}, nil })
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = time.Minute
	}
	if cfg.Notices == nil {
		cfg.Notices = NewMemoryNotices()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.IPLimit == 0 {
		cfg.IPLimit = 100
	}
	if cfg.IPWindow <= 0 {
		cfg.IPWindow = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BreakerTimeout <= 0 {
		cfg.BreakerTimeout = 5 * time.Second
	}
	l := &Limiter{
		cfg: cfg, backend: cfg.Backend, plans: cfg.Plans,
		refresh: newShardMap[seedKey, int64](hashSeedKey), levels: newShardMap[seedKey, int](hashSeedKey), lastDeny: newShardMap[Key, int64](hashKey),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_limit_decisions_total", Help: "Limit decisions, by outcome (allowed, denied, failed_open, failed_closed) and the policy that denied.",
		}, []string{"outcome", "policy"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_limit_backend_failures_total", Help: "Limit decisions the backend failed or the circuit breaker refused.",
		}),
		reported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_limit_reported_total", Help: "Calls counted toward limits after the fact: stored usage records no decision counted (by cost).",
		}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_quota_notices_total", Help: "Quota notices sent, by level (80, 90, 95, 100).",
		}, []string{"level"}),
	}
	l.allowed = l.decisions.WithLabelValues("allowed", "")
	_, l.memory = cfg.Backend.(*Memory)
	l.breaker = gobreaker.NewCircuitBreaker[bool](gobreaker.Settings{
		Name:        "limits-backend",
		MaxRequests: 1,
		Timeout:     cfg.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrTooManyChecks)
		},
	})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(l.decisions, l.failures, l.notices, l.reported)
	}
	return l
}

// Plans are the limiter's plans.
func (l *Limiter) Plans() *plans.Plans { return l.plans }

// Now is the limiter's clock.
func (l *Limiter) Now() time.Time { return l.cfg.Clock.Now() }

// What a decision applies.
type scope uint8

const (
	scopeHourly       scope = 1 << iota // the plan's hourly limit
	scopeQuota                          // the plan's quota
	scopeEndpoints                      // the plan's limits for the request's endpoint
	scopeAllEndpoints                   // every endpoint limit of the plan (status)
	scopeIP                             // the per-address limit, for calls without a user
)

// Request is what a decision is about.
type Request struct {
	Tenant, User string
	// IP is the client's address, for calls without a user.
	IP string
	// Method and Route are the request's method and route template.
	Method, Route string
	// Cost is what the request counts for (1 unless weighted; 0 reads
	// the state without counting).
	Cost uint64
}

// Decision is the outcome of one decision.
type Decision struct {
	Request
	Plan    *plans.Plan
	Account Account
	Allowed bool
	// Failed says the backend could not decide; Allowed then follows the
	// fail-open or fail-closed policy.
	Failed bool
	Checks []Check
	States []State
	checks [MaxChecks]Check
	states [MaxChecks]State
	// Denied is the index of the check that refused the request, -1 when
	// none did.
	Denied int
	Now    time.Time
	// ID names a decision that counted the call (allowed, cost > 0),
	// when the limiter issues ids (Config.Decisions).
	ID string
}

// Decide runs one decision over the plan's limits that scope names, and
// any extra checks (explicit endpoint limits).
func (l *Limiter) decide(ctx context.Context, r Request, sc scope, extra ...Check) (*Decision, error) {
	return l.decideInto(ctx, new(Decision), r, sc, extra...)
}

// decisions are reused by the middleware: a Decision is large (its
// checks and states inline) and a request needs one only briefly.
var decisions = sync.Pool{New: func() any { return new(Decision) }}

// decideInto is decide writing into d (whose old content is replaced).
func (l *Limiter) decideInto(ctx context.Context, d *Decision, r Request, sc scope, extra ...Check) (*Decision, error) {
	now := l.cfg.Clock.Now()
	d.Request, d.Plan, d.Account, d.Allowed, d.Failed, d.Denied, d.Now, d.ID = r, nil, Account{}, false, false, -1, now, ""
	d.Checks, d.States = d.checks[:0], nil
	if r.User == "" { // unauthenticated: the per-address fallback only
		d.Plan = anonymous
		if sc&scopeIP != 0 && r.IP != "" {
			d.Checks = append(d.Checks, Check{Key: Key{Policy: "ip", User: r.IP}, Limit: l.cfg.IPLimit, Window: l.cfg.IPWindow})
		}
		d.Checks = append(d.Checks, extra...)
		return d, l.take(ctx, d)
	}
	acct, err := l.cfg.Resolver.Resolve(ctx, r.Tenant, r.User)
	if err != nil {
		return nil, fmt.Errorf("resolve the plan of %s/%s: %w", r.Tenant, r.User, err)
	}
	d.Account, d.Plan = acct, l.plans.Resolve(acct.Plan)
	d.Checks = planChecks(d.Checks, r, d.Plan, acct, sc, now)
	d.Checks = append(d.Checks, extra...)
	return d, l.take(ctx, d)
}

var anonymous = &plans.Plan{Name: "anonymous"}

// planChecks appends the checks of plan p that scope names for r.
func planChecks(dst []Check, r Request, p *plans.Plan, acct Account, sc scope, now time.Time) []Check {
	if sc&scopeHourly != 0 && p.HourlyRequests > 0 {
		dst = append(dst, Check{Key: Key{Policy: "hourly", Tenant: r.Tenant, User: r.User}, Limit: p.HourlyRequests, Window: time.Hour})
	}
	if sc&scopeQuota != 0 && p.MonthlyRequests > 0 {
		start, end := plans.BillingPeriod(now, acct.AnchorDay)
		mode := p.QuotaMode
		if acct.QuotaMode != "" {
			mode = acct.QuotaMode
		}
		dst = append(dst, Check{Key: Key{Policy: "quota", Tenant: r.Tenant, User: r.User}, Limit: p.MonthlyRequests,
			PeriodStart: start, PeriodEnd: end, Soft: mode == plans.QuotaSoft})
	}
	if sc&(scopeEndpoints|scopeAllEndpoints) != 0 {
		for _, e := range p.Endpoints {
			if sc&scopeAllEndpoints != 0 || (e.Path == r.Route && (e.Method == "" || e.Method == r.Method)) {
				dst = append(dst, endpointCheck(e, r.Tenant, r.User))
			}
		}
	}
	return dst
}

func endpointCheck(e plans.EndpointLimit, tenant, user string) Check {
	name := "endpoint:" + e.Path
	if e.Method != "" {
		name = "endpoint:" + e.Method + " " + e.Path
	}
	return Check{Key: Key{Policy: name, Tenant: tenant, User: user}, Limit: e.Limit, Window: e.Window}
}

// take runs the decision's checks, seeding quota counters the backend
// does not know yet, through the circuit breaker.
func (l *Limiter) take(ctx context.Context, d *Decision) error {
	if len(d.Checks) > MaxChecks {
		return ErrTooManyChecks
	}
	d.States = d.states[:len(d.Checks)]
	if len(d.Checks) == 0 {
		d.Allowed = true
		return nil
	}
	var err error
	if l.memory { // counting in this process cannot fail: no breaker
		err = l.takeSeeded(ctx, d)
	} else {
		_, err = l.breaker.Execute(func() (bool, error) { return false, l.takeSeeded(ctx, d) })
	}
	if err != nil {
		l.failures.Inc()
		d.Failed, d.Allowed = true, !l.cfg.FailClosed
		outcome := "failed_open"
		if l.cfg.FailClosed {
			outcome = "failed_closed"
		}
		l.decisions.WithLabelValues(outcome, "").Inc()
		return err
	}
	for i, st := range d.States {
		if st.Denied && d.Denied < 0 {
			d.Denied = i
		}
	}
	if d.Cost > 0 {
		if d.Allowed {
			l.allowed.Inc()
			if l.cfg.Decisions != nil && d.User != "" {
				d.ID = l.cfg.Decisions.Issue(d.Tenant, d.User, time.Now()) // wall time: ids are checked against it
			}
		} else if d.Denied >= 0 {
			l.decisions.WithLabelValues("denied", policyLabel(d.Checks[d.Denied].Key.Policy)).Inc()
		}
	}
	l.afterDecision(d)
	return nil
}

// takeSeeded runs the decision, seeding the quota counters the backend
// does not know yet and deciding again.
func (l *Limiter) takeSeeded(ctx context.Context, d *Decision) error {
	for attempt := 0; ; attempt++ {
		ok, err := l.backend.Take(ctx, d.Now, d.Checks, d.Cost, d.States)
		if err != nil {
			return err
		}
		d.Allowed = ok
		seeded := false
		for i, st := range d.States {
			if !st.Unseeded {
				continue
			}
			if attempt > 0 {
				return fmt.Errorf("the quota counter of %s/%s did not take its seed", d.Checks[i].Key.Tenant, d.Checks[i].Key.User)
			}
			if err := l.seed(ctx, d.Checks[i]); err != nil {
				return err
			}
			seeded = true
		}
		if !seeded {
			return nil
		}
	}
}

func policyLabel(p string) string {
	if len(p) > 9 && p[:9] == "endpoint:" {
		return "endpoint"
	}
	return p
}

type seedCall struct {
	done chan struct{}
	err  error
}

// seed starts a quota counter from the recorded usage; concurrent
// decisions for one counter wait for one query.
func (l *Limiter) seed(ctx context.Context, c Check) error {
	k := seedKey{c.Key, c.PeriodStart.UnixNano()}
	call := &seedCall{done: make(chan struct{})}
	if v, loaded := l.seeding.LoadOrStore(k, call); loaded {
		other := v.(*seedCall)
		select {
		case <-other.done:
			return other.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() {
		close(call.done)
		l.seeding.Delete(k)
	}()
	var used uint64
	if l.cfg.Usage != nil {
		u, err := l.cfg.Usage.PeriodUsage(ctx, c.Key.Tenant, c.Key.User, c.PeriodStart, c.PeriodEnd)
		if err != nil {
			call.err = fmt.Errorf("seed the quota of %s/%s: %w", c.Key.Tenant, c.Key.User, err)
			return call.err
		}
		used = u
	}
	call.err = l.backend.Raise(ctx, c.Key, c.PeriodStart, c.PeriodEnd, used)
	l.refresh.update(k, func(int64, bool) (int64, bool) { return l.cfg.Clock.Now().UnixNano(), true })
	return call.err
}

// afterDecision refreshes active quota counters now and then and sends
// the notices a decision crossed.
func (l *Limiter) afterDecision(d *Decision) {
	for i, c := range d.Checks {
		st := d.States[i]
		if c.Window > 0 {
			if st.Denied && d.Cost > 0 {
				l.rateLimited(d, c, st)
			}
			continue
		}
		if st.Unseeded {
			continue
		}
		k := seedKey{c.Key, c.PeriodStart.UnixNano()}
		if l.cfg.Usage != nil {
			now := d.Now.UnixNano()
			due := false
			l.refresh.update(k, func(at int64, ok bool) (int64, bool) {
				if ok && now-at < int64(l.cfg.RefreshInterval) {
					return at, true
				}
				due = true
				return now, true
			})
			if due {
				go l.refreshQuota(c)
			}
		}
		if d.Cost > 0 {
			l.quotaNotice(d, c, st)
		}
	}
}

func (l *Limiter) refreshQuota(c Check) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	used, err := l.cfg.Usage.PeriodUsage(ctx, c.Key.Tenant, c.Key.User, c.PeriodStart, c.PeriodEnd)
	if err == nil {
		err = l.backend.Raise(ctx, c.Key, c.PeriodStart, c.PeriodEnd, used)
	}
	if err != nil {
		l.cfg.Log.Warn("refresh quota usage", "tenantId", c.Key.Tenant, "userId", c.Key.User, "err", err)
	}
}

// quotaNotice sends the highest threshold a quota crossed, once per
// user, period and threshold.
func (l *Limiter) quotaNotice(d *Decision, c Check, st State) {
	used := st.Used
	if st.Denied {
		used = max(used, c.Limit) // a refused request means the quota is spent
	}
	level := 0
	for _, lv := range WarningLevels {
		if used*100 >= uint64(lv)*c.Limit {
			level = lv
		}
	}
	if level == 0 {
		return
	}
	k := seedKey{c.Key, c.PeriodStart.UnixNano()}
	fresh := false
	l.levels.update(k, func(old int, _ bool) (int, bool) {
		if level > old {
			fresh = true
			return level, true
		}
		return old, true
	})
	if !fresh {
		return
	}
	// Claimed in line, in order: a crossing happens four times a period
	// at most, and a later level must not be claimed before an earlier.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := l.cfg.Notices.Claim(ctx, c.Key.Tenant, c.Key.User, c.PeriodStart, level)
	if err != nil && ok {
		l.cfg.Log.Warn("record quota notice", "tenantId", c.Key.Tenant, "userId", c.Key.User, "level", level, "err", err)
	} else if err != nil {
		l.cfg.Log.Warn("claim quota notice", "tenantId", c.Key.Tenant, "userId", c.Key.User, "level", level, "err", err)
		l.levels.update(k, func(int, bool) (int, bool) { return 0, false }) // try again on the next request
		return
	}
	if !ok {
		return
	}
	typ := EventQuotaWarning
	if level >= 100 {
		typ = EventQuotaExceeded
	}
	l.notices.WithLabelValues(fmt.Sprint(level)).Inc()
	data := map[string]any{
		"threshold": level, "used": used, "limit": c.Limit, "percentUsed": percent(used, c.Limit),
		"plan": d.Plan.Name, "periodStart": c.PeriodStart, "resetAt": c.PeriodEnd, "quotaMode": modeOf(c),
	}
	if u := upgradeOf(d.Plan, l.plans.Next(d.Plan)); u != nil {
		data["upgrade"] = u
	}
	data["message"] = fmt.Sprintf("%d %% of the %s plan's %d requests used this period; the quota resets on %s.", level, d.Plan.Name, c.Limit, c.PeriodEnd.UTC().Format("2 January 2006"))
	if level < 100 && l.cfg.Forecast != nil {
		// In the request's path (a crossing happens thrice a period at
		// most): a slow store delays it two seconds at worst.
		fctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		f, err := l.cfg.Forecast(fctx, c.Key.Tenant, c.Key.User, d.Now, c.PeriodStart, c.PeriodEnd, c.Limit, used)
		cancel()
		if err != nil {
			l.cfg.Log.Warn("quota forecast", "tenantId", c.Key.Tenant, "userId", c.Key.User, "err", err)
		} else {
			data["forecast"] = f
			data["message"] = data["message"].(string) + " " + ForecastSentence(f, c.Limit)
		}
	}
	id := fmt.Sprintf("quota:%s:%s:%s:%d", c.Key.Tenant, c.Key.User, c.PeriodStart.UTC().Format("20060102"), level)
	l.emit(Event{ID: id, Type: typ, Time: d.Now, Tenant: c.Key.Tenant, User: c.Key.User, Data: data})
}

func modeOf(c Check) string {
	if c.Soft {
		return plans.QuotaSoft
	}
	return plans.QuotaHard
}

// rateLimited sends api.rate_limit.exceeded, at most once a minute per
// user and policy.
func (l *Limiter) rateLimited(d *Decision, c Check, st State) {
	now := d.Now.UnixNano()
	first := false
	l.lastDeny.update(c.Key, func(at int64, ok bool) (int64, bool) {
		if ok && now-at < int64(time.Minute) {
			return at, true
		}
		first = true
		return now, true
	})
	if !first {
		return
	}
	data := map[string]any{
		"policy": c.Key.Policy, "limit": c.Limit, "windowSeconds": int64(c.Window / time.Second),
		"retryAfterSeconds": ceilSeconds(st.RetryAfter), "plan": d.Plan.Name, "endpoint": d.Route, "method": d.Method,
	}
	if u := upgradeOf(d.Plan, l.plans.Next(d.Plan)); u != nil {
		data["upgrade"] = u
	}
	l.emit(Event{Type: EventRateLimitExceeded, Time: d.Now, Tenant: c.Key.Tenant, User: c.Key.User, Data: data})
}

func (l *Limiter) emit(e Event) {
	if l.cfg.OnEvent != nil {
		l.cfg.OnEvent(e)
	}
}

// Upgrade is the plan a refused or warned user could move to.
type Upgrade struct {
	Plan            string `json:"plan"`
	HourlyRequests  uint64 `json:"hourlyRequests"`  // 0: unlimited
	MonthlyRequests uint64 `json:"monthlyRequests"` // 0: unlimited
	Message         string `json:"message"`
}

func upgradeOf(p, next *plans.Plan) *Upgrade {
	if p == nil || next == nil {
		return nil
	}
	msg := fmt.Sprintf("Upgrade to %s for unlimited requests.", next.Name)
	if !next.Unlimited() {
		amount := func(n uint64, per string) string {
			if n == 0 {
				return "unlimited requests " + per
			}
			return thousands(n) + " requests " + per
		}
		msg = fmt.Sprintf("Upgrade to %s for %s and %s.", next.Name, amount(next.HourlyRequests, "an hour"), amount(next.MonthlyRequests, "a month"))
	}
	return &Upgrade{Plan: next.Name, HourlyRequests: next.HourlyRequests, MonthlyRequests: next.MonthlyRequests, Message: msg}
}

func thousands(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func percent(used, limit uint64) float64 {
	if limit == 0 {
		return 0
	}
	return min(100, float64(used)*100/float64(limit))
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Run sweeps idle bookkeeping (and an in-memory backend's idle counters)
// every minute until ctx ends.
func (l *Limiter) Run(ctx context.Context) error {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.Sweep()
		}
	}
}

// Sweep drops bookkeeping of periods that are over and counters nobody
// uses.
func (l *Limiter) Sweep() {
	now := l.cfg.Clock.Now()
	if m, ok := l.backend.(*Memory); ok {
		m.Sweep(now)
	}
	if p, ok := l.cfg.Resolver.(interface{ Prune() }); ok {
		p.Prune()
	}
	old := now.Add(-35 * 24 * time.Hour).UnixNano()
	l.refresh.prune(func(k seedKey, at int64) bool { return at < now.Add(-time.Hour).UnixNano() })
	l.levels.prune(func(k seedKey, _ int) bool { return k.Period < old })
	l.lastDeny.prune(func(_ Key, at int64) bool { return at < now.Add(-time.Minute).UnixNano() })
}

// Status reads a user's limits without counting anything: the hourly
// limit, the quota and every endpoint limit of the plan, as the headers
// of a request made now would show them.
func (l *Limiter) Status(ctx context.Context, tenant, user string) (*Decision, error) {
	d, err := l.decide(ctx, Request{Tenant: tenant, User: user}, scopeHourly|scopeQuota|scopeAllEndpoints)
	if d != nil && d.Failed {
		return nil, err
	}
	return d, err
}

// Check decides one call of a user against every limit of its plan
// (hourly, quota, the route's endpoint limits), counting it when
// allowed — or only reading the state when r.Cost is 0. A nil decision
// with an error means the account could not be resolved; a decision
// with Failed set means the backend could not decide (Allowed follows
// the fail-open or fail-closed policy).
func (l *Limiter) Check(ctx context.Context, r Request) (*Decision, error) {
	return l.decide(ctx, r, scopeHourly|scopeQuota|scopeEndpoints)
}

// Peek is Check without counting: whether a call of r.Cost would go
// through now, with every limit's state as it stands.
func (l *Limiter) Peek(ctx context.Context, r Request) (*Decision, error) {
	cost := r.Cost
	r.Cost = 0
	d, err := l.decide(ctx, r, scopeHourly|scopeQuota|scopeEndpoints)
	if d == nil || d.Failed {
		return d, err
	}
	d.Cost = cost
	for i, c := range d.Checks {
		st := &d.States[i]
		if c.Soft || st.Used+cost <= c.Limit {
			continue
		}
		st.Denied, d.Allowed = true, false
		if d.Denied < 0 {
			d.Denied = i
		}
		st.RetryAfter = st.Reset.Sub(d.Now)
		if c.Window == 0 {
			st.RetryAfter = c.PeriodEnd.Sub(d.Now)
		}
	}
	return d, err
}

// Decided says whether id names a decision of this limiter's replicas
// that counted a call of tenant's user (false without decision ids).
func (l *Limiter) Decided(tenant, user, id string) bool {
	return l.cfg.Decisions != nil && l.cfg.Decisions.Verify(tenant, user, id)
}

// FailClosed says whether decisions are refused while the backend fails.
func (l *Limiter) FailClosed() bool { return l.cfg.FailClosed }

// Usage is the recorded usage of a period (0 without a UsageSource).
func (l *Limiter) Usage(ctx context.Context, tenant, user string, start, end time.Time) (uint64, error) {
	if l.cfg.Usage == nil {
		return 0, nil
	}
	return l.cfg.Usage.PeriodUsage(ctx, tenant, user, start, end)
}

// Rollover is the quota-period boundary at now: periods that started
// today (00:00 UTC) begin from zero — their counters are keyed by period
// and start afresh — and what was kept for periods that ended is dropped
// now rather than at the next sweep. It reports how many periods of the
// given anchor days began today.
func (l *Limiter) Rollover(now time.Time, anchors map[int]int) (began int) {
	now = now.UTC()
	for anchor, users := range anchors {
		if start, _ := plans.BillingPeriod(now, anchor); start.Equal(now.Truncate(24 * time.Hour)) {
			began += users
		}
	}
	l.Sweep()
	cut := now.Truncate(24 * time.Hour).Add(-32 * 24 * time.Hour).UnixNano()
	l.levels.prune(func(k seedKey, _ int) bool { return k.Period < cut })
	l.refresh.prune(func(k seedKey, _ int64) bool { return k.Period < cut })
	return began
}

// ForecastSentence says what a forecast means for a quota of limit.
func ForecastSentence(f forecast.Result, limit uint64) string {
	if f.RunsOutAt != nil {
		return fmt.Sprintf("At this rate you reach your limit on %s.", f.RunsOutAt.UTC().Format("2 January 2006"))
	}
	return fmt.Sprintf("At this rate the period ends at about %d of %d.", f.ProjectedAtPeriodEnd, limit)
}
