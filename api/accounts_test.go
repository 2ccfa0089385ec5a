package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/store/storetest"
)

// accountsServer is a server with the accounts routes on a database of
// its own (the fixture's users keep no account), behind the fixture's
// keys.
type accountsServer struct {
	srv     *Server
	mu      sync.Mutex
	changed []string // tenant/user of each OnChange call
}

func newAccountsServer(t *testing.T) *accountsServer {
	t.Helper()
	db := migrated(t, storetest.Open(t))
	x := &accountsServer{srv: New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)}
	x.srv.MountAccounts(&AccountsAPI{
		Store:     accounts.New(db),
		ValidPlan: plans.DefaultPlans().Valid,
		OnChange: func(tenant, user string) {
			x.mu.Lock()
			x.changed = append(x.changed, tenant+"/"+user)
			x.mu.Unlock()
		},
		Plans: plans.DefaultPlans().Names,
	}, KeyAuth(fx.keys, true))
	return x
}

// takeChanges returns the OnChange calls so far and forgets them.
func (x *accountsServer) takeChanges() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := x.changed
	x.changed = nil
	return out
}

// call sends a request; a success is checked against the OpenAPI
// document and an error against the error body's shape. It returns the
// error message, if any.
func (x *accountsServer) call(t *testing.T, method, target, key string, body any, want int, out any) string {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = strings.NewReader(string(raw))
	}
	req := newRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	x.srv.Echo().ServeHTTP(rec, req)
	require.Equal(t, want, rec.Code, "%s %s: %s", method, target, rec.Body.String())
	switch {
	case want == http.StatusNoContent:
		require.Empty(t, rec.Body.String())
	case want < 300:
		checkAgainstOpenAPI(t, method, target, want, rec.Body.Bytes())
		if out != nil {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out))
		}
	default:
		var e struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
		require.NotEmpty(t, e.Error.Code)
		require.NotEmpty(t, e.Error.Message)
		return e.Error.Message
	}
	return ""
}

const accountsPath = BasePath + "/admin/accounts"

