package query

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestRenderedSQLGolden pins the SQL the planner writes for typical
// requests; `go test ./query -update` rewrites the files after an intended
// change.
func TestRenderedSQLGolden(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		n    need
	}{
		{"tenant_daily", need{scope: Scope{Tenant: "t"}, rng: Range{day, day.AddDate(0, 0, 30), time.UTC}, grain: GrainDay, metrics: []Metric{Requests, ErrorRate}}},
		{"user_hourly_berlin", need{scope: Scope{Tenant: "t", User: "u"}, rng: Range{day, day.AddDate(0, 0, 7), berlin}, grain: GrainDay, metrics: []Metric{Requests}}},
		{"user_latency_raw", need{scope: Scope{Tenant: "t", User: "u"}, rng: Range{day, day.AddDate(0, 0, 30), time.UTC}, grain: GrainHour, metrics: []Metric{P95ResponseTime}}},
		{"endpoint_filters", need{scope: Scope{Tenant: "t"}, rng: Range{day, day.AddDate(0, 0, 30), time.UTC}, grain: GrainWeek, metrics: []Metric{P99ResponseTime},
			dims: []Dimension{DimEndpoint, DimStatusClass}, filters: Filters{Method: []string{"GET"}, StatusClass: []int{5}}}},
		{"all_tenants_users_month", need{rng: Range{day, day.AddDate(0, 1, 0), time.UTC}, grain: GrainMonth, metrics: []Metric{UniqueUsers}, dims: []Dimension{DimUser}, filters: Filters{StatusCode: []int{200, 201}}}},
		{"series_only_what_metrics_need", need{scope: Scope{Tenant: "t", User: "u"}, rng: Range{day, day.AddDate(0, 0, 30), time.UTC}, grain: GrainHour,
			metrics: []Metric{Requests, ErrorRate, AvgResponseTime}, only: true}},
		{"minutes", need{scope: Scope{Tenant: "t"}, rng: Range{now.Add(-time.Hour), now, time.UTC}, grain: GrainMinute, metrics: []Metric{Requests}, now: now}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.n.now.IsZero() {
				c.n.now = now
			}
			p, err := newPlan(c.n)
			require.NoError(t, err)
			sql, err := p.SQL()
			require.NoError(t, err)
			var b strings.Builder
			b.WriteString("-- source: " + p.src.name + "\n-- params:")
			for _, prm := range p.params {
				b.WriteString(" " + prm.Name)
			}
			b.WriteString("\n" + sql + "\n")
			path := filepath.Join("testdata", c.name+".sql")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "run go test ./query -update")
			require.Equal(t, string(want), b.String())
		})
	}
}
