package api

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/dims"
)

// fixtureDims are the fixture's declared dimensions: the generator's four
// regions under a cap of three per tenant, and one dimension no record
// has.
var fixtureDims = []dims.Spec{{Name: "region", Type: dims.TypeString, Cap: 3}, {Name: "tier", Type: dims.TypeInt, Cap: 5}}

// keptRegions are a tenant's regions in the order they first appear, the
// first three kept, the rest folded: the rule, computed here.
func keptRegions(tenant string) map[string]bool {
	kept := map[string]bool{}
	for _, r := range fx.recs {
		if v, ok := r.Metadata["region"]; ok && r.TenantID == tenant && len(kept) < 3 {
			kept[v] = true
		}
	}
	return kept
}

func TestSeriesAndExportsByCustomDimension(t *testing.T) {
	kept := keptRegions(fx.tenant)
	require.Len(t, kept, 3)
	// Requests per region of the user's records, folded by the rule.
	want := map[string]uint64{}
	for _, r := range fx.recs {
		if v, ok := r.Metadata["region"]; ok && r.TenantID == fx.tenant && r.UserID == fx.user {
			if !kept[v] {
				v = dims.Other
			}
			want[v]++
		}
	}
	var res struct {
		Series []struct {
			Group  map[string]string `json:"group"`
			Points []map[string]any  `json:"points"`
		} `json:"series"`
	}
	body := map[string]any{"startDate": fx.start.Format(time.RFC3339), "endDate": fx.end.Format(time.RFC3339),
		"granularity": "month", "groupBy": []string{"dimensions.region"}}
	callJSON(t, "POST", BasePath+"/time-series", fx.userKey, body, 200, &res)
	got := map[string]uint64{}
	for _, s := range res.Series {
		for _, p := range s.Points {
			got[s.Group["dimensions.region"]] += uint64(p["requests"].(float64))
		}
	}
	require.Equal(t, want, got)

	// A filter on a region: the same count, and a user key still sees
	// its own requests only.
	var region string
	for v := range kept {
		region = v
		break
	}
	body = map[string]any{"startDate": fx.start.Format(time.RFC3339), "endDate": fx.end.Format(time.RFC3339),
		"granularity": "month", "filters": map[string]any{"dimensions": map[string]any{"region": region}}}
	callJSON(t, "POST", BasePath+"/time-series", fx.userKey, body, 200, &res)
	require.Len(t, res.Series, 1)
	var n uint64
	for _, p := range res.Series[0].Points {
		n += uint64(p["requests"].(float64))
	}
	require.Equal(t, want[region], n)

	// The raw records of that region, exported: each carries its folded
	// dimensions and its cost.
	rec := call(t, "POST", BasePath+"/export", fx.userKey, map[string]any{"startDate": fx.start.Format(time.RFC3339), "endDate": fx.end.Format(time.RFC3339),
		"format": "ndjson", "fields": []string{"id", "cost", "dimensions"}, "filters": map[string]any{"dimensions": map[string]any{"region": region}}})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	lines := strings.Split(strings.TrimSpace(rec.Body.String()), "\n")
	require.Len(t, lines, int(want[region]))
	for _, l := range lines {
		var row struct {
			Cost       uint64            `json:"cost"`
			Dimensions map[string]string `json:"dimensions"`
		}
		require.NoError(t, json.Unmarshal([]byte(l), &row), l)
		require.Equal(t, map[string]string{"region": region}, row.Dimensions)
		require.Equal(t, uint64(1), row.Cost)
	}
	// The rollup of dimensions exports the same total for the region.
	rec = call(t, "POST", BasePath+"/export", fx.userKey, map[string]any{"startDate": fx.start.Format(time.RFC3339), "endDate": fx.end.Format(time.RFC3339),
		"format": "ndjson", "dataset": "dimensions", "fields": []string{"dimension", "value", "requests"}, "filters": map[string]any{"dimensions": map[string]any{"region": region}}})
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var total uint64
	for _, l := range strings.Split(strings.TrimSpace(rec.Body.String()), "\n") {
		var row struct {
			Dimension, Value string
			Requests         uint64
		}
		require.NoError(t, json.Unmarshal([]byte(l), &row), l)
		require.Equal(t, "region", row.Dimension)
		require.Equal(t, region, row.Value)
		total += row.Requests
	}
	require.Equal(t, want[region], total)
	rec = call(t, "POST", BasePath+"/export", fx.userKey, map[string]any{"startDate": fx.start.Format(time.RFC3339), "endDate": fx.end.Format(time.RFC3339),
		"format": "csv", "dataset": "hourly", "filters": map[string]any{"dimensions": map[string]any{"region": region}}})
	require.Equal(t, 400, rec.Code, "the hourly rollup has no dimensions: %s", rec.Body.String())

	for _, bad := range []map[string]any{
		{"granularity": "day", "groupBy": []string{"dimensions.color"}},
		{"granularity": "day", "filters": map[string]any{"dimensions": map[string]any{"tier": "gold"}}},
		{"granularity": "day", "filters": map[string]any{"dimensions": map[string]any{"region": 3}}},
	} {
		bad["startDate"], bad["endDate"] = fx.start.Format(time.RFC3339), fx.end.Format(time.RFC3339)
		rec := call(t, "POST", BasePath+"/time-series", fx.userKey, bad)
		require.Equal(t, 400, rec.Code, "%v: %s", bad, rec.Body.String())
	}
}

