package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/limits"
)

// BenchmarkCheck is one POST /limits/check through the server's
// middleware and handler, without the network: what the decision API
// adds to the limiter's own decision.
func BenchmarkCheck(b *testing.B) {
	// Accounts resolved without the store, as serve's cache does once a
	// user is known.
	dec, _ := limits.NewDecisions(limits.NewSecret())
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountDecisions(&DecisionsAPI{Limits: limits.New(limits.Config{Decisions: dec}), Keys: fx.keys})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		body := `{"tenantId":"tenant-1","userId":"bench-` + strconv.Itoa(i%1000) + `","endpoint":"/api/orders/17","method":"GET"}`
		req := httptest.NewRequest("POST", BasePath+"/limits/check", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.Echo().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusTooManyRequests {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
