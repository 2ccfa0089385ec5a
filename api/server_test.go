package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func newTestServer(checks map[string]Check) *Server {
	return New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), checks)
}

func do(s *Server, method, path string) (*httptest.ResponseRecorder, map[string]any) {
	rec := httptest.NewRecorder()
	s.Echo().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var body map[string]any
	json.Unmarshal(rec.Body.Bytes(), &body)
	return rec, body
}

func TestReadiness(t *testing.T) {
	ok := func(context.Context) error { return nil }
	s := newTestServer(map[string]Check{"store": ok, "schema": ok})
	rec, body := do(s, http.MethodGet, "/readyz")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "ready", body["status"])

	s = newTestServer(map[string]Check{"store": ok, "schema": func(context.Context) error { return errors.New("2 migrations pending") }})
	rec, body = do(s, http.MethodGet, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "2 migrations pending", body["checks"].(map[string]any)["schema"])

	rec, _ = do(s, http.MethodGet, "/healthz")
	require.Equal(t, http.StatusOK, rec.Code, "liveness does not depend on readiness")
}

func TestErrorsAreJSON(t *testing.T) {
	s := newTestServer(nil)
	s.Echo().GET("/boom", func(echo.Context) error { panic("kaboom") })
	s.Echo().GET("/bad", func(echo.Context) error { return BadRequest("startDate %q is not a date", "x") })
	s.Echo().GET("/fault", func(echo.Context) error { return errors.New("disk on fire: /secret/path") })

	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{http.MethodGet, "/nope", 404, "not_found"},
		{http.MethodPost, "/healthz", 405, "method_not_allowed"},
		{http.MethodGet, "/bad", 400, "invalid_argument"},
		{http.MethodGet, "/boom", 500, "internal"},
		{http.MethodGet, "/fault", 500, "internal"},
	} {
		rec, body := do(s, c.method, c.path)
		require.Equal(t, c.status, rec.Code, c.path)
		require.Equal(t, "application/json", strings.Split(rec.Header().Get("Content-Type"), ";")[0], c.path)
		e := body["error"].(map[string]any)
		require.Equal(t, c.code, e["code"], c.path)
		require.NotEmpty(t, e["message"], c.path)
		require.NotContains(t, rec.Body.String(), "/secret/path", "internals stay in the log")
	}
}

func TestMetricsCountRequests(t *testing.T) {
	s := newTestServer(nil)
	do(s, http.MethodGet, "/healthz")
	do(s, http.MethodGet, "/healthz")
	rec, _ := do(s, http.MethodGet, "/metrics")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), `apimeter_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 2`)
	require.Contains(t, rec.Body.String(), "go_goroutines")
}
