package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/monitor"
)

// raw sends body as it is, with contentType ("" sends none).
func raw(t *testing.T, srv *Server, method, target, key, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := newRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	srv.Echo().ServeHTTP(rec, req)
	return rec
}

// One rule for JSON bodies, on every route that takes one: no
// Content-Type, application/json (or +json) and what curl -d sends
// (application/x-www-form-urlencoded) are read as JSON; anything else
// is a 415. The body must be a JSON object.
func TestJSONBodiesFollowOneRule(t *testing.T) {
	series := `{"startDate":"2026-10-23","endDate":"2026-10-24","granularity":"day","metrics":["requests"]}`
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "application/merge-patch+json"} {
		rec := raw(t, fx.srv, "POST", BasePath+"/time-series", fx.userKey, ct, series)
		require.Equal(t, http.StatusOK, rec.Code, "Content-Type %q: %s", ct, rec.Body)
	}
	for _, ct := range []string{"text/plain", "multipart/form-data; boundary=x", "text/csv"} {
		rec := raw(t, fx.srv, "POST", BasePath+"/time-series", fx.userKey, ct, series)
		require.Equal(t, http.StatusUnsupportedMediaType, rec.Code, "Content-Type %q", ct)
		require.Contains(t, rec.Body.String(), "application/json")
	}
	for _, body := range []string{"null", "[]", `"x"`, "1"} {
		rec := raw(t, fx.srv, "POST", BasePath+"/time-series", fx.userKey, "application/json", body)
		require.Equal(t, http.StatusBadRequest, rec.Code, "body %s: %s", body, rec.Body)
	}
	// POST /events, which takes an array too, follows the same rule.
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountEvents(&sink{}, ingest.Policy{}, KeyAuth(fx.keys, true))
	record := `{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1}`
	require.Equal(t, http.StatusAccepted, raw(t, srv, "POST", BasePath+"/events", adminKey, "application/x-www-form-urlencoded", record).Code)
	require.Equal(t, http.StatusAccepted, raw(t, srv, "POST", BasePath+"/events", adminKey, "", record).Code)
	require.Equal(t, http.StatusUnsupportedMediaType, raw(t, srv, "POST", BasePath+"/events", adminKey, "text/csv", record).Code)
}

