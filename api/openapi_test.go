package api

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/monitor"
	"github.com/apimeter/apimeter/query"
)

// The document lists exactly the routes the server registers.
func TestOpenAPIMatchesTheRoutes(t *testing.T) {
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountAnalytics(&Analytics{Query: fx.an.Query, Keys: fx.keys})
	srv.MountEvents(&sink{}, ingest.Policy{}, KeyAuth(fx.keys, true))
	srv.MountDecisions(&DecisionsAPI{Limits: fx.limits, Keys: fx.keys})
	srv.MountAccounts(&AccountsAPI{Store: accounts.New(fx.db)}, KeyAuth(fx.keys, true))
	srv.MountIncidents(&IncidentsAPI{Monitor: monitor.New(monitor.Config{})}, KeyAuth(fx.keys, true))
	srv.MountJobs(&JobsAPI{}, KeyAuth(fx.keys, true))
	param := regexp.MustCompile(`:([A-Za-z]+)`)
	registered := map[string]bool{}
	for _, r := range srv.Echo().Routes() {
		if !strings.HasPrefix(r.Path, BasePath+"/") {
			continue
		}
		registered[r.Method+" "+param.ReplaceAllString(strings.TrimPrefix(r.Path, BasePath), "{$1}")] = true
	}
	documented := map[string]bool{}
	doc := OpenAPI()
	raw, err := json.Marshal(doc)
	require.NoError(t, err)
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(raw, &parsed))
	for path, item := range parsed["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = true
			// Path parameters are declared.
			for _, name := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				ps, _ := op.(map[string]any)["parameters"].([]any)
				require.True(t, slices.ContainsFunc(ps, func(p any) bool {
					m := p.(map[string]any)
					return m["name"] == name[1] && m["in"] == "path" && m["required"] == true
				}), "%s %s: parameter %s", method, path, name[1])
			}
		}
	}
	require.Equal(t, registered, documented)
	require.Equal(t, "3.0.3", parsed["openapi"])

	// Every $ref resolves.
	refs := regexp.MustCompile(`"\$ref":"#/components/schemas/([^"]+)"`).FindAllStringSubmatch(string(raw), -1)
	require.NotEmpty(t, refs)
	schemas := parsed["components"].(map[string]any)["schemas"].(map[string]any)
	for _, r := range refs {
		require.Contains(t, schemas, r[1])
	}

	// The one route the other tests do not read: its shape, for a global
	// admin (with dead letters and storage) and a tenant admin (without).
	var sm SystemMetrics
	callJSON(t, "GET", BasePath+"/system-metrics", adminKey, nil, 200, &sm)
	require.NotNil(t, sm.DeadLetters)
	require.True(t, slices.ContainsFunc(sm.Storage, func(s query.Storage) bool { return s.Table == "usage_events" }))
	sm = SystemMetrics{}
	callJSON(t, "GET", BasePath+"/system-metrics", fx.tenantAdminKey, nil, 200, &sm)
	require.Nil(t, sm.DeadLetters)
	require.Nil(t, sm.Storage)
	require.Equal(t, fx.tenant, sm.Scope.Tenant)
}

// Random and broken requests never get a 5xx or crash the server.
func TestBrokenRequestsGet4xx(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 1500 {
		method, target, body, key := randomRequest(rng)
		checkNo5xx(t, fmt.Sprint(i), method, target, body, key)
	}
}

// FuzzRoutes drives the router with arbitrary paths, queries and bodies.
func FuzzRoutes(f *testing.F) {
	f.Add(uint8(0), "/stats", "startDate=2026-10-24&timezone=Europe/Berlin", []byte(nil), uint8(0))
	f.Add(uint8(1), "/time-series", "", []byte(`{"granularity":"hour","metrics":["p99ResponseTime"],"groupBy":"endpoint"}`), uint8(1))
	f.Add(uint8(1), "/export", "", []byte(`{"format":"arrow","fields":"id","filters":{"statusCode":[500]}}`), uint8(2))
	f.Add(uint8(0), "/endpoints/%2Fa%3Fb/analytics", "granularity=minute", []byte(nil), uint8(0))
	f.Add(uint8(2), "/admin/keys/x", "", []byte(nil), uint8(2))
	f.Fuzz(func(t *testing.T, m uint8, path, rawQuery string, body []byte, k uint8) {
		method := []string{"GET", "POST", "DELETE", "PUT"}[m%4]
		checkNo5xx(t, "", method, BasePath+path+"?"+rawQuery, string(body), fuzzKeys()[int(k)%len(fuzzKeys())])
	})
}

