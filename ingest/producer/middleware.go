package producer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// Tracker is what the middleware sends records to (a *Producer).
type Tracker interface {
	Track(r Record)
}

// MiddlewareConfig configures TrackUsage. Zero fields take the defaults
// in their comments.
type MiddlewareConfig struct {
	// Identity returns the caller's tenant, user and API key id. Default:
	// the echo context values "tenantId", "userId" and "apiKeyId" (what an
	// auth middleware sets); a request without a user is recorded as user
	// "anonymous".
	Identity func(c echo.Context) (tenantID, userID, apiKeyID string)
	// Skipper skips requests. Default: SkipTracking routes and the paths
	// in SkipPaths.
	Skipper func(c echo.Context) bool
	// SkipPaths are route paths never tracked. Default: /healthz, /readyz,
	// /metrics and /api/api-usage/health.
	SkipPaths []string
	// Metadata adds metadata to a request's record. Default: none.
	Metadata func(c echo.Context) map[string]string
	// Cost is what a request counts for against limits and quotas, the
	// record's cost; give it the function the limits middleware uses
	// (graphql.Cost for GraphQL handlers). Default: none (1 each).
	Cost func(c echo.Context) uint64
}

const skipKey = "apimeter.skipTracking"

// ContextDecision is the echo context key under which a limiter that
// decided a request leaves the decision's id (a string), for TrackUsage
// to put in the request's record.
const ContextDecision = "apimeter.decision"

// decisionHeader carries the id of a decision taken on another hop (a
// gateway, a proxy, a limiter in front of this service).
const decisionHeader = "X-Apimeter-Decision"

// maxDecisionBytes is the longest decisionId the ingester takes.
const maxDecisionBytes = 128

// SkipTracking is route middleware that keeps a route out of tracking,
// the seed's `config: { skipTracking: true }`:
//
//	e.GET("/internal/ping", ping, producer.SkipTracking())
func SkipTracking() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(skipKey, true)
			return next(c)
		}
	}
}

// TrackUsage is echo middleware that sends one usage record per request:
// the route template (not the raw path, so /users/42 and /users/43 are one
// endpoint), method, status, latency, request and response bytes, tenant
// and user. It sends after the response is written and never delays it
// (Track does not block).
//
// A call an apimeter limiter decided is counted already, so the record
// carries the decision's id (DecisionID) and the ingester does not count
// it again: the id the limiter left in the echo context under
// ContextDecision, or else the response's X-Apimeter-Decision header (a
// limiter on another hop). An id the ingester would refuse (over 128
// bytes, control characters) is left out, so the record is still stored;
// the call then counts as reported.
func TrackUsage(t Tracker, cfg MiddlewareConfig) echo.MiddlewareFunc {
	if cfg.Identity == nil {
		cfg.Identity = contextIdentity
	}
	if cfg.SkipPaths == nil {
		cfg.SkipPaths = []string{"/healthz", "/readyz", "/metrics", "/api/api-usage/health"}
	}
	skip := map[string]bool{}
	for _, p := range cfg.SkipPaths {
		skip[p] = true
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			body := &countingReader{r: c.Request().Body}
			if c.Request().Body != nil {
				c.Request().Body = body
			}
			err := next(c)
			if skip[c.Path()] || (cfg.Skipper != nil && cfg.Skipper(c)) {
				return err
			}
			if v, _ := c.Get(skipKey).(bool); v {
				return err
			}
			tenant, user, key := cfg.Identity(c)
			if user == "" {
				user = "anonymous"
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			reqBytes := body.n
			if reqBytes == 0 && c.Request().ContentLength > 0 {
				reqBytes = c.Request().ContentLength
			}
			r := Record{
				TenantID: tenant, UserID: user, APIKeyID: key,
				Endpoint: route, Method: strings.ToUpper(c.Request().Method), StatusCode: statusOf(c, err),
				ResponseTimeMs: float64(time.Since(start).Microseconds()) / 1000,
				RequestBytes:   reqBytes, ResponseBytes: c.Response().Size,
				Timestamp: start,
			}
			if cfg.Metadata != nil {
				r.Metadata = cfg.Metadata(c)
			}
			if cfg.Cost != nil {
				r.Cost = uint32(min(cfg.Cost(c), 1_000_000_000))
			}
			r.DecisionID = decisionOf(c)
			t.Track(r)
			return err
		}
	}
}

// StatusClientClosedRequest is recorded for a request whose client went
// away before it was answered (NGINX logs the same 499): the failure is
// the client's leaving, not the API's.
const StatusClientClosedRequest = 499

// statusOf is the status the client got, or will get once echo's error
// handler has written err.
func statusOf(c echo.Context, err error) int {
	if err == nil || c.Response().Committed {
		if s := c.Response().Status; s != 0 {
			return s
		}
		return http.StatusOK
	}
	if errors.Is(c.Request().Context().Err(), context.Canceled) {
		return StatusClientClosedRequest
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		return sc.StatusCode()
	}
	return http.StatusInternalServerError
}

// decisionOf is the id of the decision that counted the request, if any.
func decisionOf(c echo.Context) string {
	id, _ := c.Get(ContextDecision).(string)
	if id == "" {
		id = c.Response().Header().Get(decisionHeader)
	}
	if id == "" || len(id) > maxDecisionBytes || !utf8.ValidString(id) {
		return ""
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return ""
		}
	}
	return id
}

func contextIdentity(c echo.Context) (string, string, string) {
	s := func(k string) string { v, _ := c.Get(k).(string); return v }
	return s("tenantId"), s("userId"), s("apiKeyId")
}

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
