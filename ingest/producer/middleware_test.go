package producer

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
)

type collector struct {
	mu      sync.Mutex
	records []Record
}

func (c *collector) Track(r Record) {
	c.mu.Lock()
	c.records = append(c.records, r)
	c.mu.Unlock()
}

type statusErr struct{ code int }

func (e statusErr) Error() string   { return "status" }
func (e statusErr) StatusCode() int { return e.code }

func TestTrackUsageMiddleware(t *testing.T) {
	col := &collector{}
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc { // a stand-in auth middleware
		return func(c echo.Context) error {
			if u := c.Request().Header.Get("X-User"); u != "" {
				c.Set("tenantId", "acme")
				c.Set("userId", u)
				c.Set("apiKeyId", "key_1")
			}
			return next(c)
		}
	})
	e.Use(TrackUsage(col, MiddlewareConfig{Metadata: func(c echo.Context) map[string]string {
		return map[string]string{"region": "eu"}
	}}))
	e.GET("/users/:id", func(c echo.Context) error { return c.String(200, "hello "+c.Param("id")) })
	e.POST("/upload", func(c echo.Context) error {
		b, _ := io.ReadAll(c.Request().Body)
		return c.JSON(201, map[string]int{"got": len(b)})
	})
	e.GET("/missing", func(c echo.Context) error { return echo.NewHTTPError(404, "nope") })
	e.GET("/teapot", func(c echo.Context) error { return statusErr{418} })
	e.GET("/fail", func(c echo.Context) error { return errors.New("boom") })
	e.GET("/slow", func(c echo.Context) error { time.Sleep(20 * time.Millisecond); return c.NoContent(204) })
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(200) })
	e.GET("/internal", func(c echo.Context) error { return c.NoContent(200) }, SkipTracking())

	do := func(method, path, body, user string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if user != "" {
			req.Header.Set("X-User", user)
		}
		e.ServeHTTP(httptest.NewRecorder(), req)
	}
	do("GET", "/users/42", "", "u1")
	do("GET", "/users/43", "", "")
	do("POST", "/upload", strings.Repeat("x", 1234), "u2")
	do("GET", "/missing", "", "u1")
	do("GET", "/teapot", "", "u1")
	do("GET", "/fail", "", "u1")
	do("GET", "/slow", "", "u1")
	do("GET", "/healthz", "", "u1")
	do("GET", "/internal", "", "u1")
	do("GET", "/no/such/route", "", "u1")

	got := col.records
	require.Len(t, got, 8, "healthz and SkipTracking routes are not tracked")
	byEndpoint := map[string][]Record{}
	for _, r := range got {
		byEndpoint[r.Endpoint] = append(byEndpoint[r.Endpoint], r)
		require.Equal(t, map[string]string{"region": "eu"}, r.Metadata)
		require.False(t, r.Timestamp.IsZero())
		require.GreaterOrEqual(t, r.ResponseTimeMs, 0.0)
	}
	users := byEndpoint["/users/:id"]
	require.Len(t, users, 2, "the route template, not the path")
	require.Equal(t, Record{TenantID: "acme", UserID: "u1", APIKeyID: "key_1", Endpoint: "/users/:id", Method: "GET", StatusCode: 200, ResponseBytes: 8},
		Record{TenantID: users[0].TenantID, UserID: users[0].UserID, APIKeyID: users[0].APIKeyID, Endpoint: users[0].Endpoint,
			Method: users[0].Method, StatusCode: users[0].StatusCode, ResponseBytes: users[0].ResponseBytes})
	require.Equal(t, "anonymous", users[1].UserID)
	up := byEndpoint["/upload"][0]
	require.Equal(t, http.StatusCreated, up.StatusCode)
	require.Equal(t, int64(1234), up.RequestBytes)
	require.Equal(t, 404, byEndpoint["/missing"][0].StatusCode)
	require.Equal(t, 418, byEndpoint["/teapot"][0].StatusCode)
	require.Equal(t, 500, byEndpoint["/fail"][0].StatusCode)
	require.GreaterOrEqual(t, byEndpoint["/slow"][0].ResponseTimeMs, 20.0)
	require.Equal(t, 204, byEndpoint["/slow"][0].StatusCode)
	require.Equal(t, 404, byEndpoint["unmatched"][0].StatusCode)
}

// TestTrackUsageDecision checks that a record carries the decision that
// counted its call: from the context (a limiter in this process), else
// from the response header (a limiter on another hop).
func TestTrackUsageDecision(t *testing.T) {
	col := &collector{}
	e := echo.New()
	e.Use(TrackUsage(col, MiddlewareConfig{}))
	limiter := func(next echo.HandlerFunc) echo.HandlerFunc { // a stand-in limiter middleware
		return func(c echo.Context) error {
			if id := c.Request().Header.Get("X-Test-Decide"); id != "" {
				c.Set("apimeter.decision", id)
			}
			return next(c)
		}
	}
	e.GET("/a", func(c echo.Context) error {
		if h := c.Request().Header.Get("X-Test-Upstream"); h != "" {
			c.Response().Header().Set("X-Apimeter-Decision", h)
		}
		return c.NoContent(200)
	}, limiter)

	do := func(decide, upstream string) string {
		req := httptest.NewRequest("GET", "/a", nil)
		if decide != "" {
			req.Header.Set("X-Test-Decide", decide)
		}
		if upstream != "" {
			req.Header.Set("X-Test-Upstream", upstream)
		}
		e.ServeHTTP(httptest.NewRecorder(), req)
		got := col.records[len(col.records)-1]
		return got.DecisionID
	}
	require.Equal(t, "dec-ctx", do("dec-ctx", ""), "from the context")
	require.Equal(t, "dec-hop", do("", "dec-hop"), "from the response header")
	require.Equal(t, "dec-ctx", do("dec-ctx", "dec-hop"), "the context first")
	require.Empty(t, do("", ""), "no decision")
	require.Empty(t, do("", strings.Repeat("d", 129)), "one the ingester would refuse is left out")
	require.Equal(t, "apimeter.decision", ContextDecision)
}
