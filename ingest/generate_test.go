package ingest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGeneratorStaysInSpanAndRepeats(t *testing.T) {
	cfg := GeneratorConfig{Seed: 5, Count: 50000, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Span: 30 * 24 * time.Hour, FeatureShare: 0.1}
	run := func() []Record {
		g := NewGenerator(cfg)
		var out []Record
		var r Record
		for g.Next(&r) {
			out = append(out, r)
		}
		return out
	}
	a, b := run(), run()
	require.Len(t, a, cfg.Count)
	require.Equal(t, a, b, "same seed, same records")
	from, to := cfg.Start.UnixMilli(), cfg.Start.Add(cfg.Span).UnixMilli()
	ids := map[string]bool{}
	features := 0
	last := int64(0)
	for i, r := range a {
		require.GreaterOrEqual(t, r.EventTimeMs, from, i)
		require.Less(t, r.EventTimeMs, to, i)
		require.GreaterOrEqual(t, r.EventTimeMs, last-int64(cfg.Span/time.Millisecond)/int64(cfg.Count), "times advance")
		last = r.EventTimeMs
		require.False(t, ids[r.ID], "ids are unique")
		ids[r.ID] = true
		if r.Type == TypeFeature {
			features++
			require.Positive(t, r.Quantity)
			continue
		}
		require.NotEmpty(t, r.Endpoint)
		require.GreaterOrEqual(t, r.StatusCode, uint16(200))
		require.Less(t, r.StatusCode, uint16(600))
	}
	require.InDelta(t, 0.1, float64(features)/float64(cfg.Count), 0.02)
	require.Greater(t, a[len(a)-1].EventTimeMs, to-int64(time.Hour/time.Millisecond), "the span is covered to its end")
}
