package limits

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/plans"
)

// Identity finds the caller of a request: its tenant and user, "" for
// an unauthenticated call.
type Identity func(c echo.Context) (tenant, user string)

// ContextIdentity reads the echo context values "tenantId" and "userId"
// that an auth middleware sets (apimeter's own does).
func ContextIdentity(c echo.Context) (string, string) {
	t, _ := c.Get("tenantId").(string)
	u, _ := c.Get("userId").(string)
	return t, u
}

// MiddlewareConfig configures the middleware of a Limiter.
type MiddlewareConfig struct {
	// Identity finds the caller. Default: ContextIdentity.
	Identity Identity
	// Skip exempts requests (say, operators' keys). Default: none.
	Skip func(c echo.Context) bool
	// Cost is what a request counts for. Default: 1.
	Cost func(c echo.Context) uint64
}

// Middleware makes echo middleware from a limiter.
type Middleware struct {
	l   *Limiter
	cfg MiddlewareConfig
}

// Middleware is the limiter's echo middleware.
func (l *Limiter) Middleware(cfg MiddlewareConfig) *Middleware {
	if cfg.Identity == nil {
		cfg.Identity = ContextIdentity
	}
	return &Middleware{l: l, cfg: cfg}
}

// Enforce applies all of a caller's limits in one decision: the plan's
// hourly limit, its quota and its limits for the request's endpoint;
// calls without a user get the per-address fallback. Nothing is counted
// against one limit when another refuses the request.
func (m *Middleware) Enforce() echo.MiddlewareFunc {
	return m.handler(scopeHourly|scopeQuota|scopeEndpoints|scopeIP, nil)
}

// PlanRateLimit applies the plan's hourly limit, per user.
func (m *Middleware) PlanRateLimit() echo.MiddlewareFunc {
	return m.handler(scopeHourly|scopeEndpoints, nil)
}

// EnforceQuota applies the plan's quota for the billing period: a 429
// past it under a hard quota; a soft quota lets requests through and
// says so in the headers and events.
func (m *Middleware) EnforceQuota() echo.MiddlewareFunc {
	return m.handler(scopeQuota, nil)
}

// IPRateLimit applies the per-address fallback limit to calls without a
// user (API_RATE_LIMIT_MAX_REQUESTS per API_RATE_LIMIT_WINDOW_MS).
func (m *Middleware) IPRateLimit() echo.MiddlewareFunc {
	return m.handler(scopeIP, nil)
}

// EndpointRateLimit limits a route to n requests in any window, per
// user (per address for calls without one):
//
//	e.POST("/api/bulk-operation", h, mw.EndpointRateLimit("/api/bulk-operation", 5, time.Minute))
func (m *Middleware) EndpointRateLimit(path string, n int, window time.Duration) echo.MiddlewareFunc {
	if n <= 0 || window < time.Second {
		panic(fmt.Sprintf("limits: EndpointRateLimit(%q, %d, %s): want n > 0 and a window of 1s or more", path, n, window))
	}
	e := plans.EndpointLimit{Path: path, Limit: uint64(n), Window: window}
	return m.handler(0, &e)
}

// Report writes the caller's plan limits to the headers (hourly, quota,
// the route's endpoint limits) as a request made now would find them,
// without counting the request or refusing it. It is for an application
// whose own calls are not the metered API — apimeter's analytics API:
// reading one's usage must work when the metered API's quota is spent,
// and must not spend it.
func (m *Middleware) Report() echo.MiddlewareFunc {
	return m.handlerMode(scopeHourly|scopeQuota|scopeEndpoints, nil, modeReport)
}

// RateLimit protects the application itself: n requests in any window
// per caller (per address for calls without a user), under the policy
// name, whatever the caller's plan. It shows only in the IETF RateLimit
// fields (the X-RateLimit headers stay the plan's) and in the 429 it
// answers.
func (m *Middleware) RateLimit(name string, n int, window time.Duration) echo.MiddlewareFunc {
	if n <= 0 || window < time.Second {
		panic(fmt.Sprintf("limits: RateLimit(%q, %d, %s): want n > 0 and a window of 1s or more", name, n, window))
	}
	e := plans.EndpointLimit{Path: name, Limit: uint64(n), Window: window}
	return m.handlerMode(0, &e, modeProtect)
}

