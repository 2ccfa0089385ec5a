package api

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
)

// DecisionsAPI answers "may this call go through?" for APIs in any
// language and behind any gateway: POST /limits/check for a service
// that asks itself, /limits/forward-auth for NGINX auth_request, Caddy
// forward_auth, Traefik ForwardAuth and Envoy ext_authz. Both decide
// with the same limiter as the middleware, count an allowed call once,
// and name the decision so the call's usage record is not counted again.
type DecisionsAPI struct {
	Limits *limits.Limiter
	Keys   Authenticator
	// Route maps a raw path (/api/users/123) to the route template that
	// endpoint limits and analytics use (/api/users/:id). Default: the
	// default plans' rule (numeric, UUID and other id segments → :id).
	Route func(path string) string
	log   *slog.Logger
}

// ForwardAuthMethods are the methods the gateway check answers: gateways
// differ in which they send (some the original request's).
var ForwardAuthMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// MaxCost is the most one decided call may count for.
const MaxCost = 1_000_000

// Headers a gateway check adds for the upstream.
const (
	HeaderTenant  = "X-Apimeter-Tenant"
	HeaderUser    = "X-Apimeter-User"
	HeaderRefused = "X-Apimeter-Refused"
)

// MountDecisions adds POST /limits/check (tenant admins, global admins
// and service keys) and /limits/forward-auth (any method; the end
// customer's own key).
func (s *Server) MountDecisions(d *DecisionsAPI) {
	if d.Route == nil {
		d.Route = plans.DefaultPlans().Route
	}
	d.log = s.log
	g := s.echo.Group(BasePath + "/limits")
	g.POST("/check", d.check, ServiceAuth(d.Keys))
	for _, m := range ForwardAuthMethods {
		g.Add(m, "/forward-auth", d.forwardAuth)
	}
}

// OwnLimits are the limits of apimeter's own API: the caller's plan
// headers as a call made now would find them (nothing counted, nothing
// refused — reading one's usage must work when the quota is spent), and
// the API's own limit per caller (n calls in window, per address
// without a key), whose 429 carries the plan's headers too.
func OwnLimits(mw *limits.Middleware, n int, window time.Duration) echo.MiddlewareFunc {
	protect, report := mw.RateLimit("api", n, window), mw.Report()
	return func(next echo.HandlerFunc) echo.HandlerFunc { return report(protect(next)) }
}

// ServiceAuth requires an admin or a service key: the callers that
// decide and report calls for their tenant.
func ServiceAuth(keys Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, err := authenticate(c, keys)
			if err != nil {
				return err
			}
			if !p.Admin() && !p.Service() {
				return forbidden("this route needs a service key or an admin key")
			}
			setPrincipal(c, p)
			return next(c)
		}
	}
}

// CheckBody is POST /limits/check: a call to decide, of a user named by
// tenantId and userId, or by the end customer's own key (apiKey).
type CheckBody struct {
	TenantID string `json:"tenantId,omitempty"`
	UserID   string `json:"userId,omitempty"`
	APIKey   string `json:"apiKey,omitempty"`
	Endpoint string `json:"endpoint" openapi:"required"`
	Method   string `json:"method" openapi:"required"`
	Cost     *int64 `json:"cost,omitempty" minimum:"1" maximum:"1000000"`
	DryRun   bool   `json:"dryRun,omitempty"`
}

// CheckResponse is the answer of POST /limits/check: 200 when the call
// may go through, 429 when a limit refuses it.
type CheckResponse struct {
	Allowed bool `json:"allowed"`
	// DecisionID names a counted call: put it in the call's usage record
	// (decisionId) so the record does not count it again.
	DecisionID string `json:"decisionId,omitempty"`
	TenantID   string `json:"tenantId"`
	UserID     string `json:"userId"`
	Plan       string `json:"plan"`
	// Endpoint is the route template the call counts under.
	Endpoint string `json:"endpoint"`
	Method   string `json:"method"`
	Cost     int64  `json:"cost"`
	DryRun   bool   `json:"dryRun"`
	// FailedOpen says the limits backend could not decide and the call
	// is let through (APIMETER_LIMITS_FAIL=open).
	FailedOpen bool                `json:"failedOpen,omitempty"`
	Limits     []limits.LimitState `json:"limits"`
	// When refused: seconds until the call would fit, the limit that
	// refused it, the error and the next plan up.
	RetryAfter int64              `json:"retryAfter,omitempty"`
	Error      *ErrorDetail       `json:"error,omitempty"`
	Limit      *limits.LimitState `json:"limit,omitempty"`
	Upgrade    *limits.Upgrade    `json:"upgrade,omitempty"`
}

