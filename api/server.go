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
	reg.MustRegister(requests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("panic serving request", "route", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.observe(requests))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
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
	s.ln = ln
	return nil
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
	return s.echo.Shutdown(ctx)
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
			h.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Observe(d.Seconds())
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
