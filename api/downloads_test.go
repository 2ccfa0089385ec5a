package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// liveServer is the API on a loopback listener, over a store of its own:
// slow and stalled clients are real TCP connections.
type liveServer struct {
	db    store.Driver
	srv   *Server
	an    *Analytics
	keys  *auth.Store
	reg   *prometheus.Registry
	addr  string
	start time.Time
	end   time.Time
}

// classStats is what both drivers report of their connection classes.
type classStats interface{ ClassStats() []store.ClassStats }

// newLiveServer loads n generated records (two tenants) into a store of
// conns connections and serves the API with dl as its download limits.
func newLiveServer(t *testing.T, n, conns int, dl DownloadLimits, cfg Config) *liveServer {
	t.Helper()
	db := migrated(t, storetest.OpenWith(t, conns, store.ClassLimits{}))
	ctx := context.Background()
	start := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	g := ingest.NewGenerator(ingest.GeneratorConfig{Seed: 3, Tenants: 2, Users: 20, Endpoints: 10, Start: start, Span: 24 * time.Hour, Count: n})
	var cols ingest.UsageColumns
	var r ingest.Record
	for g.Next(&r) {
		if r.Type == ingest.TypeAPICall {
			cols.Append(&r)
		}
	}
	require.NoError(t, db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{}))
	ls := &liveServer{db: db, keys: auth.NewStore(db, adminKey), reg: prometheus.NewRegistry(), start: start, end: start.Add(24 * time.Hour)}
	ls.srv = New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ls.reg, map[string]Check{"store": db.Ping})
	ls.an = &Analytics{Query: query.New(db, query.Limits{}), Keys: ls.keys, Downloads: dl, ExportMaxRows: uint64(n) + 1,
		Thresholds: query.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second}}
	ls.srv.MountAnalytics(ls.an)
	ls.srv.cfg.Addr = "127.0.0.1:0"
	require.NoError(t, ls.srv.Listen())
	ls.addr = ls.srv.Addr()
	go ls.srv.Serve()
	t.Cleanup(func() { ls.srv.Shutdown() })
	return ls
}

func (ls *liveServer) key(t *testing.T, tenant, user string, role string) string {
	t.Helper()
	_, k, err := ls.keys.Create(context.Background(), auth.NewKey{Tenant: tenant, User: user, Role: role})
	require.NoError(t, err)
	return k
}

// get sends a request over a new connection and reads the whole answer
// within timeout.
func (ls *liveServer) get(t *testing.T, method, path, key, body string, timeout time.Duration) (int, http.Header, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+ls.addr+path, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

// stalledExport starts an export on a raw connection and never reads the
// answer: a client on a link that stopped.
func (ls *liveServer) stalledExport(t *testing.T, key, format string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", ls.addr)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4 << 10) // take as little as the kernel allows
	}
	body := fmt.Sprintf(`{"format":%q,"startDate":%q,"endDate":%q}`, format,
		ls.start.Format(time.RFC3339), ls.end.Format(time.RFC3339))
	fmt.Fprintf(conn, "POST /api/api-usage/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		key, len(body), body)
	return conn
}

// statusOfConn reads the status line of an answer on conn.
func statusOfConn(t *testing.T, conn net.Conn) int {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	return res.StatusCode
}

// Eight analysts download a tenant's whole month over links that stopped:
// another tenant's reads, the readiness check and key checks go on, the
// exports give their engine connections back once the engine has written
// them, and the spool is gone when the clients are.
func TestStalledDownloadsLeaveInteractiveRequestsAlone(t *testing.T) {
	spool := t.TempDir()
	ls := newLiveServer(t, 150_000, 4, DownloadLimits{SpoolDir: spool}, Config{})
	var conns []net.Conn
	for i := range 8 {
		conns = append(conns, ls.stalledExport(t, ls.key(t, "tenant-1", fmt.Sprintf("analyst-%d", i), auth.RoleAdmin), "ndjson"))
	}
	other := ls.key(t, "tenant-2", "someone", auth.RoleUser)
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 8 }, 30*time.Second, 10*time.Millisecond,
		"every export started")

	for range 3 {
		code, _, body, err := ls.get(t, "GET", "/api/api-usage/stats", other, "", 20*time.Second)
		require.NoError(t, err, "another tenant's /stats answers while the downloads stall")
		require.Equal(t, http.StatusOK, code, "%s", body)
		code, _, _, err = ls.get(t, "GET", "/readyz", "", "", 20*time.Second)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		code, _, _, err = ls.get(t, "GET", "/api/api-usage/stats", "am_not-a-key", "", 20*time.Second)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, code)
	}
	// The engine wrote the exports to the spool and let go of them, while
	// their clients still read nothing.
	require.Eventually(t, func() bool { return ls.db.(classStats).ClassStats()[store.Export].InUse == 0 }, 60*time.Second, 50*time.Millisecond,
		"the exports hold no engine connection")
	require.Equal(t, 8.0, testutil.ToFloat64(ls.an.dl.active), "the downloads are still open")
	require.Greater(t, testutil.ToFloat64(ls.an.dl.spooled), 0.0)

	for _, c := range conns {
		c.Close()
	}
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 0 }, 60*time.Second, 10*time.Millisecond,
		"the downloads ended with their clients")
	entries, err := os.ReadDir(spool)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing is left in the spool")
	require.Zero(t, testutil.ToFloat64(ls.an.dl.spooled))
}

func TestExportsAreCappedPerCallerAndOverall(t *testing.T) {
	ls := newLiveServer(t, 150_000, 8, DownloadLimits{SpoolDir: t.TempDir(), PerCaller: 2, Max: 3, RetryAfter: 7 * time.Second}, Config{})
	alice := ls.key(t, "tenant-1", "alice", auth.RoleAdmin)
	alice2 := ls.key(t, "tenant-1", "alice", auth.RoleAdmin) // the same caller with another key
	bob := ls.key(t, "tenant-1", "bob", auth.RoleAdmin)
	carol := ls.key(t, "tenant-2", "carol", auth.RoleAdmin)
	body := fmt.Sprintf(`{"format":"csv","startDate":%q,"endDate":%q}`, ls.start.Format(time.RFC3339), ls.end.Format(time.RFC3339))

	a1 := ls.stalledExport(t, alice, "csv")
	ls.stalledExport(t, alice2, "csv")
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 2 }, 30*time.Second, 10*time.Millisecond)
	code, h, b, err := ls.get(t, "POST", "/api/api-usage/export", alice, body, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusTooManyRequests, code, "%s", b)
	require.Equal(t, "7", h.Get("Retry-After"))
	var e struct{ Error Error }
	require.NoError(t, json.Unmarshal(b, &e))
	require.Equal(t, "rate_limited", e.Error.Code)
	require.Contains(t, e.Error.Message, "2 exports running")

	ls.stalledExport(t, bob, "csv") // the third overall
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 3 }, 30*time.Second, 10*time.Millisecond)
	code, h, _, err = ls.get(t, "POST", "/api/api-usage/export", carol, body, 20*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "7", h.Get("Retry-After"))
	require.Equal(t, 1.0, testutil.ToFloat64(ls.an.dl.refused.WithLabelValues("caller")))
	require.Equal(t, 1.0, testutil.ToFloat64(ls.an.dl.refused.WithLabelValues("overall")))

	// One download ends: room for one more.
	a1.Close()
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 2 }, 30*time.Second, 10*time.Millisecond)
	code, _, b, err = ls.get(t, "POST", "/api/api-usage/export", carol, body, 60*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Greater(t, len(b), 1000)
}
