package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/limits"
)

// newKey issues a key for the decision tests (each test its own users,
// so counts do not mix).
func newKey(t *testing.T, tenant, user, role string) string {
	t.Helper()
	_, secret, err := fx.keys.Create(context.Background(), auth.NewKey{Tenant: tenant, User: user, Role: role})
	require.NoError(t, err)
	return secret
}

// The Free plan of the contract: 100 requests an hour, 1,000 a month;
// the next plan up is Starter with 500 an hour.
const freeHourly = 100

func TestCheckDecidesCountsAndRefuses(t *testing.T) {
	svc := newKey(t, fx.tenant, "checkout-service", auth.RoleService)
	body := map[string]any{"userId": "check-alice", "endpoint": "/api/orders/42", "method": "post"}
	for i := 1; i <= freeHourly; i++ {
		rec := call(t, "POST", BasePath+"/limits/check", svc, body)
		require.Equal(t, http.StatusOK, rec.Code, "call %d: %s", i, rec.Body.String())
		var r CheckResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
		require.True(t, r.Allowed)
		require.Equal(t, fx.tenant, r.TenantID, "a service key decides for its own tenant")
		require.Equal(t, "check-alice", r.UserID)
		require.Equal(t, "POST", r.Method)
		require.Equal(t, "/api/orders/:id", r.Endpoint, "a numeric segment is an id")
		require.Equal(t, "free", r.Plan)
		require.True(t, fx.decisions.Verify(fx.tenant, "check-alice", r.DecisionID), "the decision names the call for that user")
		require.Equal(t, r.DecisionID, rec.Header().Get(limits.HeaderDecision))
		require.Equal(t, strconv.Itoa(freeHourly-i), limits.Header(rec.Header(), limits.HeaderRemaining))
		require.Equal(t, strconv.Itoa(1000-i), limits.Header(rec.Header(), limits.HeaderQuotaRemaining))
		if i == 1 {
			checkAgainstOpenAPI(t, "POST", BasePath+"/limits/check", 200, rec.Body.Bytes())
		}
	}
	// A dry run reads without counting.
	dry := map[string]any{"userId": "check-alice", "endpoint": "/api/orders/42", "method": "POST", "dryRun": true}
	rec := call(t, "POST", BasePath+"/limits/check", svc, dry)
	require.Equal(t, http.StatusTooManyRequests, rec.Code, "the hour is spent: a dry run says so too")

	rec = call(t, "POST", BasePath+"/limits/check", svc, body)
	require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
	var r CheckResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
	require.False(t, r.Allowed)
	require.Empty(t, r.DecisionID)
	require.Equal(t, "rate_limit_exceeded", r.Error.Code)
	require.Equal(t, "hourly", r.Limit.Name)
	require.EqualValues(t, 0, *r.Limit.Remaining)
	require.Equal(t, "starter", r.Upgrade.Plan)
	require.EqualValues(t, 500, r.Upgrade.HourlyRequests)
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, retry)
	require.LessOrEqual(t, retry, 3660, "within the hour and a slot")
	require.EqualValues(t, retry, r.RetryAfter)

	// The quota is 1,000 − 100 = 900 left: the refused call did not count.
	rec = call(t, "POST", BasePath+"/limits/check", svc, dry)
	require.Equal(t, "900", limits.Header(rec.Header(), limits.HeaderQuotaRemaining))

	// A dry run of a fresh user counts nothing either.
	fresh := map[string]any{"userId": "check-bob", "endpoint": "/x", "method": "GET", "dryRun": true, "cost": 5}
	for range 3 {
		rec = call(t, "POST", BasePath+"/limits/check", svc, fresh)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, "100", limits.Header(rec.Header(), limits.HeaderRemaining))
		require.Empty(t, rec.Header().Get(limits.HeaderDecision))
	}
	// A weighted call counts its cost.
	rec = call(t, "POST", BasePath+"/limits/check", svc, map[string]any{"userId": "check-bob", "endpoint": "/x", "method": "GET", "cost": 30})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "70", limits.Header(rec.Header(), limits.HeaderRemaining))
}