// A POST's query string narrows or is refused, never ignored.
func TestPostQueryStringNarrowsOrIsRefused(t *testing.T) {
	body := map[string]any{"startDate": "2026-10-23", "endDate": "2026-10-27", "granularity": "day", "metrics": []string{"requests"}}
	total := func(rec *httptest.ResponseRecorder) float64 {
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var s SeriesJSON
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
		sum := 0.0
		for _, item := range s.Series {
			for _, p := range item.Points {
				sum += p["requests"].(float64)
			}
		}
		return sum
	}
	// Expected from the records: tenant-2's requests on those days.
	want := 0.0
	for _, r := range where(func(r *ingest.Record) bool { return r.TenantID == fx.otherTenant }) {
		if in(r, fx.start, fx.start.Add(5*24*3600e9)) {
			want++
		}
	}
	require.Positive(t, want)
	all := total(call(t, "POST", BasePath+"/time-series", adminKey, body))
	narrowed := total(call(t, "POST", BasePath+"/time-series?tenantId="+fx.otherTenant, adminKey, body))
	require.Equal(t, want, narrowed, "the query string's tenantId narrows the answer")
	require.Greater(t, all, narrowed)
	inBody := map[string]any{"tenantId": fx.otherTenant}
	for k, v := range body {
		inBody[k] = v
	}
	require.Equal(t, narrowed, total(call(t, "POST", BasePath+"/time-series", adminKey, inBody)))
	require.Equal(t, narrowed, total(call(t, "POST", BasePath+"/time-series?tenantId="+fx.otherTenant, adminKey, inBody)), "both, agreeing")

	// Exports too: the same bytes as with the tenant in the body.
	exp := map[string]any{"format": "csv", "startDate": "2026-10-23", "endDate": "2026-10-24", "fields": []string{"tenantId", "userId", "endpoint"}}
	q := call(t, "POST", BasePath+"/export?tenantId="+fx.otherTenant, adminKey, exp)
	require.Equal(t, http.StatusOK, q.Code, q.Body.String())
	exp["tenantId"] = fx.otherTenant
	b := call(t, "POST", BasePath+"/export", adminKey, exp)
	require.Equal(t, http.StatusOK, b.Code)
	// Rows of one user come in the engine's order: compare them sorted.
	lines := func(s string) []string { l := strings.Split(s, "\n"); slices.Sort(l); return l }
	require.True(t, slices.Equal(lines(b.Body.String()), lines(q.Body.String())), "the same rows with the tenant in the query string as in the body")
	require.Greater(t, strings.Count(q.Body.String(), "\n"), 10)
	require.NotContains(t, q.Body.String(), fx.tenant+",")

	for _, c := range []struct {
		name, target, key string
		body              any
		want              int
	}{
		{"disagreeing", BasePath + "/time-series?tenantId=" + fx.tenant, adminKey, inBody, 400},
		{"empty", BasePath + "/time-series?tenantId=", adminKey, body, 400},
		{"twice", BasePath + "/time-series?tenantId=a&tenantId=b", adminKey, body, 400},
		{"unknown parameter", BasePath + "/time-series?granularity=hour", adminKey, body, 400},
		{"another tenant for a user key", BasePath + "/time-series?tenantId=" + fx.otherTenant, fx.userKey, body, 403},
		{"another user for a user key", BasePath + "/export?userId=" + fx.otherUser, fx.userKey, exp, 403},
		{"a route without query parameters", BasePath + "/admin/keys?tenantId=" + fx.tenant, adminKey, map[string]any{"tenantId": fx.tenant, "userId": "q", "role": "user"}, 400},
		{"a decision", BasePath + "/limits/check?dryRun=true", adminKey, map[string]any{"tenantId": fx.tenant, "userId": "q", "endpoint": "/x", "method": "GET"}, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := call(t, "POST", c.target, c.key, c.body)
			require.Equal(t, c.want, rec.Code, rec.Body.String())
			var e struct {
				Error struct{ Code, Message string }
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e))
			require.NotEmpty(t, e.Error.Message)
		})
	}
	// The decision API takes its scope from the query string as well.
	rec := call(t, "POST", BasePath+"/limits/check?tenantId="+fx.tenant+"&userId=query-scope", adminKey, map[string]any{"endpoint": "/x", "method": "GET", "dryRun": true})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), `"userId":"query-scope"`)
}

// What the document forbids is refused, and what it allows is accepted.
func TestIncidentRoutesMatchTheDocument(t *testing.T) {
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountIncidents(&IncidentsAPI{Monitor: monitor.New(monitor.Config{})}, KeyAuth(fx.keys, true))
	get := func(target string) int {
		req := newRequest("GET", target, nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		return rec.Code
	}
	require.Equal(t, http.StatusBadRequest, get(BasePath+"/admin/incidents?status="), "an empty status is not a filter")
	require.Equal(t, http.StatusOK, get(BasePath+"/admin/incidents"))
	require.Equal(t, http.StatusOK, get(BasePath+"/admin/incidents?status=open"))
	// Resolving takes no body as well as one: the document says so.
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, OpenAPI())), &doc))
	op := doc["paths"].(map[string]any)["/admin/incidents/{id}/resolve"].(map[string]any)["post"].(map[string]any)
	require.Equal(t, false, op["requestBody"].(map[string]any)["required"])
	op = doc["paths"].(map[string]any)["/admin/incidents/{id}/updates"].(map[string]any)["post"].(map[string]any)
	require.Equal(t, true, op["requestBody"].(map[string]any)["required"])
}