func TestAccountsRoundTrip(t *testing.T) {
	x := newAccountsServer(t)
	tenant, other := fx.tenant, fx.otherTenant
	start := time.Now().Add(-time.Second)

	var a accounts.Account
	x.call(t, "PUT", accountsPath+"/alice", adminKey, map[string]any{"tenantId": tenant, "plan": "Pro", "billingAnchorDay": 15, "quotaMode": "soft"}, 200, &a)
	require.Equal(t, tenant, a.Tenant)
	require.Equal(t, "alice", a.User)
	require.Equal(t, "pro", a.Plan)
	require.Equal(t, 15, a.AnchorDay)
	require.Equal(t, "soft", a.QuotaMode)
	require.True(t, a.CreatedAt.After(start) && a.CreatedAt.Equal(a.UpdatedAt), "%v %v", a.CreatedAt, a.UpdatedAt)
	require.Equal(t, []string{tenant + "/alice"}, x.takeChanges())

	// Defaults: anchor day 1, the plan's quota mode.
	var b accounts.Account
	x.call(t, "PUT", accountsPath+"/bob", adminKey, map[string]any{"tenantId": tenant, "plan": "free"}, 200, &b)
	require.Equal(t, accounts.Account{Tenant: tenant, User: "bob", Plan: "free", AnchorDay: 1, CreatedAt: b.CreatedAt, UpdatedAt: b.CreatedAt}, b)
	x.call(t, "PUT", accountsPath+"/carol", adminKey, map[string]any{"tenantId": tenant, "plan": "starter", "quotaMode": "hard"}, 200, nil)
	x.call(t, "PUT", accountsPath+"/alice", adminKey, map[string]any{"tenantId": other, "plan": "enterprise"}, 200, nil)
	require.Equal(t, []string{tenant + "/bob", tenant + "/carol", other + "/alice"}, x.takeChanges())

	var got accounts.Account
	x.call(t, "GET", accountsPath+"/alice?tenantId="+tenant, adminKey, nil, 200, &got)
	requireSameAccount(t, a, got)
	got = accounts.Account{}
	x.call(t, "GET", accountsPath+"/alice", fx.tenantAdminKey, nil, 200, &got)
	requireSameAccount(t, a, got)
	x.call(t, "GET", accountsPath+"/alice?tenantId="+other, adminKey, nil, 200, &got)
	require.Equal(t, "enterprise", got.Plan)

	list := func(key, query string) []string {
		t.Helper()
		var l AccountList
		x.call(t, "GET", accountsPath+query, key, nil, 200, &l)
		var ids []string
		for _, a := range l.Accounts {
			ids = append(ids, a.Tenant+"/"+a.User+":"+a.Plan)
		}
		return ids
	}
	mine := []string{tenant + "/alice:pro", tenant + "/bob:free", tenant + "/carol:starter"}
	require.Equal(t, mine, list(fx.tenantAdminKey, ""))
	require.Equal(t, mine, list(fx.tenantAdminKey, "?tenantId="+tenant))
	require.Equal(t, mine, list(adminKey, "?tenantId="+tenant))
	require.Equal(t, append(slices.Clone(mine), other+"/alice:enterprise"), list(adminKey, ""))
	require.Equal(t, []string{other + "/alice:enterprise"}, list(adminKey, "?tenantId="+other))
	require.Equal(t, []string{tenant + "/bob:free"}, list(fx.tenantAdminKey, "?plan=free"))
	require.Empty(t, list(fx.tenantAdminKey, "?plan=enterprise"))
	require.Equal(t, []string{other + "/alice:enterprise"}, list(adminKey, "?plan=enterprise"))

	// An update replaces the account and keeps its creation time.
	var upd accounts.Account
	x.call(t, "PUT", accountsPath+"/alice", adminKey, map[string]any{"tenantId": tenant, "plan": "starter", "billingAnchorDay": 31}, 200, &upd)
	require.Equal(t, "starter", upd.Plan)
	require.Equal(t, 31, upd.AnchorDay)
	require.Equal(t, "", upd.QuotaMode)
	require.True(t, upd.CreatedAt.Equal(a.CreatedAt), "%v %v", upd.CreatedAt, a.CreatedAt)
	require.False(t, upd.UpdatedAt.Before(a.UpdatedAt))
	x.call(t, "GET", accountsPath+"/alice", fx.tenantAdminKey, nil, 200, &got)
	requireSameAccount(t, upd, got)
	x.takeChanges()

	x.call(t, "DELETE", accountsPath+"/alice?tenantId="+tenant, adminKey, nil, 204, nil)
	require.Equal(t, []string{tenant + "/alice"}, x.takeChanges())
	msg := x.call(t, "GET", accountsPath+"/alice", fx.tenantAdminKey, nil, 404, nil)
	require.Contains(t, msg, "alice")
	x.call(t, "DELETE", accountsPath+"/alice?tenantId="+tenant, adminKey, nil, 404, nil)
	x.call(t, "DELETE", accountsPath+"/nobody?tenantId="+other, adminKey, nil, 404, nil)
	require.Empty(t, x.takeChanges(), "nothing changed")
	// The other tenant's alice is untouched.
	x.call(t, "GET", accountsPath+"/alice?tenantId="+other, adminKey, nil, 200, &got)
	require.Equal(t, "enterprise", got.Plan)
	x.call(t, "DELETE", accountsPath+"/alice?tenantId="+other, adminKey, nil, 204, nil)
	require.Equal(t, []string{other + "/alice"}, x.takeChanges())
	require.Equal(t, []string{tenant + "/bob:free", tenant + "/carol:starter"}, list(adminKey, ""))

	// Escaped user ids in the path are the same account.
	x.call(t, "PUT", accountsPath+"/dave%40example.com", adminKey, map[string]any{"tenantId": tenant, "plan": "pro"}, 200, &got)
	require.Equal(t, "dave@example.com", got.User)
	x.call(t, "GET", accountsPath+"/dave@example.com", fx.tenantAdminKey, nil, 200, &got)
	require.Equal(t, "dave@example.com", got.User)
}

