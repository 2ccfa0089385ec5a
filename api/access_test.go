package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/ingest"
)

// A user key reads only its own usage, a tenant admin only its tenant,
// whatever it puts in the path, the query, the body or the filters.
func TestScopesCannotBeWidened(t *testing.T) {
	other, foreign := url.QueryEscape(fx.otherUser), url.QueryEscape(fx.otherTenant)
	ts := map[string]any{"startDate": "2026-10-23", "endDate": "2026-10-27", "granularity": "day"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range ts {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	exp := func(extra map[string]any) map[string]any {
		m := with(extra)
		delete(m, "granularity")
		m["format"] = "csv"
		return m
	}
	type attempt struct {
		method, target string
		body           any
	}
	userAttempts := []attempt{
		{"GET", "/stats?userId=" + other, nil},
		{"GET", "/stats?tenantId=" + foreign, nil},
		{"GET", "/stats?userId=" + fx.user + "&userId=" + other, nil},
		{"POST", "/time-series", with(map[string]any{"userId": fx.otherUser})},
		{"POST", "/time-series", with(map[string]any{"tenantId": fx.otherTenant})},
		{"POST", "/time-series", with(map[string]any{"filters": map[string]any{"userId": []string{fx.user, fx.otherUser}}})},
		{"POST", "/time-series", with(map[string]any{"groupBy": []string{"userId"}})},
		{"POST", "/export", exp(map[string]any{"userId": fx.otherUser})},
		{"POST", "/export", exp(map[string]any{"tenantId": fx.otherTenant})},
		{"POST", "/export", exp(map[string]any{"filters": map[string]any{"userId": fx.otherUser}})},
		{"GET", "/endpoints/%2Fapi%2Fusers/analytics?userId=" + other, nil},
		{"GET", "/endpoints/%2Fapi%2Fusers/analytics?tenantId=" + foreign, nil},
		{"GET", "/rate-limit?userId=" + other, nil},
		{"GET", "/quota?tenantId=" + foreign, nil},
		{"GET", "/health?userId=" + other, nil},
		{"GET", "/top-users", nil},
		{"GET", "/system-metrics", nil},
		{"GET", "/admin/keys", nil},
		{"POST", "/admin/keys", map[string]any{"userId": fx.user, "role": "admin"}},
	}
	for _, a := range userAttempts {
		rec := call(t, a.method, BasePath+a.target, fx.userKey, a.body)
		want := http.StatusForbidden
		if strings.Contains(a.target, "userId="+fx.user+"&") {
			want = http.StatusBadRequest // a parameter given twice
		}
		require.Equal(t, want, rec.Code, "user key: %s %s: %s", a.method, a.target, rec.Body.String())
	}
	adminAttempts := []attempt{
		{"GET", "/stats?tenantId=" + foreign, nil},
		{"GET", "/top-users?tenantId=" + foreign, nil},
		{"GET", "/system-metrics?tenantId=" + foreign, nil},
		{"POST", "/time-series", with(map[string]any{"tenantId": fx.otherTenant})},
		{"POST", "/export", exp(map[string]any{"tenantId": fx.otherTenant})},
		{"GET", "/health?tenantId=" + foreign, nil},
		{"GET", "/quota?tenantId=" + foreign, nil},
		{"GET", "/admin/keys?tenantId=" + foreign, nil},
		{"POST", "/admin/keys", map[string]any{"tenantId": fx.otherTenant, "userId": "x"}},
		{"POST", "/admin/keys", map[string]any{"tenantId": "*", "userId": "x", "role": "admin"}},
	}
	for _, a := range adminAttempts {
		rec := call(t, a.method, BasePath+a.target, fx.tenantAdminKey, a.body)
		require.Equal(t, http.StatusForbidden, rec.Code, "tenant admin: %s %s: %s", a.method, a.target, rec.Body.String())
	}
	for _, target := range []string{"/stats", "/quota", "/rate-limit", "/top-users", "/system-metrics", "/admin/keys"} {
		require.Equal(t, http.StatusUnauthorized, call(t, "GET", BasePath+target, "", nil).Code, target)
		require.Equal(t, http.StatusUnauthorized, call(t, "GET", BasePath+target, "am_guess", nil).Code, target)
	}

	// What the keys may read holds only their own data.
	var ts1 SeriesJSON
	callJSON(t, "POST", BasePath+"/time-series", fx.tenantAdminKey, with(map[string]any{"groupBy": "userId"}), 200, &ts1)
	tenantUsers := map[string]bool{}
	for _, r := range where(func(r *ingest.Record) bool { return r.TenantID == fx.tenant }) {
		tenantUsers[r.UserID] = true
	}
	require.Len(t, ts1.Series, len(tenantUsers))
	var top TopUsersResponse
	callJSON(t, "GET", BasePath+"/top-users?startDate=2026-10-23&endDate=2026-10-27&limit=1000", fx.tenantAdminKey, nil, 200, &top)
	for _, u := range top.Users {
		require.Equal(t, fx.tenant, u.Tenant)
	}
	// A user key's own export holds its own rows only.
	rec := call(t, "POST", BasePath+"/export", fx.userKey, exp(map[string]any{"fields": []string{"tenantId", "userId"}}))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rows, err := csv.NewReader(rec.Body).ReadAll()
	require.NoError(t, err)
	require.Greater(t, len(rows), 1)
	for _, r := range rows[1:] {
		require.Equal(t, []string{fx.tenant, fx.user}, r)
	}
	// The foreign user sees none of tenant-1's endpoint traffic.
	var ep EndpointResponse
	callJSON(t, "GET", BasePath+"/endpoints/%2Fapi%2Fusers/analytics?startDate=2026-10-23&endDate=2026-10-27", fx.foreignKey, nil, 200, &ep)
	want := sum(where(func(r *ingest.Record) bool {
		return r.TenantID == fx.otherTenant && r.UserID == busiest(fx.recs, fx.otherTenant, 0) && r.Endpoint == "/api/users"
	}))
	require.Equal(t, want.n, ep.Totals.Requests)
}

func TestKeysThroughTheAPI(t *testing.T) {
	// The global admin issues a key of tenant-3; it works at once.
	var made CreatedKey
	callJSON(t, "POST", BasePath+"/admin/keys", adminKey, map[string]any{"tenantId": "tenant-3", "userId": "user-1", "name": "ci"}, 201, &made)
	require.True(t, strings.HasPrefix(made.Secret, "am_"))
	require.Equal(t, auth.RoleUser, made.Role)
	var st StatsResponse
	callJSON(t, "GET", BasePath+"/stats", made.Secret, nil, 200, &st)
	require.Equal(t, ScopeJSON{Tenant: "tenant-3", User: "user-1"}, st.Scope)

	// The tenant admin cannot see or revoke it, and lists its own tenant.
	var list KeyList
	callJSON(t, "GET", BasePath+"/admin/keys", fx.tenantAdminKey, nil, 200, &list)
	require.NotEmpty(t, list.Keys)
	for _, k := range list.Keys {
		require.Equal(t, fx.tenant, k.Tenant)
		for _, secret := range []string{fx.userKey, fx.otherUserKey, fx.tenantAdminKey} {
			require.NotContains(t, mustJSON(t, k), secret[len("am_")+6:], "lists never show secrets")
		}
	}
	callJSON(t, "DELETE", BasePath+"/admin/keys/"+made.ID, fx.tenantAdminKey, nil, 404, nil)
	callJSON(t, "GET", BasePath+"/admin/keys?tenantId=tenant-3", adminKey, nil, 200, &list)
	require.True(t, slices.ContainsFunc(list.Keys, func(k auth.Key) bool { return k.ID == made.ID }))

	// A tenant admin's keys land in its tenant.
	var mine CreatedKey
	callJSON(t, "POST", BasePath+"/admin/keys", fx.tenantAdminKey, map[string]any{"userId": "new-user"}, 201, &mine)
	require.Equal(t, fx.tenant, mine.Tenant)
	callJSON(t, "DELETE", BasePath+"/admin/keys/"+mine.ID, fx.tenantAdminKey, nil, 200, nil)
	callJSON(t, "GET", BasePath+"/stats", mine.Secret, nil, 401, nil)

	// Revoked by the global admin: refused from then on.
	var revoked auth.Key
	callJSON(t, "DELETE", BasePath+"/admin/keys/"+made.ID, adminKey, nil, 200, &revoked)
	require.NotNil(t, revoked.RevokedAt)
	callJSON(t, "GET", BasePath+"/stats", made.Secret, nil, 401, nil)

	for _, bad := range []map[string]any{
		{"tenantId": "tenant-3"},                                // no user
		{"tenantId": "tenant-3", "userId": "u", "role": "root"}, // no such role
		{"tenantId": "*", "userId": "u"},                        // a global key must be an admin
		{"tenantId": "a\u0001b", "userId": "u"},                 // bad name: a control character
		{"tenantId": "tenant-3", "userId": "u", "expiresAt": "2001-01-01T00:00:00Z"},
		{"tenantId": "tenant-3", "userId": "u", "expiresAt": "soon"},
		{"tenantId": "tenant-3", "userId": "u", "extra": true},
	} {
		callJSON(t, "POST", BasePath+"/admin/keys", adminKey, bad, 400, nil)
	}
	callJSON(t, "POST", BasePath+"/admin/keys", adminKey, map[string]any{"userId": "u"}, 400, nil) // global admin names the tenant
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestExportDownloads(t *testing.T) {
	start, end := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 26, 0, 0, 0, 0, time.UTC)
	mine := where(func(r *ingest.Record) bool {
		return r.TenantID == fx.tenant && r.UserID == fx.user && in(r, start, end)
	})
	ids := map[string]bool{}
	for _, r := range mine {
		ids[r.ID] = true
	}
	body := func(format string, extra ...string) map[string]any {
		m := map[string]any{"format": format, "startDate": "2026-10-24", "endDate": "2026-10-25"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	send := func(b map[string]any, gz bool) *http.Response {
		raw, _ := json.Marshal(b)
		req := newRequest("POST", BasePath+"/export", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+fx.userKey)
		if gz {
			req.Header.Set("Accept-Encoding", "br;q=1, gzip;q=0.8")
		}
		rec := httptest.NewRecorder()
		fx.srv.Echo().ServeHTTP(rec, req)
		return rec.Result()
	}

	// CSV, gzipped.
	res := send(body("csv"), true)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	require.Equal(t, "text/csv; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, `attachment; filename="apimeter-events-20261024T0000-20261026T0000.csv"`, res.Header.Get("Content-Disposition"))
	require.Equal(t, len(mine), atoi(t, res.Header.Get("X-Export-Rows")))
	zr, err := gzip.NewReader(res.Body)
	require.NoError(t, err)
	rows, err := csv.NewReader(zr).ReadAll()
	require.NoError(t, err)
	require.Equal(t, "id", rows[0][0])
	require.Len(t, rows, len(mine)+1)
	for _, r := range rows[1:] {
		require.True(t, ids[r[0]], r[0])
	}

	// Arrow: the IPC reader sees the schema and every row.
	res = send(body("arrow", "dataset", "events"), false)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, res.Header.Get("Content-Encoding"))
	require.Equal(t, "application/vnd.apache.arrow.stream", res.Header.Get("Content-Type"))
	ar, err := ipc.NewReader(res.Body)
	require.NoError(t, err)
	var names []string
	for _, f := range ar.Schema().Fields() {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"id", "timestamp", "tenantId", "userId", "apiKeyId", "endpoint", "method", "statusCode",
		"responseTimeMs", "requestBytes", "responseBytes", "cost", "metadata", "dimensions", "ingestedAt", "storedAt"}, names)
	n := 0
	for ar.Next() {
		rec := ar.RecordBatch()
		col := rec.Column(0).(*array.String)
		for i := range col.Len() {
			require.True(t, ids[col.Value(i)])
		}
		n += int(rec.NumRows())
	}
	require.NoError(t, ar.Err())
	ar.Release()
	require.Equal(t, len(mine), n)

	// NDJSON lines and the JSON array's length.
	res = send(body("ndjson", "dataset", "hourly"), false)
	require.Equal(t, http.StatusOK, res.StatusCode)
	lines := 0
	var requests float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var row map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		requests += row["requests"].(float64)
		lines++
	}
	require.Equal(t, atoi(t, res.Header.Get("X-Export-Rows")), lines)
	require.EqualValues(t, len(mine), requests, "the hourly rows add up to the records")
	res = send(body("json", "dataset", "daily"), false)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var arr []map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&arr))
	require.Len(t, arr, atoi(t, res.Header.Get("X-Export-Rows")))

	// Refusals come as JSON errors before any download.
	for _, b := range []map[string]any{
		body("xlsx"), body("csv", "dataset", "minutes"), {"startDate": "2026-10-24"},
		body("csv", "startDate", "2026-10-26"), {"format": "csv", "fields": []string{"id", "nope"}},
	} {
		res := send(b, true)
		require.Equal(t, http.StatusBadRequest, res.StatusCode, b)
		require.Equal(t, "application/json", strings.Split(res.Header.Get("Content-Type"), ";")[0])
	}
	// Over the row cap (20,000 here): a clear 400.
	rec := call(t, "POST", BasePath+"/export", adminKey, map[string]any{"format": "csv", "startDate": "2026-10-23", "endDate": "2026-10-27"})
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Contains(t, rec.Body.String(), "over the limit of 20000")
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	require.NoError(t, err, s)
	return n
}