func TestCheckWithTheCustomersKey(t *testing.T) {
	svc := newKey(t, fx.tenant, "gateway-service", auth.RoleService)
	customer := newKey(t, fx.tenant, "key-carol", auth.RoleUser)
	rec := call(t, "POST", BasePath+"/limits/check", svc, map[string]any{"apiKey": customer, "endpoint": "/api/things", "method": "GET"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var r CheckResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
	require.Equal(t, fx.tenant, r.TenantID)
	require.Equal(t, "key-carol", r.UserID)
	require.Equal(t, "99", limits.Header(rec.Header(), limits.HeaderRemaining))

	// A tenant admin may decide for its tenant too.
	rec = call(t, "POST", BasePath+"/limits/check", fx.tenantAdminKey, map[string]any{"userId": "key-carol", "endpoint": "/api/things", "method": "GET"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "98", limits.Header(rec.Header(), limits.HeaderRemaining), "the same counter, whoever asks")
	// A global admin names the tenant.
	rec = call(t, "POST", BasePath+"/limits/check", adminKey, map[string]any{"tenantId": fx.tenant, "userId": "key-carol", "endpoint": "/api/things", "method": "GET"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, "97", limits.Header(rec.Header(), limits.HeaderRemaining))
}

func TestCheckRefusesBadInput(t *testing.T) {
	svc := newKey(t, fx.tenant, "bad-input-service", auth.RoleService)
	foreignCustomer := newKey(t, fx.otherTenant, "someone", auth.RoleUser)
	cases := []struct {
		name string
		key  string
		body any
		want int
		code string
	}{
		{"no key", "", map[string]any{"userId": "u", "endpoint": "/x", "method": "GET"}, 401, "unauthenticated"},
		{"a user key", fx.userKey, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET"}, 403, "permission_denied"},
		{"missing user", svc, map[string]any{"endpoint": "/x", "method": "GET"}, 400, "invalid_argument"},
		{"missing endpoint", svc, map[string]any{"userId": "u", "method": "GET"}, 400, "invalid_argument"},
		{"endpoint not a path", svc, map[string]any{"userId": "u", "endpoint": "x", "method": "GET"}, 400, "invalid_argument"},
		{"missing method", svc, map[string]any{"userId": "u", "endpoint": "/x"}, 400, "invalid_argument"},
		{"bad method", svc, map[string]any{"userId": "u", "endpoint": "/x", "method": "GE T"}, 400, "invalid_argument"},
		{"cost 0", svc, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET", "cost": 0}, 400, "invalid_argument"},
		{"cost too high", svc, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET", "cost": MaxCost + 1}, 400, "invalid_argument"},
		{"negative cost", svc, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET", "cost": -1}, 400, "invalid_argument"},
		{"bad user name", svc, map[string]any{"userId": "a\x01b", "endpoint": "/x", "method": "GET"}, 400, "invalid_argument"},
		{"unknown field", svc, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET", "extra": 1}, 400, "invalid_argument"},
		{"another tenant", svc, map[string]any{"tenantId": fx.otherTenant, "userId": "u", "endpoint": "/x", "method": "GET"}, 403, "permission_denied"},
		{"global admin without tenant", adminKey, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET"}, 400, "invalid_argument"},
		{"apiKey and userId", svc, map[string]any{"apiKey": fx.userKey, "userId": "u", "endpoint": "/x", "method": "GET"}, 400, "invalid_argument"},
		{"unknown apiKey", svc, map[string]any{"apiKey": "am_nope", "endpoint": "/x", "method": "GET"}, 401, "invalid_api_key"},
		{"another tenant's customer", svc, map[string]any{"apiKey": foreignCustomer, "endpoint": "/x", "method": "GET"}, 403, "permission_denied"},
		{"a service key as the customer", svc, map[string]any{"apiKey": svc, "endpoint": "/x", "method": "GET"}, 403, "permission_denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			callJSON(t, "POST", BasePath+"/limits/check", c.key, c.body, c.want, nil)
			rec := call(t, "POST", BasePath+"/limits/check", c.key, c.body)
			var e struct{ Error struct{ Code string } }
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
			require.Equal(t, c.code, e.Error.Code)
		})
	}
	// A service key reads no analytics.
	callJSON(t, "GET", BasePath+"/stats", svc, nil, http.StatusForbidden, nil)
	callJSON(t, "GET", BasePath+"/quota", svc, nil, http.StatusForbidden, nil)
}

// forward sends a gateway check as a gateway would.
func forward(t *testing.T, method, target, key string, headers map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := newRequest(method, target, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	fx.srv.Echo().ServeHTTP(rec, req)
	return rec
}

func TestForwardAuthDecidesTheOriginalCall(t *testing.T) {
	customer := newKey(t, fx.tenant, "fwd-dan", auth.RoleUser)
	orig := map[string]string{"X-Original-Method": "DELETE", "X-Original-URI": "/api/users/123?verbose=1"}
	target := BasePath + "/limits/forward-auth"
	for i := 1; i <= freeHourly; i++ {
		// NGINX sends GET with X-Original-*; Traefik and Caddy X-Forwarded-*.
		h := orig
		if i%2 == 0 {
			h = map[string]string{"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": "/api/users/123"}
		}
		rec := forward(t, []string{"GET", "POST", "HEAD"}[i%3], target, customer, h)
		require.Equal(t, http.StatusOK, rec.Code, "call %d: %s", i, rec.Body.String())
		require.Equal(t, fx.tenant, rec.Header().Get(HeaderTenant))
		require.Equal(t, "fwd-dan", rec.Header().Get(HeaderUser))
		require.True(t, fx.decisions.Verify(fx.tenant, "fwd-dan", rec.Header().Get(limits.HeaderDecision)))
		require.Equal(t, strconv.Itoa(freeHourly-i), limits.Header(rec.Header(), limits.HeaderRemaining))
		require.NotEmpty(t, limits.Header(rec.Header(), limits.HeaderQuotaReset))
		require.NotEmpty(t, rec.Header()["RateLimit-Policy"])
		if i == 3 {
			checkAgainstOpenAPI(t, "GET", target, 200, rec.Body.Bytes())
		}
	}
	rec := forward(t, "GET", target, customer, orig)
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	require.NoError(t, err)
	require.Positive(t, retry)
	var ref limits.Refusal
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &ref))
	require.Equal(t, "rate_limit_exceeded", ref.Error.Code)
	require.Empty(t, rec.Header().Get(limits.HeaderDecision))
	require.Equal(t, "0", limits.Header(rec.Header(), limits.HeaderRemaining))

	// For NGINX's auth_request: a 403 that says it is a refusal.
	rec = forward(t, "GET", target+"?refusedStatus=403", customer, orig)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, "rate_limit_exceeded", rec.Header().Get(HeaderRefused))
	require.Equal(t, strconv.Itoa(retry), rec.Header().Get("Retry-After"))

	// The same counter as /limits/check and /rate-limit.
	var rl RateLimitResponse
	callJSON(t, "GET", BasePath+"/rate-limit", customer, nil, 200, &rl)
	require.EqualValues(t, freeHourly, rl.Hourly.Used)
}

func TestForwardAuthRefusesBadInput(t *testing.T) {
	customer := newKey(t, fx.tenant, "fwd-erin", auth.RoleUser)
	svc := newKey(t, fx.tenant, "fwd-service", auth.RoleService)
	target := BasePath + "/limits/forward-auth"
	uri := map[string]string{"X-Original-URI": "/api/x"}
	for _, c := range []struct {
		name, target, key string
		headers           map[string]string
		want              int
	}{
		{"no key", target, "", uri, 401},
		{"unknown key", target, "am_unknown", uri, 401},
		{"a key of every tenant", target, adminKey, uri, 403},
		{"a service key", target, svc, uri, 403},
		{"no URI", target, customer, nil, 400},
		{"a URI that is not a path", target, customer, map[string]string{"X-Original-URI": "nope"}, 400},
		{"a bad refusedStatus", target + "?refusedStatus=500", customer, uri, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := forward(t, "GET", c.target, c.key, c.headers)
			require.Equal(t, c.want, rec.Code, rec.Body.String())
			var e struct {
				Error struct{ Code, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
			require.NotEmpty(t, e.Error.Message)
			if c.want == 401 {
				require.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
			}
		})
	}
	// An absolute URI counts its path.
	rec := forward(t, "GET", target, customer, map[string]string{"X-Forwarded-Uri": "https://api.example.com/api/x?q=1"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// With Redis away, decisions follow APIMETER_LIMITS_FAIL.
func TestDecisionsFollowTheFailurePolicy(t *testing.T) {
	svc := newKey(t, fx.tenant, "fail-service", auth.RoleService)
	customer := newKey(t, fx.tenant, "fail-frank", auth.RoleUser)
	for _, closed := range []bool{false, true} {
		// Nothing listens on port 1: every Redis call fails at once.
		client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		lim := limits.New(limits.Config{Backend: limits.NewRedis(client, "t:"), FailClosed: closed})
		srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
		srv.MountDecisions(&DecisionsAPI{Limits: lim, Keys: fx.keys})
		do := func(req *http.Request) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			srv.Echo().ServeHTTP(rec, req)
			return rec
		}
		req := newRequest("POST", BasePath+"/limits/check", jsonBody(t, map[string]any{"userId": "u", "endpoint": "/x", "method": "GET"}))
		req.Header.Set("Authorization", "Bearer "+svc)
		req.Header.Set("Content-Type", "application/json")
		rec := do(req)
		fwd := newRequest("GET", BasePath+"/limits/forward-auth", nil)
		fwd.Header.Set("Authorization", "Bearer "+customer)
		fwd.Header.Set("X-Original-URI", "/x")
		frec := do(fwd)
		if closed {
			require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
			require.Equal(t, "1", rec.Header().Get("Retry-After"))
			require.Equal(t, http.StatusServiceUnavailable, frec.Code)
			continue
		}
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var r CheckResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r))
		require.True(t, r.Allowed)
		require.True(t, r.FailedOpen)
		require.Equal(t, http.StatusOK, frec.Code)
		require.Equal(t, "fail-frank", frec.Header().Get(HeaderUser))
	}
}

func jsonBody(t *testing.T, v any) io.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.NewReader(b)
}
