package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/ingest/producer"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

type trackedRecords struct {
	mu   sync.Mutex
	recs []producer.Record
}

func (t *trackedRecords) Track(r producer.Record) {
	t.mu.Lock()
	t.recs = append(t.recs, r)
	t.mu.Unlock()
}

func (t *trackedRecords) all() []producer.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]producer.Record(nil), t.recs...)
}

// A client that gives up before its answer is recorded as 499 — in the
// request metrics and in the usage record — never as a 500, and the
// server does not log a fault.
func TestClientThatLeavesIs499(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	srv := New(Config{Addr: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(&logs, nil)), reg, nil)
	tracked := &trackedRecords{}
	srv.Echo().Use(producer.TrackUsage(tracked, producer.MiddlewareConfig{}))
	started := make(chan struct{})
	srv.Echo().GET("/slow", func(c echo.Context) error {
		close(started)
		<-c.Request().Context().Done() // a query cancelled with its request
		return fmt.Errorf("query: %w", c.Request().Context().Err())
	})
	require.NoError(t, srv.Listen())
	go srv.Serve()
	defer srv.Shutdown()

	conn, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	fmt.Fprint(conn, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	conn.Close()

	require.Eventually(t, func() bool { return len(tracked.all()) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 499, tracked.all()[0].StatusCode)
	require.Eventually(t, func() bool {
		return testutil.CollectAndCount(reg, "apimeter_http_request_duration_seconds") > 0
	}, 10*time.Second, 5*time.Millisecond)
	mf, err := reg.Gather()
	require.NoError(t, err)
	var statuses []string
	for _, f := range mf {
		if f.GetName() != "apimeter_http_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" {
					statuses = append(statuses, l.GetValue())
				}
			}
		}
	}
	require.Equal(t, []string{"499"}, statuses)
	require.NotContains(t, logs.String(), "level=ERROR")
}

// Global health is about the metered APIs: apimeter's own calls (tenant
// "apimeter"), failing or not, do not make it unhealthy unless asked to.
func TestHealthLeavesApimetersOwnAPIOut(t *testing.T) {
	db := migrated(t, storetest.Open(t))
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	var cols ingest.UsageColumns
	add := func(tenant string, status uint16, n int) {
		for i := range n {
			r := ingest.Record{ID: fmt.Sprintf("%s-%d", tenant, i), Type: ingest.TypeAPICall, TenantID: tenant, UserID: "u", Cost: 1,
				Endpoint: "/api/x", Method: "GET", StatusCode: status, ResponseTimeUs: 20_000,
				EventTimeMs: now.Add(-2 * time.Minute).UnixMilli(), IngestedAtMs: now.UnixMilli()}
			cols.Append(&r)
		}
	}
	add("tenant-1", 200, 60)
	add(OwnTenant, 500, 40) // clients of apimeter's API that failed
	require.NoError(t, db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{}))

	health := func(includeSelf bool) HealthResponse {
		srv := newTestServer(nil)
		svc := query.New(db, query.Limits{})
		svc.SetClock(func() time.Time { return now.Add(10 * time.Second) })
		an := &Analytics{Query: svc, Keys: &auth.Store{}, HealthIncludesSelf: includeSelf,
			Thresholds: query.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second}}
		srv.MountAnalytics(an)
		req := httptest.NewRequest(http.MethodGet, "/api/api-usage/health", nil)
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var h HealthResponse
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &h))
		return h
	}
	h := health(false)
	require.Equal(t, "healthy", h.Status)
	require.Equal(t, 0.0, h.Metrics.ErrorRate)
	require.InDelta(t, 60.0/5, h.Metrics.RequestsPerMinute, 1e-9)

	h = health(true)
	require.Equal(t, "unhealthy", h.Status, "asked to, apimeter judges its own API too")
	require.InDelta(t, 40.0, h.Metrics.ErrorRate, 1e-9)
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := io.WriteString(w, s)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