type mode uint8

const (
	modeEnforce mode = iota
	modeReport
	modeProtect
)

func (m *Middleware) handler(sc scope, explicit *plans.EndpointLimit) echo.MiddlewareFunc {
	return m.handlerMode(sc, explicit, modeEnforce)
}

func (m *Middleware) handlerMode(sc scope, explicit *plans.EndpointLimit, md mode) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if m.cfg.Skip != nil && m.cfg.Skip(c) {
				return next(c)
			}
			tenant, user := m.cfg.Identity(c)
			r := Request{Tenant: tenant, User: user, Method: c.Request().Method, Route: c.Path(), Cost: 1}
			if user == "" {
				r.IP = c.RealIP()
			}
			if m.cfg.Cost != nil {
				r.Cost = m.cfg.Cost(c)
			}
			if md == modeReport {
				if user == "" {
					return next(c)
				}
				r.Cost = 0
			}
			var extra []Check
			if explicit != nil {
				who := user
				if who == "" {
					who = "ip:" + r.IP
				}
				ch := endpointCheck(*explicit, tenant, who)
				if md == modeProtect {
					ch.Key.Policy, ch.Protect = explicit.Path, true
				}
				extra = append(extra, ch)
			}
			d, err := m.l.decideInto(c.Request().Context(), decisions.Get().(*Decision), r, sc, extra...)
			if d == nil { // the account could not be resolved: as if the backend failed
				d = &Decision{Failed: true, Allowed: !m.l.cfg.FailClosed}
				m.l.failures.Inc()
			} else {
				defer decisions.Put(d)
			}
			if d.Failed {
				m.l.cfg.Log.Warn("limits backend failed", "failClosed", m.l.cfg.FailClosed, "err", err)
				if !d.Allowed && md != modeReport { // a report never holds a request up
					c.Response().Header().Set("Retry-After", "1")
					return echo.NewHTTPError(http.StatusServiceUnavailable, "limits are unavailable; try again shortly").SetInternal(errLimitsUnavailable)
				}
				return next(c)
			}
			WriteHeaders(c.Response().Header(), d)
			if d.ID != "" { // counted here: the call's usage record may say so
				c.Response().Header()[HeaderDecision] = []string{d.ID}
				c.Set(ContextDecision, d.ID)
			}
			if !d.Allowed && md != modeReport {
				return Refuse(c, d, m.l.plans)
			}
			return next(c)
		}
	}
}

var errLimitsUnavailable = errors.New("limits unavailable")

