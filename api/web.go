package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/ingest/producer"
)

// MountWeb serves the dashboard h at "/" and its assets (app.js,
// app.css, favicon.svg), kept out of usage tracking: page loads are not
// API calls.
func (s *Server) MountWeb(h http.Handler) {
	serve := echo.WrapHandler(h)
	for _, p := range []string{"/", "/index.html", "/app.js", "/app.css", "/favicon.svg"} {
		s.echo.GET(p, serve, producer.SkipTracking())
		s.echo.HEAD(p, serve, producer.SkipTracking())
	}
}