func TestAccountsAccess(t *testing.T) {
	x := newAccountsServer(t)
	tenant, other := fx.tenant, fx.otherTenant
	x.call(t, "PUT", accountsPath+"/erin", adminKey, map[string]any{"tenantId": other, "plan": "pro"}, 200, nil)
	x.call(t, "PUT", accountsPath+"/erin", adminKey, map[string]any{"tenantId": tenant, "plan": "free"}, 200, nil)
	x.takeChanges()

	// A tenant admin cannot reach another tenant.
	msg := x.call(t, "GET", accountsPath+"/erin?tenantId="+other, fx.tenantAdminKey, nil, 403, nil)
	require.Contains(t, msg, tenant)
	x.call(t, "PUT", accountsPath+"/erin", fx.tenantAdminKey, map[string]any{"tenantId": other, "plan": "free"}, 403, nil)
	x.call(t, "DELETE", accountsPath+"/erin?tenantId="+other, fx.tenantAdminKey, nil, 403, nil)
	x.call(t, "GET", accountsPath+"?tenantId="+other, fx.tenantAdminKey, nil, 403, nil)
	x.call(t, "GET", accountsPath+"?tenantId=*", fx.tenantAdminKey, nil, 403, nil)
	var l AccountList
	x.call(t, "GET", accountsPath, fx.tenantAdminKey, nil, 200, &l)
	require.Len(t, l.Accounts, 1)
	require.Equal(t, tenant, l.Accounts[0].Tenant)

	// A user key reaches none of the routes, its own account included.
	for _, key := range []string{fx.userKey, fx.foreignKey} {
		x.call(t, "PUT", accountsPath+"/"+fx.user, key, map[string]any{"plan": "enterprise"}, 403, nil)
		x.call(t, "GET", accountsPath+"/"+fx.user, key, nil, 403, nil)
		x.call(t, "GET", accountsPath, key, nil, 403, nil)
		x.call(t, "DELETE", accountsPath+"/erin", key, nil, 403, nil)
	}
	for _, key := range []string{"", "am_wrong"} {
		x.call(t, "GET", accountsPath, key, nil, 401, nil)
		x.call(t, "PUT", accountsPath+"/erin", key, map[string]any{"plan": "pro"}, 401, nil)
	}

	// A global admin names the tenant of one account.
	msg = x.call(t, "PUT", accountsPath+"/erin", adminKey, map[string]any{"plan": "pro"}, 400, nil)
	require.Contains(t, msg, "tenantId")
	x.call(t, "PUT", accountsPath+"/erin", adminKey, map[string]any{"tenantId": "*", "plan": "pro"}, 400, nil)
	x.call(t, "GET", accountsPath+"/erin", adminKey, nil, 400, nil)
	x.call(t, "DELETE", accountsPath+"/erin", adminKey, nil, 400, nil)

	require.Empty(t, x.takeChanges())
	var got accounts.Account
	x.call(t, "GET", accountsPath+"/erin?tenantId="+other, adminKey, nil, 200, &got)
	require.Equal(t, "pro", got.Plan)
	x.call(t, "GET", accountsPath+"/erin?tenantId="+tenant, adminKey, nil, 200, &got)
	require.Equal(t, "free", got.Plan)
}