// WriteHeaders sets a decision's headers: X-RateLimit-* for the window
// with the least room left, X-Quota-* for the quota (ISO 8601 UTC
// resets), and the IETF RateLimit-Policy and RateLimit fields naming
// every policy. Headers of an earlier decision on the same response
// are kept when they show less room. The values are written into one
// buffer and cut from one string: a handful of allocations per request.
func WriteHeaders(h http.Header, d *Decision) {
	var buf [512]byte
	b := buf[:0]
	type span struct{ from, to int }
	var policy, limit [MaxChecks]span
	var qLimit, qRem, qReset, xLimit, xRem, xReset span
	hasQuota := false
	win := -1
	var winRem uint64
	for i, c := range d.Checks {
		st := d.States[i]
		rem := st.Remaining(c.Limit)
		window := c.Window
		if window <= 0 {
			window = c.PeriodEnd.Sub(c.PeriodStart)
		}
		from := len(b)
		b = appendSFString(b, c.Key.Policy)
		b = append(b, ";q="...)
		b = strconv.AppendUint(b, c.Limit, 10)
		b = append(b, ";w="...)
		b = strconv.AppendInt(b, int64(window/time.Second), 10)
		policy[i] = span{from, len(b)}
		from = len(b)
		b = appendSFString(b, c.Key.Policy)
		b = append(b, ";r="...)
		b = strconv.AppendUint(b, rem, 10)
		b = append(b, ";t="...)
		// t never exceeds w: a window's oldest slot leaves up to one slot
		// (W/60) after W, which the draft's fields cannot say.
		b = strconv.AppendInt(b, min(ceilSeconds(st.Reset.Sub(d.Now)), int64(window/time.Second)), 10)
		limit[i] = span{from, len(b)}
		if c.Protect {
			continue
		}
		if c.Window > 0 {
			if win < 0 || rem < winRem || (st.Denied && !d.States[win].Denied) {
				win, winRem = i, rem
			}
			continue
		}
		hasQuota = true
		qLimit.from = len(b)
		b = strconv.AppendUint(b, c.Limit, 10)
		qLimit.to, qRem.from = len(b), len(b)
		b = strconv.AppendUint(b, rem, 10)
		qRem.to, qReset.from = len(b), len(b)
		b = appendISO(b, c.PeriodEnd)
		qReset.to = len(b)
	}
	keepOld := false
	if win >= 0 {
		if v := h[HeaderRemaining]; len(v) > 0 && shown(v[0]) < winRem {
			keepOld = true
		} else {
			xLimit.from = len(b)
			b = strconv.AppendUint(b, d.Checks[win].Limit, 10)
			xLimit.to, xRem.from = len(b), len(b)
			b = strconv.AppendUint(b, winRem, 10)
			xRem.to, xReset.from = len(b), len(b)
			b = appendISO(b, d.States[win].Reset)
			xReset.to = len(b)
		}
	}
	all := string(b)
	cut := func(sp span) string { return all[sp.from:sp.to] }
	n := len(d.Checks)
	vals := make([]string, 0, 2*n+6)
	for i := range n {
		vals = append(vals, cut(policy[i]))
	}
	for i := range n {
		vals = append(vals, cut(limit[i]))
	}
	add := func(name string, v []string) {
		if old := h[name]; len(old) > 0 {
			v = append(old, v...)
		}
		h[name] = v
	}
	add(HeaderPolicy, vals[:n:n])
	add(HeaderRateLimit, vals[n:2*n:2*n])
	one := func(v string) []string {
		vals = append(vals, v)
		return vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if hasQuota {
		h[HeaderQuotaLimit] = one(cut(qLimit))
		h[HeaderQuotaRemaining] = one(cut(qRem))
		h[HeaderQuotaReset] = one(cut(qReset))
	}
	if win >= 0 && !keepOld {
		h[HeaderLimit] = one(cut(xLimit))
		h[HeaderRemaining] = one(cut(xRem))
		h[HeaderReset] = one(cut(xReset))
	}
}

// shown reads a remaining count written before.
func shown(v string) uint64 {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 1<<64 - 1
	}
	return n
}

// appendISO appends a reset time as ISO 8601 UTC in whole seconds,
// rounded up so a client that waits until then finds room.
func appendISO(b []byte, t time.Time) []byte {
	t = ceilSecond(t)
	y, mo, d := t.Date()
	hh, mm, ss := t.Clock()
	two := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	if y < 1000 || y > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05Z")
	}
	b = strconv.AppendInt(b, int64(y), 10)
	b = append(b, '-')
	b = two(b, int(mo))
	b = append(b, '-')
	b = two(b, d)
	b = append(b, 'T')
	b = two(b, hh)
	b = append(b, ':')
	b = two(b, mm)
	b = append(b, ':')
	b = two(b, ss)
	return append(b, 'Z')
}

// appendSFString appends a structured-field string: quoted, with " and
// \ escaped and characters outside printable ASCII dropped.
func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c >= 0x20 && c < 0x7f:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// The limit headers, spelled as the product contract spells them (Go
// would write X-Ratelimit-Limit through Header.Set; they are set as
// they are, and HTTP readers match them in any case).
const (
	HeaderLimit          = "X-RateLimit-Limit"
	HeaderRemaining      = "X-RateLimit-Remaining"
	HeaderReset          = "X-RateLimit-Reset"
	HeaderQuotaLimit     = "X-Quota-Limit"
	HeaderQuotaRemaining = "X-Quota-Remaining"
	HeaderQuotaReset     = "X-Quota-Reset"
	HeaderPolicy         = "RateLimit-Policy"
	HeaderRateLimit      = "RateLimit"
)