// Bodies sent with Content-Encoding: gzip are read inflated, within the
// same size limit; other encodings are a 415.
func TestCompressedRequestBodies(t *testing.T) {
	srv := newTestServer(nil)
	sk := &sink{}
	keys := fakeKeys{"am_admin": {KeyID: "k", Tenant: auth.AllTenants, User: "admin", Role: auth.RoleAdmin}}
	srv.MountEvents(sk, ingest.Policy{}, KeyAuth(keys, true))
	post := func(body []byte, encoding string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/api-usage/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer am_admin")
		req.Header.Set("Content-Encoding", encoding)
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		return rec
	}
	record := `{"id":"z1","userId":"ü-user","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":3}`
	rec := post(gzipped(t, record), "gzip")
	require.Equal(t, http.StatusAccepted, rec.Code, rec.Body.String())
	require.Equal(t, []string{record}, sk.got)

	// A small body that inflates past the limit is refused as too large.
	bomb := gzipped(t, "["+strings.Repeat(" ", maxEventsBody+10)+"]")
	require.Less(t, len(bomb), 64<<10)
	rec = post(bomb, "gzip")
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())

	rec = post([]byte("not gzip at all"), "gzip")
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	require.Contains(t, rec.Body.String(), "gzip")

	rec = post([]byte(record), "br")
	require.Equal(t, http.StatusUnsupportedMediaType, rec.Code, rec.Body.String())
	require.Len(t, sk.got, 1, "nothing more was forwarded")

	// The query routes read compressed bodies too.
	body := fmt.Sprintf(`{"startDate":%q,"endDate":%q,"granularity":"day","metrics":["requests"]}`,
		fx.start.Format(time.RFC3339), fx.end.Format(time.RFC3339))
	plain := call(t, http.MethodPost, "/api/api-usage/time-series", fx.userKey, body)
	require.Equal(t, http.StatusOK, plain.Code, plain.Body.String())
	req := newRequest(http.MethodPost, "/api/api-usage/time-series", bytes.NewReader(gzipped(t, body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+fx.userKey)
	zrec := httptest.NewRecorder()
	fx.srv.Echo().ServeHTTP(zrec, req)
	require.Equal(t, http.StatusOK, zrec.Code, zrec.Body.String())
	require.JSONEq(t, plain.Body.String(), zrec.Body.String())
}

// countingKeys is an Authenticator that counts its lookups.
type countingKeys struct {
	fakeKeys
	mu      sync.Mutex
	lookups int
	revoked map[string]bool
}

func (k *countingKeys) Authenticate(ctx context.Context, key string) (auth.Principal, error) {
	k.mu.Lock()
	k.lookups++
	k.mu.Unlock()
	if k.revoked[key] {
		return auth.Principal{KeyID: "k-old"}, auth.ErrRevoked
	}
	return k.fakeKeys.Authenticate(ctx, key)
}

// An address that keeps sending invalid keys is answered 429 without a
// lookup once it has sent the limit within the window; other addresses
// and requests without a key are not affected; every failure is counted.
// Unknown and revoked keys get the same answer.
func TestInvalidKeysAreThrottledPerAddress(t *testing.T) {
	clock := limits.NewManualClock(time.Date(2027, 1, 5, 10, 0, 0, 0, time.UTC))
	lim := limits.New(limits.Config{Clock: clock})
	reg := prometheus.NewRegistry()
	srv := New(Config{AuthGuard: lim.Strikes("auth", 5, time.Minute)}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, nil)
	keys := &countingKeys{fakeKeys: fakeKeys{"am_good": {KeyID: "k1", Tenant: "t", User: "u", Role: auth.RoleUser}},
		revoked: map[string]bool{"am_revoked": true}}
	srv.Echo().GET("/api/api-usage/stats", func(c echo.Context) error { return c.String(http.StatusOK, "ok") }, KeyAuth(keys, false))
	get := func(addr, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/api-usage/stats", nil)
		req.RemoteAddr = addr + ":40000"
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		return rec
	}
	unknown := get("198.51.100.7", "am_guess-0")
	revoked := get("198.51.100.8", "am_revoked")
	require.Equal(t, http.StatusUnauthorized, unknown.Code)
	require.Equal(t, http.StatusUnauthorized, revoked.Code)
	require.JSONEq(t, unknown.Body.String(), revoked.Body.String(), "unknown and revoked keys are told the same")

	for i := 1; i < 5; i++ {
		require.Equal(t, http.StatusUnauthorized, get("198.51.100.7", fmt.Sprintf("am_guess-%d", i)).Code)
	}
	before := keys.lookups
	for i := range 30 {
		rec := get("198.51.100.7", fmt.Sprintf("am_more-%d", i))
		require.Equal(t, http.StatusTooManyRequests, rec.Code, rec.Body.String())
		require.Equal(t, "61", rec.Header().Get("Retry-After"), "a failure counts for the window and one slot of it")
	}
	require.Equal(t, before, keys.lookups, "throttled requests look nothing up")
	require.Equal(t, http.StatusTooManyRequests, get("198.51.100.7", "am_good").Code, "the address is throttled, whatever key it sends")
	require.Equal(t, http.StatusOK, get("198.51.100.9", "am_good").Code, "another address is not")
	require.Equal(t, http.StatusUnauthorized, get("198.51.100.7", "").Code, "without a key: a 401, nothing looked up")

	require.Equal(t, 5.0, testutil.ToFloat64(srv.authFailures.WithLabelValues("unknown")))
	require.Equal(t, 1.0, testutil.ToFloat64(srv.authFailures.WithLabelValues("revoked")))
	require.Equal(t, 1.0, testutil.ToFloat64(srv.authFailures.WithLabelValues("missing")))
	require.Equal(t, 31.0, testutil.ToFloat64(srv.authThrottled))

	clock.Advance(61 * time.Second)
	require.Equal(t, http.StatusOK, get("198.51.100.7", "am_good").Code, "the window passed")
}
