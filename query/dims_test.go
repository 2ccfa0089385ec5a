package query

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest"
)

// The fixture's custom dimensions: region (the generator's four values,
// capped at 3 per tenant) and build (an int, sometimes written with a
// leading zero, sometimes not a number).
var fixtureDims = []dims.Spec{{Name: "region", Type: dims.TypeString, Cap: 3}, {Name: "build", Type: dims.TypeInt, Cap: 100}}

// foldFixture gives every third record a build and folds the records'
// dimensions as the ingester does, checking the folder against the rule
// computed here: per tenant, the first Cap distinct values are kept, the
// rest become __other__; values of the wrong type __invalid__.
func foldFixture(recs []ingest.Record) {
	f := dims.NewFolder(fixtureDims, nil)
	seen := map[string]map[string]bool{} // tenant/dimension → kept values
	for i := range recs {
		r := &recs[i]
		if r.Type != ingest.TypeAPICall {
			continue
		}
		if i%3 == 0 {
			if r.Metadata == nil {
				r.Metadata = map[string]string{}
			}
			switch i % 5 {
			case 0:
				r.Metadata["build"] = fmt.Sprintf("0%d", i%4)
			case 1:
				r.Metadata["build"] = "nightly"
			default:
				r.Metadata["build"] = fmt.Sprint(i % 4)
			}
		}
		want := map[string]string{}
		for _, sp := range fixtureDims {
			v, ok := r.Metadata[sp.Name]
			if !ok {
				continue
			}
			var n int
			if sp.Type == dims.TypeInt {
				if _, err := fmt.Sscanf(v, "%d", &n); err != nil {
					want[sp.Name] = dims.Invalid
					continue
				}
				v = fmt.Sprint(n)
			}
			key := r.TenantID + "/" + sp.Name
			if seen[key] == nil {
				seen[key] = map[string]bool{}
			}
			if !seen[key][v] && len(seen[key]) == sp.Cap {
				v = dims.Other
			} else {
				seen[key][v] = true
			}
			want[sp.Name] = v
		}
		r.Dimensions = f.Fold(r.TenantID, r.Metadata)
		if len(want) == 0 {
			want = nil
		}
		if fmt.Sprint(want) != fmt.Sprint(r.Dimensions) {
			panic(fmt.Sprintf("record %d: folded %v, want %v", i, r.Dimensions, want))
		}
	}
}

func TestSeriesByCustomDimensions(t *testing.T) {
	fx := loadFixture(t)
	svc := New(fx.db, Limits{})
	svc.SetDimensions(fixtureDims)
	ctx := context.Background()
	utc, berlin := time.UTC, mustLoc(t, "Europe/Berlin")
	all := []Metric{Requests, Errors, ClientErrors, AvgResponseTime, MaxResponseTime, RequestBytes, ResponseBytes, Cost}
	region, build := Dimension("dimensions.region"), Dimension("dimensions.build")
	for _, c := range []struct {
		name   string
		req    SeriesRequest
		source string
	}{
		{"tenant by region, hours", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainHour, Metrics: all, GroupBy: []Dimension{region}}, "dimension_hourly"},
		{"user by build, Berlin days", SeriesRequest{Scope: Scope{Tenant: "tenant-2", User: "user-3"}, Range: Range{time.Date(2026, 10, 23, 0, 0, 0, 0, berlin), time.Date(2026, 10, 27, 0, 0, 0, 0, berlin), berlin}, Granularity: GrainDay, Metrics: all, GroupBy: []Dimension{build}}, "dimension_hourly"},
		{"every tenant, filtered to a region", SeriesRequest{Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: all, Filters: Filters{Custom: map[string][]string{"region": {"eu-west", dims.Other}}}}, "dimension_hourly"},
		{"region by endpoint (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-3"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: all, GroupBy: []Dimension{region, DimEndpoint}}, "usage_events"},
		{"two dimensions (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: all, GroupBy: []Dimension{region}, Filters: Filters{Custom: map[string][]string{"build": {"2", "3"}}}}, "usage_events"},
		{"region with percentiles (raw)", SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Metrics: []Metric{Requests, P95ResponseTime}, GroupBy: []Dimension{region}}, "usage_events"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := svc.Series(ctx, c.req)
			require.NoError(t, err)
			require.Equal(t, c.source, res.Source)
			require.NotEmpty(t, res.Series)
			checkSeries(t, fx, c.req, res)
		})
	}

	// Folding is visible: each tenant has at most 3 regions besides
	// __other__, and __other__ counts what the fourth region sent.
	res, err := svc.Series(ctx, SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainMonth, GroupBy: []Dimension{region}})
	require.NoError(t, err)
	var names []string
	for _, s := range res.Series {
		names = append(names, s.Group[region])
	}
	require.Len(t, names, 4)
	require.Contains(t, names, dims.Other)

	// A filter value is read as the dimension's type: "02" is build 2.
	a, err := svc.Series(ctx, SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Filters: Filters{Custom: map[string][]string{"build": {"02"}}}})
	require.NoError(t, err)
	b, err := svc.Series(ctx, SeriesRequest{Scope: Scope{Tenant: "tenant-1"}, Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Filters: Filters{Custom: map[string][]string{"build": {"2"}}}})
	require.NoError(t, err)
	require.Equal(t, a.Series, b.Series)

	for _, bad := range []SeriesRequest{
		{Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, GroupBy: []Dimension{"dimensions.color"}},
		{Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Filters: Filters{Custom: map[string][]string{"color": {"red"}}}},
		{Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, Filters: Filters{Custom: map[string][]string{"build": {"x"}}}},
	} {
		_, err := svc.Series(ctx, bad)
		require.True(t, IsInvalid(err), "%v", err)
	}
	undeclared := New(fx.db, Limits{})
	_, err = undeclared.Series(ctx, SeriesRequest{Range: Range{fx.start, fx.end, utc}, Granularity: GrainDay, GroupBy: []Dimension{region}})
	require.ErrorContains(t, err, "none is declared")
}