// ErrorDetail is the code and message of a refusal.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (d *DecisionsAPI) check(c echo.Context) error {
	var b CheckBody
	if err := decodeBody(c, &b); err != nil {
		return err
	}
	if err := queryScope(c, &b.TenantID, &b.UserID); err != nil {
		return err
	}
	caller, _ := principal(c)
	r := limits.Request{Method: strings.ToUpper(b.Method), Cost: 1}
	if b.Cost != nil {
		if *b.Cost < 1 || *b.Cost > MaxCost {
			return BadRequest("cost %d: want 1 to %d (dryRun peeks without counting)", *b.Cost, MaxCost)
		}
		r.Cost = uint64(*b.Cost)
	}
	if err := checkCall(b.Endpoint, r.Method); err != nil {
		return err
	}
	r.Route = d.Route(b.Endpoint)
	switch {
	case b.APIKey != "":
		if b.UserID != "" || b.TenantID != "" {
			return BadRequest("send either apiKey or tenantId and userId, not both")
		}
		p, err := d.Keys.Authenticate(c.Request().Context(), b.APIKey)
		if err != nil {
			if errors.Is(err, auth.ErrUnknownKey) || errors.Is(err, auth.ErrRevoked) || errors.Is(err, auth.ErrExpired) {
				c.Set(authFailureKey, "unknown")
				return Errorf(http.StatusUnauthorized, "invalid_api_key", "apiKey is not a valid key")
			}
			return err
		}
		if p.Tenant == auth.AllTenants || p.Service() {
			return forbidden("apiKey must be an end customer's key (a user key of one tenant)")
		}
		r.Tenant, r.User = p.Tenant, p.User
	case b.UserID == "":
		return BadRequest("userId is required (or apiKey: the end customer's key)")
	default:
		r.Tenant, r.User = b.TenantID, b.UserID
		if r.Tenant == "" {
			if caller.Tenant == auth.AllTenants {
				return BadRequest("tenantId is required with a key of every tenant")
			}
			r.Tenant = caller.Tenant
		}
		if p := auth.NameProblem(r.Tenant); p != "" {
			return BadRequest("tenantId %.140q: %s", r.Tenant, p)
		}
		if p := auth.NameProblem(r.User); p != "" {
			return BadRequest("userId %.140q: %s", r.User, p)
		}
	}
	if caller.Tenant != auth.AllTenants && caller.Tenant != r.Tenant {
		return forbidden("this key decides calls of tenant %q only", caller.Tenant)
	}
	cost := int64(r.Cost)
	decide := d.Limits.Check
	if b.DryRun {
		decide = d.Limits.Peek
	}
	dec, err := decide(c.Request().Context(), r)
	if dec == nil {
		return limitsUnavailable()
	}
	resp := CheckResponse{TenantID: r.Tenant, UserID: r.User, Plan: dec.Plan.Name, Endpoint: r.Route, Method: r.Method, Cost: cost,
		DryRun: b.DryRun, Limits: []limits.LimitState{}}
	if dec.Failed {
		if !dec.Allowed {
			d.logFailure(c, err)
			return limitsUnavailable()
		}
		resp.Allowed, resp.FailedOpen = true, true
		return c.JSON(http.StatusOK, resp)
	}
	limits.WriteHeaders(c.Response().Header(), dec)
	for i := range dec.Checks {
		resp.Limits = append(resp.Limits, limits.StateOf(dec, i))
	}
	if dec.Allowed {
		resp.Allowed, resp.DecisionID = true, dec.ID
		if dec.ID != "" {
			c.Response().Header()[limits.HeaderDecision] = []string{dec.ID}
		}
		return c.JSON(http.StatusOK, resp)
	}
	ref := limits.RefusalOf(dec, d.Limits.Plans())
	resp.RetryAfter = ref.RetryAfterSeconds
	resp.Error = &ErrorDetail{Code: ref.Error.Code, Message: ref.Error.Message}
	resp.Limit, resp.Upgrade = &ref.Limit, ref.Upgrade
	c.Response().Header().Set("Retry-After", strconv.FormatInt(ref.RetryAfterSeconds, 10))
	return c.JSON(http.StatusTooManyRequests, resp)
}