// Header reads a header set under its exact spelling (or Go's).
func Header(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return h.Get(name)
}

// isoUTC formats a reset time as the headers do.
func isoUTC(t time.Time) string { return string(appendISO(nil, t)) }

func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); r.Before(t) {
		t = r.Add(time.Second)
	}
	return t.UTC()
}

// LimitState is one limit as responses show it.
type LimitState struct {
	Name          string     `json:"name"`
	Limit         *uint64    `json:"limit"` // null when unlimited
	Used          uint64     `json:"used"`
	Remaining     *uint64    `json:"remaining"` // null when unlimited
	PercentUsed   float64    `json:"percentUsed"`
	Window        string     `json:"window,omitempty"`
	WindowSeconds int64      `json:"windowSeconds,omitempty"`
	PeriodStart   *time.Time `json:"periodStart,omitempty"`
	ResetAt       time.Time  `json:"resetAt"`
	Unlimited     bool       `json:"unlimited"`
	Mode          string     `json:"mode,omitempty"` // quotas: hard or soft
}

// StateOf shows check i of a decision.
func StateOf(d *Decision, i int) LimitState {
	c, st := d.Checks[i], d.States[i]
	lim, rem := c.Limit, st.Remaining(c.Limit)
	s := LimitState{Name: c.Key.Policy, Limit: &lim, Used: st.Used, Remaining: &rem, PercentUsed: percent(st.Used, c.Limit),
		ResetAt: st.Reset.UTC()}
	if c.Window > 0 {
		s.Window, s.WindowSeconds = durationName(c.Window), int64(c.Window/time.Second)
		s.ResetAt = ceilSecond(st.Reset)
	} else {
		start := c.PeriodStart.UTC()
		s.PeriodStart, s.Mode = &start, modeOf(c)
		s.Name = "monthly_requests"
	}
	return s
}

func durationName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// Refusal is the body of a 429.
type Refusal struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Limit             LimitState `json:"limit"`
	RetryAfterSeconds int64      `json:"retryAfterSeconds"`
	Plan              string     `json:"plan"`
	Upgrade           *Upgrade   `json:"upgrade,omitempty"`
}

// RefusalOf is the body of a refused decision's 429: the limit that
// refused it, when it would fit, the plan and the next plan up.
func RefusalOf(d *Decision, ps *plans.Plans) Refusal {
	i := max(d.Denied, 0)
	ch, st := d.Checks[i], d.States[i]
	var r Refusal
	r.Limit = StateOf(d, i)
	r.Plan = d.Plan.Name
	r.RetryAfterSeconds = max(ceilSeconds(st.RetryAfter), 1)
	if d.User != "" && !ch.Protect {
		r.Upgrade = upgradeOf(d.Plan, ps.Next(d.Plan))
	}
	if ch.Window > 0 {
		r.Error.Code = "rate_limit_exceeded"
		r.Error.Message = fmt.Sprintf("%s limit reached: %s requests per %s; retry in %d s", ch.Key.Policy, thousands(ch.Limit), durationName(ch.Window), r.RetryAfterSeconds)
	} else {
		r.Error.Code = "quota_exceeded"
		r.Error.Message = fmt.Sprintf("monthly quota of %s requests used up; it resets at %s", thousands(ch.Limit), isoUTC(ch.PeriodEnd))
	}
	return r
}

// Refuse answers a refused request: 429, Retry-After in seconds, and a
// body naming the limit, the plan and the next plan up.
func Refuse(c echo.Context, d *Decision, ps *plans.Plans) error {
	r := RefusalOf(d, ps)
	c.Response().Header().Set("Retry-After", strconv.FormatInt(r.RetryAfterSeconds, 10))
	return c.JSON(http.StatusTooManyRequests, r)
}
