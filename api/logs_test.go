package api

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/query"
)

// lockedBuffer collects log output from concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKeysNeverReachTheLogs drives requests that carry keys every way a
// client might send one — valid, invalid, in the query string, a key
// being created — through a server logging at debug level, and reads
// the log for any of them.
func TestKeysNeverReachTheLogs(t *testing.T) {
	var out lockedBuffer
	log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(Config{}, log, prometheus.NewRegistry(), nil)
	srv.MountAnalytics(&Analytics{Query: query.New(fx.db, query.Limits{}), Keys: fx.keys})
	bogus := "am_" + strings.Repeat("Z", 43)
	var created CreatedKey
	rec := serveJSON(t, srv, "POST", BasePath+"/admin/keys", adminKey, `{"tenantId":"tenant-1","userId":"logged"}`, &created)
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.NotEmpty(t, created.Secret)
	for _, c := range []struct{ target, key string }{
		{BasePath + "/stats", fx.userKey},
		{BasePath + "/stats", created.Secret},
		{BasePath + "/stats", bogus},
		{BasePath + "/stats?apiKey=" + fx.userKey + "&key=" + created.Secret, ""},
		{BasePath + "/top-users", fx.userKey},
		{BasePath + "/nope", fx.userKey},
		{BasePath + "/health", created.Secret},
	} {
		serveJSON(t, srv, "GET", c.target, c.key, "", nil)
	}
	logged := out.String()
	require.Contains(t, logged, `"msg":"http request"`, "requests were logged at all")
	require.Contains(t, logged, `"msg":"api key created"`)
	for _, secret := range []string{adminKey, fx.userKey, created.Secret, bogus, "Bearer", "apiKey="} {
		require.NotContains(t, logged, secret)
	}
}
