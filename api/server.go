// Package api is apimeter's HTTP side: the echo server, its liveness,
// readiness and metrics endpoints, and (as the product grows) the
// analytics routes, auth, and the rate-limit and quota middleware.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OwnTenant is the tenant apimeter's own API calls are recorded under, so
// that reading one's usage never adds to it.
const OwnTenant = "apimeter"

// Check is one readiness condition; nil means ready.
type Check func(ctx context.Context) error

// Config configures the server.
type Config struct {
	// Addr is the listen address. Default ":8080".
	Addr string
	// ReadyTimeout bounds each readiness check. Default 2s.
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds graceful shutdown. Default 15s.
	ShutdownTimeout time.Duration
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// for the client's address (the per-address limit, logs). Default:
	// none — the connection's address is the client's, so a client
	// cannot pick its own address.
	TrustedProxies []*net.IPNet
	// Deadlines bound slow clients (see Deadlines for the defaults).
	Deadlines Deadlines
	// MetricsAddr, when set, serves /metrics on this address only and not
	// on Addr: the metrics name failing endpoints of the metered APIs and
	// the process's internals, which a public listener should not show.
	// Default "": /metrics on Addr.
	MetricsAddr string
	// AuthGuard throttles addresses that keep sending invalid API keys
	// (a *limits.Strikes); nil throttles none.
	AuthGuard Guard
}

// Guard counts authentication failures per client address and says when
// an address has had too many.
type Guard interface {
	Blocked(ctx context.Context, who string) (bool, time.Duration)
	Add(ctx context.Context, who string)
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 2 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	c.Deadlines.setDefaults()
}

// Server is the HTTP server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	echo   *echo.Echo
	reg    prometheus.Registerer
	checks map[string]Check
	ln     net.Listener
	// metrics serves /metrics apart when Config.MetricsAddr is set.
	metrics   *http.Server
	metricsLn net.Listener

	authFailures  *prometheus.CounterVec
	authThrottled prometheus.Counter
}

// New builds the server. checks are the named readiness conditions
// /readyz reports; reg receives the server's metrics and is served at
// /metrics.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry, checks map[string]Check) *Server {
	cfg.setDefaults()
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.IPExtractor = echo.ExtractIPDirect()
	if len(cfg.TrustedProxies) > 0 {
		opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
		for _, n := range cfg.TrustedProxies {
			opts = append(opts, echo.TrustIPRange(n))
		}
		e.IPExtractor = echo.ExtractIPFromXFFHeader(opts...)
	}
	s := &Server{cfg: cfg, log: log, echo: e, reg: reg, checks: checks}
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.deadlines)

	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apimeter_http_request_duration_seconds",
		Help:    "HTTP requests served, by route, method and status.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "status"})
	s.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apimeter_auth_failures_total",
		Help: "Requests refused 401, by reason: missing (no key), unknown, revoked or expired (callers are told the same for the last three).",
	}, []string{"reason"})
	s.authThrottled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apimeter_auth_throttled_total",
		Help: "Requests with a key refused 429 without a lookup, from addresses that sent too many invalid keys.",
	})
	reg.MustRegister(requests, s.authFailures, s.authThrottled, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("panic serving request", "route", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.observe(requests))
	e.Use(s.guardAuth)
	e.Use(bodyRouteQuery)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if cfg.MetricsAddr == "" {
		e.GET("/metrics", echo.WrapHandler(metrics))
	} else {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: cfg.Deadlines.Header, IdleTimeout: cfg.Deadlines.Idle,
			WriteTimeout: time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	}
	return s
}

// Echo exposes the router so other packages can add routes.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Listen binds the address; Serve then accepts on it. Binding first lets
// the caller fail fast (address in use) before starting other parts.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	if s.metrics != nil {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s (APIMETER_METRICS_ADDR): %w", s.cfg.MetricsAddr, err)
		}
		s.metricsLn = mln
	}
	s.ln = ln
	return nil
}

// MetricsAddr is the bound address of the metrics listener, "" without one.
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// Serve accepts connections until Shutdown.
func (s *Server) Serve() error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.echo.Listener = s.ln
	s.log.Info("http server listening", "addr", s.Addr())
	if s.metricsLn != nil {
		s.log.Info("metrics listening", "addr", s.MetricsAddr())
		go func() {
			if err := s.metrics.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	// echo's own http.Server, so that echo.Shutdown reaches it.
	srv := s.echo.Server
	srv.ReadHeaderTimeout = s.cfg.Deadlines.Header
	srv.IdleTimeout = s.cfg.Deadlines.Idle
	if err := s.echo.StartServer(srv); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for requests in flight.
func (s *Server) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var merr error
	if s.metrics != nil {
		merr = s.metrics.Shutdown(ctx)
	}
	return errors.Join(s.echo.Shutdown(ctx), merr)
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	results := map[string]string{}
	ready := true
	for name, check := range s.checks {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
		err := check(ctx)
		cancel()
		if err != nil {
			ready = false
			results[name] = err.Error()
			continue
		}
		results[name] = "ok"
	}
	if !ready {
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "not ready", "checks": results})
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "checks": results})
}

// observe records request durations and logs each request. The
// Authorization header and query string are never logged.
func (s *Server) observe(h *prometheus.HistogramVec) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			d := time.Since(start)
			h.WithLabelValues(route, methodLabel(c.Request().Method), strconv.Itoa(status)).Observe(d.Seconds())
			level := slog.LevelDebug
			if status >= 500 {
				level = slog.LevelError
			}
			s.log.Log(c.Request().Context(), level, "http request",
				"method", c.Request().Method, "route", route, "path", c.Request().URL.Path,
				"status", status, "duration_ms", d.Milliseconds(), "remote", c.RealIP())
			return nil
		}
	}
}

// guardAuth answers 429, without looking the key up, to requests with a
// key from an address that sent too many invalid keys lately, and counts
// each refused key against its address. (Requests without a key cost no
// lookup and are not throttled; they are counted as "missing".)
func (s *Server) guardAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		g := s.cfg.AuthGuard
		ctx := c.Request().Context()
		if g != nil && c.Request().Header.Get(echo.HeaderAuthorization) != "" {
			if blocked, retry := g.Blocked(ctx, c.RealIP()); blocked {
				s.authThrottled.Inc()
				s.log.Debug("authentication throttled", "remote", c.RealIP(), "retry_after", retry)
				e := Errorf(http.StatusTooManyRequests, "rate_limited", "too many invalid API keys from this address; retry in %s seconds", retryAfterSeconds(retry))
				e.RetryAfter = retry
				return e
			}
		}
		err := next(c)
		if reason, ok := c.Get(authFailureKey).(string); ok {
			s.authFailures.WithLabelValues(reason).Inc()
			keyID, _ := c.Get("apiKeyId").(string)
			level := slog.LevelDebug
			if reason == "revoked" || reason == "expired" {
				level = slog.LevelInfo // a known key still in use somewhere
			}
			s.log.Log(ctx, level, "authentication failed", "reason", reason, "key_id", keyID, "route", c.Path(), "remote", c.RealIP())
			if g != nil && reason != "missing" {
				g.Add(context.WithoutCancel(ctx), c.RealIP())
			}
		}
		return err
	}
}

// methodLabel keeps the method label to the methods of RFC 9110 (and
// PATCH): anything a client makes up is "other", so a client cannot add
// series to /metrics.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "other"
}