func fuzzKeys() []string {
	return []string{"", fx.userKey, fx.tenantAdminKey, adminKey, "am_wrong"}
}

func checkNo5xx(t *testing.T, name, method, target, body, key string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := newRequest(method, target, rd)
	if body != "" && len(body)%3 != 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	require.NotPanics(t, func() { fx.srv.Echo().ServeHTTP(rec, req) }, "%s %s", method, target)
	require.Less(t, rec.Code, 500, "%s: %s %s %s → %s", name, method, target, body, rec.Body.String())
	if rec.Code >= 400 {
		var e map[string]map[string]string
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), "%s %s: %s", method, target, rec.Body.String())
		require.NotEmpty(t, e["error"]["code"])
	}
}

// randomRequest mixes valid and broken pieces of every route.
func randomRequest(rng *rand.Rand) (method, target, body, key string) {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	dates := []string{"", "2026-10-24", "2026-10-26", "2026-10-24T10:30:00Z", "2026-10-24T10:30:00+05:30", "2026-02-30",
		"yesterday", "0001-01-01T00:00:00Z", "9999-12-31", "2026-10-25T02:30:00+02:00", "1761177600000", "%ZZ", "2026-13-01"}
	zones := []string{"", "UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns", "Mars/Olympus", "../../etc/passwd", "Local", "Etc/GMT+12"}
	grains := []string{"", "minute", "hour", "day", "week", "month", "year", "HOUR"}
	metrics := []string{"requests", "p99ResponseTime", "uniqueUsers", "errorRate", "bogus", ""}
	dims := []string{"endpoint", "method", "statusCode", "statusClass", "userId", "tenantId", "nope"}
	users := []string{fx.user, fx.otherUser, "", "user with space", strings.Repeat("u", 300), "ü"}
	q := func() string {
		var parts []string
		for _, p := range []struct{ name, v string }{
			{"startDate", pick(dates...)}, {"endDate", pick(dates...)}, {"timezone", pick(zones...)},
			{"groupBy", pick(grains...)}, {"granularity", pick(grains...)}, {"limit", pick("", "0", "5", "1001", "-1", "x", "99999999999999999999")},
			{"userId", pick(users...)}, {"tenantId", pick("", fx.tenant, fx.otherTenant, "*")},
			{"statusCode", pick("", "200", "5xx", "600", "2,4")}, {"statusClass", pick("", "2", "9", "2xx")},
			{"sortBy", pick("", "requests", "errors", "bytes", "responseTime", "random")}, {"endpoint", pick("", "/api/users", "%")},
		} {
			if p.v != "" && rng.IntN(3) == 0 {
				parts = append(parts, p.name+"="+p.v)
			}
		}
		return strings.Join(parts, "&")
	}
	jsonBody := func(format bool) string {
		m := map[string]any{}
		set := func(k string, v any) {
			if rng.IntN(3) == 0 {
				m[k] = v
			}
		}
		set("startDate", pick(dates...))
		set("endDate", pick(dates...))
		set("timezone", pick(zones...))
		set("granularity", pick(grains...))
		set("metrics", []string{pick(metrics...), pick(metrics...)})
		set("groupBy", pick(dims...))
		set("groupBy", []any{pick(dims...), 3})
		set("filters", map[string]any{"statusCode": []any{rng.IntN(1000)}, "userId": pick(users...)})
		set("filters", "not an object")
		set("userId", pick(users...))
		set("tenantId", pick("", fx.otherTenant, "*"))
		if format {
			set("format", pick("csv", "json", "ndjson", "arrow", "xml", ""))
			set("dataset", pick("events", "hourly", "daily", "weekly", "billing"))
			set("fields", []string{pick("id", "requests", "bucket", "x")})
		}
		set("unknown", 1)
		b, _ := json.Marshal(m)
		switch rng.IntN(10) {
		case 0:
			return string(b[:rng.IntN(len(b))]) // cut short
		case 1:
			return "[" + string(b) + "]"
		case 2:
			return string(b) + " {}"
		case 3:
			return `{"startDate": 20261024, "metrics": "requests", "filters": {"statusCode": ["200"]}}`
		}
		return string(b)
	}
	key = fuzzKeys()[rng.IntN(len(fuzzKeys()))]
	switch rng.IntN(10) {
	case 0:
		return "GET", BasePath + "/stats?" + q(), "", key
	case 1:
		return "POST", BasePath + "/time-series", jsonBody(false), key
	case 2:
		return "POST", BasePath + "/export", jsonBody(true), key
	case 3:
		ep := pick("%2Fapi%2Fusers", "%2Fapi%2Fr3%2F%3Aid", "%ZZ", "", "a%2F..%2F..", strings.Repeat("x", 2000))
		return "GET", BasePath + "/endpoints/" + ep + "/analytics?" + q(), "", key
	case 4:
		return "GET", BasePath + "/top-users?" + q(), "", key
	case 5:
		return "GET", BasePath + pick("/health", "/system-metrics", "/rate-limit", "/quota") + "?" + q(), "", key
	case 6:
		return "POST", BasePath + "/admin/keys", pick(`{"userId":"x","tenantId":"t","role":"user"}`, `{"userId":1}`, `{}`, `null`, `{"expiresAt":"x"}`), key
	case 7:
		return pick("DELETE", "PUT"), BasePath + "/admin/keys/" + pick("x", "%ZZ", ""), "", key
	case 8:
		return pick("PATCH", "GET", "POST"), BasePath + pick("/stats", "/time-series", "/nope", "/export"), "", key
	}
	return "POST", BasePath + "/time-series", strings.Repeat("[", rng.IntN(100000)), key
}

