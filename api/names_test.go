package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// One rule for tenant and user ids: whatever the ingester stores, the API
// can name — in query parameters, in keys and in account paths — and what
// it refuses, the ingester refuses too.
func TestEveryStoredNameCanBeAskedAbout(t *testing.T) {
	db := migrated(t, storetest.Open(t))
	ctx := context.Background()

	names := []struct{ tenant, user string }{
		{"se c'", "u/../x"},
		{"auth0|tenant", "google-oauth2|1234567890"},
		{"ünï", "🙂 smile"},
		{"t%2Fencoded", `back\slash "quoted"`},
		{strings.Repeat("t", 128), strings.Repeat("u", 128)},
	}
	now := time.Now().UTC().Truncate(time.Hour)
	dec := ingest.NewDecoder(ingest.Policy{})
	var cols ingest.UsageColumns
	want := map[string]uint64{}
	for i, n := range names {
		for j := range i + 2 {
			raw := fmt.Sprintf(`{"id":"n-%d-%d","tenantId":%s,"userId":%s,"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5,"timestamp":%d}`,
				i, j, jsonString(n.tenant), jsonString(n.user), now.Add(-time.Hour).UnixMilli())
			var r ingest.Record
			rej := dec.Decode([]byte(raw), ingest.Source{Topic: "t", TimestampMs: now.UnixMilli()}, &r)
			require.Nil(t, rej, "the ingester stores %q / %q", n.tenant, n.user)
			cols.Append(&r)
			want[n.tenant+"\x00"+n.user]++
		}
	}
	// And refuses, with the API, the ids the rule does not allow.
	for _, bad := range []struct{ field, value string }{
		{"userId", strings.Repeat("u", 200)}, {"userId", "a\u0007b"}, {"tenantId", "*"}, {"tenantId", "line\nbreak"},
	} {
		raw := fmt.Sprintf(`{"%s":%s,"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, bad.field, jsonString(bad.value))
		if bad.field == "userId" {
			raw = fmt.Sprintf(`{"userId":%s,"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, jsonString(bad.value))
		}
		var r ingest.Record
		rej := dec.Decode([]byte(raw), ingest.Source{Topic: "t", TimestampMs: now.UnixMilli()}, &r)
		require.NotNil(t, rej, "%s %q is refused at ingest", bad.field, bad.value)
		require.Equal(t, bad.field, rej.Field)
	}
	require.NoError(t, db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{}))

	srv := newTestServer(nil)
	keys := auth.NewStore(db, adminKey)
	an := &Analytics{Query: query.New(db, query.Limits{}), Keys: keys, Thresholds: query.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second}}
	srv.MountAnalytics(an)
	srv.MountAccounts(&AccountsAPI{Store: accounts.New(db)}, KeyAuth(keys, true))
	send := func(method, target, key, body string) *httptest.ResponseRecorder {
		req := newRequest(method, target, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		return rec
	}
	rangeQ := "&startDate=" + now.AddDate(0, 0, -2).Format("2006-01-02") + "&endDate=" + now.Format("2006-01-02")

	// top-users lists them all...
	rec := send("GET", "/api/api-usage/top-users?limit=100"+rangeQ, adminKey, "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var top TopUsersResponse
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &top))
	got := map[string]uint64{}
	for _, u := range top.Users {
		got[u.Tenant+"\x00"+u.User] = u.Requests
	}
	require.Equal(t, want, got)

	for _, n := range names {
		who := n.tenant + "\x00" + n.user
		// ...and each can be asked about by a global admin...
		q := "?tenantId=" + url.QueryEscape(n.tenant) + "&userId=" + url.QueryEscape(n.user) + rangeQ
		rec := send("GET", "/api/api-usage/stats"+q, adminKey, "")
		require.Equal(t, http.StatusOK, rec.Code, "%q: %s", who, rec.Body.String())
		require.Equal(t, want[who], requestsOf(t, rec))

		// ...by a key of its own...
		body, _ := json.Marshal(auth.NewKey{Tenant: n.tenant, User: n.user, Role: auth.RoleUser})
		rec = send("POST", "/api/api-usage/admin/keys", adminKey, string(body))
		require.Equal(t, http.StatusCreated, rec.Code, "%q: %s", who, rec.Body.String())
		var created struct {
			Key string `json:"key"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &created))
		rec = send("GET", "/api/api-usage/stats?x=1"+rangeQ, created.Key, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, want[who], requestsOf(t, rec))

		// ...and given an account, by its URL-encoded path.
		path := "/api/api-usage/admin/accounts/" + url.PathEscape(n.user)
		rec = send("PUT", path, adminKey, fmt.Sprintf(`{"tenantId":%s,"plan":"pro"}`, jsonString(n.tenant)))
		require.Equal(t, http.StatusOK, rec.Code, "%q: %s", who, rec.Body.String())
		rec = send("GET", path+"?tenantId="+url.QueryEscape(n.tenant), adminKey, "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var acct accounts.Account
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &acct))
		require.Equal(t, n.user, acct.User)
		require.Equal(t, n.tenant, acct.Tenant)
	}

	// Ids the rule refuses are refused everywhere, with the rule named.
	for _, target := range []string{
		"/api/api-usage/stats?userId=" + url.QueryEscape(strings.Repeat("u", 129)),
		"/api/api-usage/stats?tenantId=" + url.QueryEscape("a\x01b"),
	} {
		rec := send("GET", target, adminKey, "")
		require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), auth.NameRule)
	}
}

func requestsOf(t *testing.T, rec *httptest.ResponseRecorder) uint64 {
	t.Helper()
	var s struct {
		Totals struct {
			Requests uint64 `json:"requests"`
		} `json:"totals"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &s))
	return s.Totals.Requests
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