// A bucket without requests has counts of 0 and no rates or latencies
// (null), in the series of /time-series, /stats and endpoint analytics.
func TestEmptyBucketsHaveNoLatency(t *testing.T) {
	// 1 October 2026: before every fixture record.
	body := map[string]any{"startDate": "2026-10-01", "endDate": "2026-10-01", "granularity": "hour",
		"metrics": []string{"requests", "errors", "errorRate", "clientErrorRate", "averageResponseTime", "p95ResponseTime", "maxResponseTime", "responseBytes"}}
	rec := call(t, "POST", BasePath+"/time-series", fx.userKey, body)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	checkAgainstOpenAPI(t, "POST", BasePath+"/time-series", 200, rec.Body.Bytes())
	var s struct {
		Series []struct{ Points []map[string]any } `json:"series"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
	require.Len(t, s.Series, 1)
	require.Len(t, s.Series[0].Points, 24)
	for _, p := range s.Series[0].Points {
		for _, m := range []string{"requests", "errors", "responseBytes"} {
			require.Equal(t, 0.0, p[m], "%s at %v", m, p["time"])
		}
		for _, m := range []string{"errorRate", "clientErrorRate", "averageResponseTime", "p95ResponseTime", "maxResponseTime"} {
			v, present := p[m]
			require.True(t, present, "%s at %v", m, p["time"])
			require.Nil(t, v, "%s at %v: nothing was measured", m, p["time"])
		}
	}
}

// The document states the rules the decoder enforces on bodies.
func TestOpenAPIStatesBodyRules(t *testing.T) {
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, OpenAPI())), &doc))
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	require.NotContains(t, schemas, "", "every component schema has a name")
	for _, body := range []string{"SeriesBody", "ExportBody", "KeyBody", "AccountBody", "CheckBody", "IncidentUpdateBody", "FiltersJSON"} {
		s := schemas[body].(map[string]any)
		require.Equal(t, false, s["additionalProperties"], "%s: unknown fields are refused", body)
	}
	check := schemas["CheckBody"].(map[string]any)
	require.ElementsMatch(t, []any{"endpoint", "method"}, check["required"])
	cost := check["properties"].(map[string]any)["cost"].(map[string]any)
	require.EqualValues(t, 1, cost["minimum"])
	require.EqualValues(t, MaxCost, cost["maximum"])
	// And the server holds to them: an unknown field, a missing method.
	callJSON(t, "POST", BasePath+"/limits/check", adminKey, map[string]any{"tenantId": fx.tenant, "userId": "u", "endpoint": "/x"}, 400, nil)
}

// Every bounded query parameter the document states is held to by the
// server: its bounds pass, one past them is a 400.
func TestDocumentedBoundsAreEnforced(t *testing.T) {
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, OpenAPI())), &doc))
	checked := 0
	for path, item := range doc["paths"].(map[string]any) {
		op, ok := item.(map[string]any)["get"].(map[string]any)
		if !ok || strings.Contains(path, "{") {
			continue
		}
		ps, _ := op["parameters"].([]any)
		for _, p := range ps {
			p := p.(map[string]any)
			sch := p["schema"].(map[string]any)
			lo, hasLo := sch["minimum"].(float64)
			hi, hasHi := sch["maximum"].(float64)
			if !hasLo || !hasHi {
				continue
			}
			target := func(v float64) string {
				return BasePath + path + "?startDate=2026-10-23&endDate=2026-10-24&" + p["name"].(string) + "=" + strconv.FormatFloat(v, 'f', -1, 64)
			}
			key := adminKey // a user's own usage for the routes a user key reads
			if roles, _ := op["x-roles"].([]any); len(roles) > 0 && roles[0] == "user key" {
				key = fx.userKey
			}
			if call(t, "GET", target(lo), key, nil).Code == http.StatusNotFound {
				continue // a route this fixture does not mount
			}
			for _, v := range []float64{lo, hi} {
				rec := call(t, "GET", target(v), key, nil)
				require.Equal(t, http.StatusOK, rec.Code, "%s: %s", target(v), rec.Body.String())
			}
			for _, v := range []float64{lo - 1, hi + 1} {
				rec := call(t, "GET", target(v), key, nil)
				require.Equal(t, http.StatusBadRequest, rec.Code, "%s: %s", target(v), rec.Body.String())
			}
			checked++
		}
	}
	require.GreaterOrEqual(t, checked, 4, "stats, costs, top-users and dimensions")
}