func limitsUnavailable() *Error {
	e := Errorf(http.StatusServiceUnavailable, "unavailable", "limits are unavailable; try again shortly")
	e.RetryAfter = time.Second
	return e
}

func (d *DecisionsAPI) logFailure(c echo.Context, err error) {
	d.log.Warn("limits backend failed", "route", c.Path(), "err", err)
}

// checkCall checks a call's endpoint and method.
func checkCall(endpoint, method string) error {
	switch {
	case endpoint == "":
		return BadRequest("endpoint is required: the call's path (/api/users/123) or route template (/api/users/:id)")
	case endpoint[0] != '/':
		return BadRequest("endpoint %.140q: want a path starting with /", endpoint)
	case len(endpoint) > 2048:
		return BadRequest("endpoint: at most 2048 bytes")
	case method == "":
		return BadRequest("method is required (GET, POST, …)")
	case !validMethod(method):
		return BadRequest("method %.40q: want an HTTP method token of at most 16 letters", method)
	}
	return nil
}

func validMethod(m string) bool {
	if len(m) > 16 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// forwardAuth is the gateway check: the end customer's key in
// Authorization, the original call in X-Original-Method/-URI (NGINX) or
// X-Forwarded-Method/-Uri (Caddy, Traefik). Allowed: 200 with the limit
// headers and the tenant, user and decision for the upstream; unknown
// key: 401; refused: 429 with Retry-After — or, with
// ?refusedStatus=403, a 403 carrying X-Apimeter-Refused, for NGINX's
// auth_request, which passes on only 2xx, 401 and 403.
func (d *DecisionsAPI) forwardAuth(c echo.Context) error {
	refused := http.StatusTooManyRequests
	switch v := c.QueryParam("refusedStatus"); v {
	case "", "429":
	case "403":
		refused = http.StatusForbidden
	default:
		return BadRequest("refusedStatus %.20q: want 429 or 403", v)
	}
	p, err := authenticate(c, d.Keys)
	if err != nil {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="apimeter"`)
		return err
	}
	if p.Tenant == auth.AllTenants || p.Service() {
		return forbidden("the gateway check takes an end customer's key (a user key of one tenant)")
	}
	h := c.Request().Header
	method := firstHeader(h, "X-Original-Method", "X-Forwarded-Method")
	if method == "" {
		method = c.Request().Method
	}
	method = strings.ToUpper(method)
	uri := firstHeader(h, "X-Original-URI", "X-Forwarded-Uri")
	if uri == "" {
		return BadRequest("send the original request's URI in X-Original-URI or X-Forwarded-Uri")
	}
	path := uri
	if !strings.HasPrefix(path, "/") { // an absolute URI
		u, err := url.Parse(uri)
		if err != nil || u.Path == "" {
			return BadRequest("the original URI %.140q is not a path", uri)
		}
		path = u.Path
	}
	path, _, _ = strings.Cut(path, "?")
	if err := checkCall(path, method); err != nil {
		return err
	}
	r := limits.Request{Tenant: p.Tenant, User: p.User, Method: method, Route: d.Route(path), Cost: 1}
	dec, err := d.Limits.Check(c.Request().Context(), r)
	if dec == nil || (dec.Failed && !dec.Allowed) {
		d.logFailure(c, err)
		return limitsUnavailable()
	}
	rh := c.Response().Header()
	rh[HeaderTenant] = []string{p.Tenant}
	rh[HeaderUser] = []string{p.User}
	if dec.Failed {
		return c.JSON(http.StatusOK, ForwardAuthResponse{Allowed: true, FailedOpen: true})
	}
	limits.WriteHeaders(rh, dec)
	if dec.Allowed {
		if dec.ID != "" {
			rh[limits.HeaderDecision] = []string{dec.ID}
		}
		return c.JSON(http.StatusOK, ForwardAuthResponse{Allowed: true, DecisionID: dec.ID})
	}
	ref := limits.RefusalOf(dec, d.Limits.Plans())
	rh.Set("Retry-After", strconv.FormatInt(ref.RetryAfterSeconds, 10))
	if refused == http.StatusForbidden {
		rh[HeaderRefused] = []string{ref.Error.Code}
	}
	return c.JSON(refused, ref)
}

// ForwardAuthResponse is the gateway check's answer when the call may
// go through (the headers matter to the gateway; the body to a person).
type ForwardAuthResponse struct {
	Allowed    bool   `json:"allowed"`
	DecisionID string `json:"decisionId,omitempty"`
	FailedOpen bool   `json:"failedOpen,omitempty"`
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
}