func TestAccountsBadRequests(t *testing.T) {
	x := newAccountsServer(t)
	for _, c := range []struct {
		name, target, body, field string
	}{
		{"unknown plan", "/u1", `{"plan":"gold"}`, "plan"},
		{"no plan", "/u1", `{"billingAnchorDay":3}`, "plan"},
		{"anchor past 31", "/u1", `{"plan":"pro","billingAnchorDay":32}`, "billingAnchorDay"},
		{"negative anchor", "/u1", `{"plan":"pro","billingAnchorDay":-1}`, "billingAnchorDay"},
		{"anchor as text", "/u1", `{"plan":"pro","billingAnchorDay":"3"}`, "billingAnchorDay"},
		{"fractional anchor", "/u1", `{"plan":"pro","billingAnchorDay":1.5}`, "billingAnchorDay"},
		{"quota mode", "/u1", `{"plan":"pro","quotaMode":"off"}`, "quotaMode"},
		{"quota mode case", "/u1", `{"plan":"pro","quotaMode":"HARD"}`, "quotaMode"},
		{"unknown field", "/u1", `{"plan":"pro","anchorDay":3}`, "anchorDay"},
		{"user id field", "/u1", `{"plan":"pro","userId":"u2"}`, "userId"},
		{"bad user id", "/u%01x", `{"plan":"pro"}`, "userId"},
		{"long user id", "/" + strings.Repeat("u", 129), `{"plan":"pro"}`, "userId"},
		{"bad tenant", "/u1", `{"plan":"pro","tenantId":"a\u0001b"}`, "tenantId"},
		{"not JSON", "/u1", `plan=pro`, "JSON"},
		{"array", "/u1", `[{"plan":"pro"}]`, "object"},
		{"trailing data", "/u1", `{"plan":"pro"} {}`, "after"},
		{"empty body", "/u1", ``, "empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := c.body
			if strings.HasPrefix(body, "{") && !strings.Contains(body, "tenantId") {
				body = `{"tenantId":"t1",` + body[1:] // the global admin names the tenant
			}
			msg := x.call(t, "PUT", accountsPath+c.target, adminKey, body, 400, nil)
			require.Contains(t, msg, c.field)
		})
	}
	msg := x.call(t, "PUT", accountsPath+"/u1", adminKey, `{"tenantId":"t1","plan":"gold"}`, 400, nil)
	require.Contains(t, msg, "free, starter, pro, enterprise", "the error names the plans")
	msg = x.call(t, "PUT", accountsPath+"/u1", adminKey, `{"tenantId":"t1","plan":"gold","billingAnchorDay":40,"quotaMode":"x"}`, 400, nil)
	for _, field := range []string{"plan", "billingAnchorDay", "quotaMode"} {
		require.Contains(t, msg, field, "every problem is named")
	}
	x.call(t, "GET", accountsPath+"/u%01x", fx.tenantAdminKey, nil, 400, nil)
	x.call(t, "DELETE", accountsPath+"/u%01x?tenantId=t1", adminKey, nil, 400, nil)
	x.call(t, "GET", accountsPath+"?tenantId=a&tenantId=b", adminKey, nil, 400, nil)
	x.call(t, "GET", accountsPath+"?tenantId=a%01b", adminKey, nil, 400, nil)
	x.call(t, "GET", accountsPath+"/u1?tenantId=a%01b", adminKey, nil, 400, nil)

	req := newRequest("PUT", accountsPath+"/u1", strings.NewReader(`{"plan":"pro"}`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("Authorization", "Bearer "+adminKey)
	rec := httptest.NewRecorder()
	x.srv.Echo().ServeHTTP(rec, req)
	require.Equal(t, http.StatusUnsupportedMediaType, rec.Code)

	require.Empty(t, x.takeChanges(), "nothing was written")
	var l AccountList
	x.call(t, "GET", accountsPath, adminKey, nil, 200, &l)
	require.Empty(t, l.Accounts)
}

// The routes MountAccounts registers are in the OpenAPI document, with
// their path parameters.
func TestAccountsOpenAPI(t *testing.T) {
	x := newAccountsServer(t)
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	doc := OpenAPI()
	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(raw, &parsed))
	paths := parsed["paths"].(map[string]any)
	var routes []string
	for _, r := range x.srv.Echo().Routes() {
		if !strings.HasPrefix(r.Path, accountsPath) {
			continue
		}
		path := param.ReplaceAllString(strings.TrimPrefix(r.Path, BasePath), "{$1}")
		routes = append(routes, r.Method+" "+path)
		item, ok := paths[path].(map[string]any)
		require.True(t, ok, "%s is not documented", path)
		op, ok := item[strings.ToLower(r.Method)].(map[string]any)
		require.True(t, ok, "%s %s is not documented", r.Method, path)
		ps, _ := op["parameters"].([]any)
		for _, name := range param.FindAllStringSubmatch(r.Path, -1) {
			require.True(t, slices.ContainsFunc(ps, func(p any) bool {
				m := p.(map[string]any)
				return m["name"] == name[1] && m["in"] == "path" && m["required"] == true
			}), "%s %s: parameter %s", r.Method, path, name[1])
		}
	}
	sort.Strings(routes)
	require.Equal(t, []string{
		"DELETE /admin/accounts/{userId}", "GET /admin/accounts", "GET /admin/accounts/{userId}", "PUT /admin/accounts/{userId}",
	}, routes)
	put := paths["/admin/accounts/{userId}"].(map[string]any)["put"].(map[string]any)
	require.Contains(t, put, "requestBody")
	require.Contains(t, put["responses"], "200")
	del := paths["/admin/accounts/{userId}"].(map[string]any)["delete"].(map[string]any)
	require.Contains(t, del["responses"], "204")
}

