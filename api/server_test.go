package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
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

// Made-up methods do not add series: they are counted as "other".
func TestMetricsLabelsAreBounded(t *testing.T) {
	s := newTestServer(nil)
	for i := range 50 {
		do(s, fmt.Sprintf("RCXMETHOD%d", i), "/healthz")
	}
	do(s, http.MethodGet, "/healthz")
	rec, _ := do(s, http.MethodGet, "/metrics")
	body := rec.Body.String()
	require.Contains(t, body, `apimeter_http_request_duration_seconds_count{method="other",route="/healthz",status="405"} 50`)
	require.NotContains(t, body, "RCXMETHOD")
	require.Contains(t, body, `apimeter_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1`)
}

// With a metrics address, /metrics is served there and not on the API's
// listener; what it serves passes promtool's lint when promtool is here.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	require.NoError(t, s.Listen())
	go s.Serve()
	defer s.Shutdown()
	get := func(url string) (int, string) {
		res, err := http.Get(url)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, _ := get("http://" + s.Addr() + "/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body := get("http://" + s.Addr() + "/metrics")
	require.Equal(t, http.StatusNotFound, code, "no metrics on the public listener")
	require.NotContains(t, body, "go_goroutines")
	code, body = get("http://" + s.MetricsAddr() + "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `apimeter_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1`)

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not installed (apt-get install prometheus): the metrics were not linted")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
}