// openAPIProp is a property of a component schema of the document.
func openAPIProp(t *testing.T, schema, name string) map[string]any {
	t.Helper()
	schemas := openAPIJSON(t)["components"].(map[string]any)["schemas"].(map[string]any)
	p, _ := schemas[schema].(map[string]any)["properties"].(map[string]any)[name].(map[string]any)
	require.NotNil(t, p, "%s.%s", schema, name)
	return p
}

// openAPIOperations calls f with every operation of the document.
func openAPIOperations(t *testing.T, f func(method, path string, op map[string]any)) {
	for path, item := range openAPIJSON(t)["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			f(method, path, op.(map[string]any))
		}
	}
}

// The document states the span of dates every route accepts.
func TestOpenAPIStatesTheDateSpan(t *testing.T) {
	dated := 0
	openAPIOperations(t, func(method, path string, op map[string]any) {
		ps, _ := op["parameters"].([]any)
		for _, p := range ps {
			p := p.(map[string]any)
			switch p["name"] {
			case "startDate", "endDate":
				dated++
				require.Contains(t, p["description"], "1970-01-01 to 2105-12-31", "%s %s %s", method, path, p["name"])
			case "month":
				require.Contains(t, p["description"], "1970-01 to 2105-12", "%s %s", method, path)
			}
		}
	})
	require.GreaterOrEqual(t, dated, 8) // four routes with a range
	for _, body := range []string{"SeriesBody", "ExportBody"} {
		for _, field := range []string{"startDate", "endDate"} {
			require.Contains(t, openAPIProp(t, body, field)["description"], "1970-01-01 to 2105-12-31", "%s.%s", body, field)
		}
	}
	require.Contains(t, openAPIProp(t, "KeyBody", "expiresAt")["description"], "2105-12-31")
}

// The document says how a series names a user when tenants differ.
func TestOpenAPIStatesHowASeriesNamesUsers(t *testing.T) {
	group := openAPIProp(t, "SeriesItem", "group")["description"]
	require.Contains(t, group, "tenantId")
	require.Contains(t, group, "userId")
}

// The document says who may call each route that needs a key.
func TestOpenAPIStatesWhoMayCall(t *testing.T) {
	openAPIOperations(t, func(method, path string, op map[string]any) {
		if op["security"] != nil { // public
			return
		}
		roles, _ := op["x-roles"].([]any)
		require.NotEmpty(t, roles, "%s %s says who may call it", method, path)
		for _, r := range roles {
			require.Contains(t, []string{"user key", "service key", "tenant admin", "global admin"}, r, "%s %s", method, path)
		}
	})
}