func TestDimensionsReportsCardinality(t *testing.T) {
	// The tenant admin's view of its tenant, computed from the records.
	kept := keptRegions(fx.tenant)
	counts := map[string]uint64{}
	var with, other uint64
	for _, r := range fx.recs {
		v, ok := r.Metadata["region"]
		if !ok || r.TenantID != fx.tenant {
			continue
		}
		with++
		if !kept[v] {
			other++
			continue
		}
		counts[v]++
	}
	require.Positive(t, other, "the fourth region was folded")
	q := url.Values{"startDate": {fx.start.Format(time.RFC3339)}, "endDate": {fx.end.Format(time.RFC3339)}, "limit": {"2"}}
	var res DimensionsResponse
	callJSON(t, "GET", BasePath+"/dimensions?"+q.Encode(), fx.tenantAdminKey, nil, 200, &res)
	require.Len(t, res.Dimensions, 2)
	region, tier := res.Dimensions[0], res.Dimensions[1]
	require.Equal(t, "region", region.Name)
	require.Equal(t, 3, region.Cap)
	require.Equal(t, with, region.Requests)
	require.Equal(t, uint64(3), region.DistinctValues)
	require.Equal(t, other, region.OtherRequests)
	require.Zero(t, region.InvalidRequests)
	// The two busiest values, folded ones included, busiest first.
	all := map[string]uint64{dims.Other: other}
	for v, n := range counts {
		all[v] = n
	}
	var names []string
	for v := range all {
		names = append(names, v)
	}
	slices.SortFunc(names, func(a, b string) int {
		if all[a] != all[b] {
			if all[a] > all[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	require.Len(t, region.Values, 2)
	for i, v := range region.Values {
		require.Equal(t, names[i], v.Value)
		require.Equal(t, all[names[i]], v.Requests)
	}
	require.Equal(t, "tier", tier.Name)
	require.Zero(t, tier.Requests)
	require.Empty(t, tier.Values)

	// A user key sees its own records only.
	var mine uint64
	for _, r := range fx.recs {
		if _, ok := r.Metadata["region"]; ok && r.TenantID == fx.tenant && r.UserID == fx.user {
			mine++
		}
	}
	callJSON(t, "GET", BasePath+"/dimensions?"+q.Encode(), fx.userKey, nil, 200, &res)
	require.Equal(t, mine, res.Dimensions[0].Requests)
	require.Equal(t, 403, call(t, "GET", BasePath+"/dimensions?tenantId="+fx.otherTenant, fx.userKey, nil).Code)
	require.Equal(t, 400, call(t, "GET", BasePath+"/dimensions?endpoint=/x", fx.userKey, nil).Code)
}