func requireSameAccount(t *testing.T, want, got accounts.Account) {
	t.Helper()
	require.True(t, want.CreatedAt.Equal(got.CreatedAt), "createdAt: want %v, got %v", want.CreatedAt, got.CreatedAt)
	require.True(t, want.UpdatedAt.Equal(got.UpdatedAt), "updatedAt: want %v, got %v", want.UpdatedAt, got.UpdatedAt)
	want.CreatedAt, want.UpdatedAt, got.CreatedAt, got.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	require.Equal(t, want, got)
}

// Plans are changed by global admins only: a tenant admin putting its own
// users on a larger plan would lift its own quota. Tenant admins read
// their tenant's accounts; user keys reach none of the routes. The
// OpenAPI document says the same of each route.
func TestAccountsRoles(t *testing.T) {
	x := newAccountsServer(t)
	tenant := fx.tenant
	x.call(t, "PUT", accountsPath+"/frank?tenantId="+tenant, adminKey, map[string]any{"tenantId": tenant, "plan": "free"}, 200, nil)
	x.takeChanges()
	type role struct{ name, key string }
	user, tenantAdmin, global := role{"user key", fx.userKey}, role{"tenant admin", fx.tenantAdminKey}, role{"global admin", adminKey}
	for _, r := range []struct {
		method, path, target string
		body                 map[string]any
		allowed              []role // the others get a 403
		status               int    // of an allowed call
	}{
		{"PUT", "/admin/accounts/{userId}", accountsPath + "/frank", map[string]any{"plan": "enterprise"}, []role{global}, 200},
		{"DELETE", "/admin/accounts/{userId}", accountsPath + "/frank", nil, []role{global}, 204},
		{"GET", "/admin/accounts/{userId}", accountsPath + "/frank", nil, []role{tenantAdmin, global}, 200},
		{"GET", "/admin/accounts", accountsPath, nil, []role{tenantAdmin, global}, 200},
	} {
		var allowed []string
		for _, ro := range []role{user, tenantAdmin, global} {
			target, body := r.target, r.body
			if ro == global {
				if body != nil {
					body = map[string]any{"tenantId": tenant, "plan": body["plan"]}
				} else {
					target += "?tenantId=" + tenant
				}
			}
			if !slices.Contains(r.allowed, ro) {
				msg := x.call(t, r.method, target, ro.key, body, 403, nil)
				if ro == tenantAdmin {
					require.Contains(t, msg, "global admin", "%s %s", r.method, r.path)
				} else {
					require.Contains(t, msg, "admin key", "%s %s", r.method, r.path)
				}
				continue
			}
			allowed = append(allowed, ro.name)
			x.call(t, r.method, target, ro.key, body, r.status, nil)
			if r.method == "DELETE" { // again, for the next role
				x.call(t, "PUT", accountsPath+"/frank", adminKey, map[string]any{"tenantId": tenant, "plan": "free"}, 200, nil)
			}
		}
		require.Equal(t, len(r.allowed), len(allowed))

		// The document names who may call the route.
		op := openAPIJSON(t)["paths"].(map[string]any)[r.path].(map[string]any)[strings.ToLower(r.method)].(map[string]any)
		roles, _ := op["x-roles"].([]any)
		var documented []string
		for _, x := range roles {
			documented = append(documented, x.(string))
		}
		require.Equal(t, allowed, documented, "%s %s", r.method, r.path)
		require.Contains(t, op["description"], strings.Join(allowed, " and "), "%s %s", r.method, r.path)
	}
	// Refused writes changed nothing.
	var got accounts.Account
	x.call(t, "GET", accountsPath+"/frank?tenantId="+tenant, adminKey, nil, 200, &got)
	require.Equal(t, "free", got.Plan)
}
