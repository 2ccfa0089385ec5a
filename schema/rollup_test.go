package schema

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// The rollup tests load generated records (several tenants, users,
// endpoints, statuses and latencies over four days that include the end of
// daylight saving time in Europe/Berlin) and compare every rollup with the
// same aggregates computed here in Go from the records.

type sums struct {
	requests, e4xx, e5xx, rtSum, rtMax, reqBytes, respBytes uint64
}

func (s *sums) add(r *ingest.Record) {
	s.requests++
	if r.StatusCode >= 400 && r.StatusCode < 500 {
		s.e4xx++
	}
	if r.StatusCode >= 500 {
		s.e5xx++
	}
	s.rtSum += r.ResponseTimeUs
	s.rtMax = max(s.rtMax, r.ResponseTimeUs)
	s.reqBytes += r.RequestBytes
	s.respBytes += r.ResponseBytes
}

type usageKey struct {
	tenant, user, endpoint, method string
	status                         uint16
	bucket                         int64
}

type endpointKey struct {
	tenant, endpoint, method string
	class                    uint8
	bucket                   int64
}

type featureKey struct {
	tenant, user, feature string
	bucket                int64
}

type featureSums struct {
	events   uint64
	quantity float64
}

type expected struct {
	usage     map[string]map[usageKey]sums    // by rollup name
	endpoint  map[string]map[endpointKey]sums // by rollup name
	latencies map[string]map[endpointKey][]uint64
	features  map[featureKey]featureSums
	records   []ingest.Record
}

func bucketOf(ms int64, d time.Duration) int64 {
	return time.UnixMilli(ms).UTC().Truncate(d).Unix()
}

func expect(records []ingest.Record, minutes bool) *expected {
	e := &expected{
		usage:     map[string]map[usageKey]sums{"usage_hourly": {}, "usage_daily": {}, "user_hourly": {}, "user_daily": {}},
		endpoint:  map[string]map[endpointKey]sums{"endpoint_hourly": {}, "endpoint_daily": {}},
		latencies: map[string]map[endpointKey][]uint64{"endpoint_hourly": {}, "endpoint_daily": {}},
		features:  map[featureKey]featureSums{},
		records:   records,
	}
	grains := map[string]time.Duration{"hourly": time.Hour, "daily": 24 * time.Hour}
	if minutes {
		// endpoint_minute keeps two days: only recent records land there.
		grains["minute"] = time.Minute
		e.endpoint["endpoint_minute"] = map[endpointKey]sums{}
		e.latencies["endpoint_minute"] = map[endpointKey][]uint64{}
	}
	for i := range records {
		r := &records[i]
		if r.Type == ingest.TypeFeature {
			k := featureKey{r.TenantID, r.UserID, r.Feature, bucketOf(r.EventTimeMs, 24*time.Hour)}
			f := e.features[k]
			f.events++
			f.quantity += r.Quantity
			e.features[k] = f
			continue
		}
		for g, d := range grains {
			b := bucketOf(r.EventTimeMs, d)
			if g != "minute" {
				uk := usageKey{r.TenantID, r.UserID, r.Endpoint, r.Method, r.StatusCode, b}
				s := e.usage["usage_"+g][uk]
				s.add(r)
				e.usage["usage_"+g][uk] = s
				// user_* rollups: the same sums without endpoint, method, status.
				uk = usageKey{tenant: r.TenantID, user: r.UserID, bucket: b}
				s = e.usage["user_"+g][uk]
				s.add(r)
				e.usage["user_"+g][uk] = s
			}
			ek := endpointKey{r.TenantID, r.Endpoint, r.Method, uint8(r.StatusCode / 100), b}
			s := e.endpoint["endpoint_"+g][ek]
			s.add(r)
			e.endpoint["endpoint_"+g][ek] = s
			e.latencies["endpoint_"+g][ek] = append(e.latencies["endpoint_"+g][ek], r.ResponseTimeUs)
		}
	}
	return e
}

func loadRecords(t *testing.T, db store.Driver, records []ingest.Record, blocks int) {
	t.Helper()
	per := (len(records) + blocks - 1) / blocks
	for start := 0; start < len(records); start += per {
		var u ingest.UsageColumns
		var f ingest.FeatureColumns
		for i := start; i < min(start+per, len(records)); i++ {
			if records[i].Type == ingest.TypeFeature {
				f.Append(&records[i])
			} else {
				u.Append(&records[i])
			}
		}
		tok := fmt.Sprintf("test:%d", start)
		require.NoError(t, db.Insert(context.Background(), "usage_events", u.Block(), store.InsertOptions{DedupToken: tok}))
		if f.Len() > 0 {
			require.NoError(t, db.Insert(context.Background(), "feature_usage", f.Block(), store.InsertOptions{DedupToken: tok}))
		}
	}
}

func generate(cfg ingest.GeneratorConfig) []ingest.Record {
	g := ingest.NewGenerator(cfg)
	var out []ingest.Record
	var r ingest.Record
	for g.Next(&r) {
		out = append(out, r)
	}
	return out
}

func migrated(t *testing.T) store.Driver {
	t.Helper()
	db := storetest.Open(t)
	m, err := NewMigrator(db, Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return db
}

func queryRows(t *testing.T, db store.Driver, q string, each func(r store.Rows)) {
	t.Helper()
	rows, err := db.Query(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		each(rows)
	}
	require.NoError(t, rows.Err())
}

func checkUsage(t *testing.T, db store.Driver, e *expected) {
	t.Helper()
	for table, want := range e.usage {
		got := map[usageKey]sums{}
		dims := "endpoint, method, status_code"
		if strings.HasPrefix(table, "user_") {
			dims = "'', '', toUInt16(0)"
		}
		queryRows(t, db, `SELECT tenant_id, user_id, `+dims+`, toUnixTimestamp(bucket),
			sum(requests), sum(errors_4xx), sum(errors_5xx), sum(response_time_sum_us), max(response_time_max_us),
			sum(request_bytes), sum(response_bytes)
			FROM `+table+` GROUP BY ALL`, func(r store.Rows) {
			var k usageKey
			var s sums
			require.NoError(t, r.Scan(&k.tenant, &k.user, &k.endpoint, &k.method, &k.status, &k.bucket,
				&s.requests, &s.e4xx, &s.e5xx, &s.rtSum, &s.rtMax, &s.reqBytes, &s.respBytes))
			got[k] = s
		})
		require.Equal(t, len(want), len(got), table)
		for k, w := range want {
			require.Equal(t, w, got[k], "%s %+v", table, k)
		}
	}
}

// ddError is the relative accuracy the endpoint rollups' sketch states.
const ddError = 0.01

// withinSketch reports whether got is an acceptable q-quantile of sorted:
// within the sketch's relative error of the value at rank q·(n-1).
func withinSketch(sorted []uint64, q, got float64) bool {
	rank := q * float64(len(sorted)-1)
	lo := float64(sorted[int(math.Floor(rank))])
	hi := float64(sorted[int(math.Ceil(rank))])
	return got >= lo*(1-ddError)-1e-9 && got <= hi*(1+ddError)+1e-9
}

func checkEndpoint(t *testing.T, db store.Driver, e *expected) {
	t.Helper()
	levels := []float64{0.5, 0.95, 0.99}
	for table, want := range e.endpoint {
		got := map[endpointKey]sums{}
		quantiles := map[endpointKey][]float64{}
		queryRows(t, db, `SELECT tenant_id, endpoint, method, status_class, toUnixTimestamp(bucket),
			sum(requests), sum(errors_4xx), sum(errors_5xx), sum(response_time_sum_us), max(response_time_max_us),
			sum(request_bytes), sum(response_bytes), quantilesDDMerge(0.01, 0.5, 0.95, 0.99)(latency_us)
			FROM `+table+` GROUP BY ALL`, func(r store.Rows) {
			var k endpointKey
			var s sums
			var q []float64
			require.NoError(t, r.Scan(&k.tenant, &k.endpoint, &k.method, &k.class, &k.bucket,
				&s.requests, &s.e4xx, &s.e5xx, &s.rtSum, &s.rtMax, &s.reqBytes, &s.respBytes, &q))
			got[k] = s
			quantiles[k] = q
		})
		require.Equal(t, len(want), len(got), table)
		for k, w := range want {
			require.Equal(t, w, got[k], "%s %+v", table, k)
			lat := slices.Clone(e.latencies[table][k])
			slices.Sort(lat)
			for i, q := range levels {
				require.True(t, withinSketch(lat, q, quantiles[k][i]), "%s %+v p%v: got %v, exact %v", table, k, q*100, quantiles[k][i], lat[int(q*float64(len(lat)-1))])
			}
		}
	}
}

func checkFeatures(t *testing.T, db store.Driver, e *expected) {
	t.Helper()
	got := map[featureKey]featureSums{}
	queryRows(t, db, `SELECT tenant_id, user_id, feature, toUnixTimestamp(bucket), sum(events), sum(quantity)
		FROM feature_usage_daily GROUP BY ALL`, func(r store.Rows) {
		var k featureKey
		var f featureSums
		require.NoError(t, r.Scan(&k.tenant, &k.user, &k.feature, &k.bucket, &f.events, &f.quantity))
		got[k] = f
	})
	require.Equal(t, e.features, got)
}

// checkLocalDays folds hourly buckets into calendar days of a zone with a
// DST change and compares with days computed in Go: the day the clocks go
// back has 25 hours.
func checkLocalDays(t *testing.T, db store.Driver, e *expected, zone string) {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	require.NoError(t, err)
	type day struct {
		requests uint64
		hours    map[int64]bool
	}
	want := map[string]*day{}
	for _, r := range e.records {
		if r.Type == ingest.TypeFeature {
			continue
		}
		d := time.UnixMilli(r.EventTimeMs).In(loc).Format(time.DateOnly)
		if want[d] == nil {
			want[d] = &day{hours: map[int64]bool{}}
		}
		want[d].requests++
		want[d].hours[bucketOf(r.EventTimeMs, time.Hour)] = true
	}
	got := map[string]*day{}
	queryRows(t, db, `SELECT toString(toDate(bucket, '`+zone+`')) AS d, sum(requests), uniqExact(bucket)
		FROM usage_hourly GROUP BY d`, func(r store.Rows) {
		var d string
		var n, hours uint64
		require.NoError(t, r.Scan(&d, &n, &hours))
		got[d] = &day{requests: n, hours: map[int64]bool{int64(hours): true}}
	})
	require.Equal(t, len(want), len(got))
	sawLongDay := false
	for d, w := range want {
		require.Equal(t, w.requests, got[d].requests, d)
		require.True(t, got[d].hours[int64(len(w.hours))], "%s: %d hours", d, len(w.hours))
		sawLongDay = sawLongDay || len(w.hours) == 25
	}
	require.True(t, sawLongDay, "the data should span the 25-hour day")
}

var dstWeek = ingest.GeneratorConfig{
	Seed:         7,
	Tenants:      3,
	Users:        40,
	Endpoints:    12,
	Start:        time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC),
	Span:         4 * 24 * time.Hour,
	Count:        40000,
	FeatureShare: 0.05,
}

func TestRollupsMatchRecords(t *testing.T) {
	db := migrated(t)
	records := generate(dstWeek)
	loadRecords(t, db, records, 7)
	e := expect(records, false)
	checkUsage(t, db, e)
	checkEndpoint(t, db, e)
	checkFeatures(t, db, e)
	checkLocalDays(t, db, e, "Europe/Berlin")
}

func TestMinuteRollupMatchesRecords(t *testing.T) {
	db := migrated(t)
	now := time.Now().UTC().Truncate(time.Minute)
	records := generate(ingest.GeneratorConfig{Seed: 21, Count: 20000, Start: now.Add(-90 * time.Minute), Span: time.Hour, Endpoints: 8})
	loadRecords(t, db, records, 4)
	e := expect(records, true)
	checkEndpoint(t, db, e)
}

func TestReplayedInsertCountsOnce(t *testing.T) {
	db := migrated(t)
	records := generate(ingest.GeneratorConfig{Seed: 3, Count: 3000, FeatureShare: 0.1})
	loadRecords(t, db, records, 3)
	// The same blocks again, with the same tokens, as after a crash.
	loadRecords(t, db, records, 3)
	e := expect(records, false)
	checkUsage(t, db, e)
	checkEndpoint(t, db, e)
	checkFeatures(t, db, e)
}

func TestRebuildReproducesRollups(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	records := generate(dstWeek)
	loadRecords(t, db, records, 5)
	e := expect(records, false)

	// A lost rollup is rebuilt from raw records...
	for _, r := range Rollups {
		require.NoError(t, db.Exec(ctx, "TRUNCATE TABLE "+r))
	}
	now := dstWeek.Start.Add(30 * 24 * time.Hour)
	rng, err := Rebuild(ctx, db, Single, dstWeek.Start, dstWeek.Start.Add(dstWeek.Span), now, false)
	require.NoError(t, err)
	require.Equal(t, dstWeek.Start, rng.From)
	checkUsage(t, db, e)
	checkEndpoint(t, db, e)
	checkFeatures(t, db, e)

	// ...a second rebuild of the same range changes nothing (identical
	// blocks must not be taken for replays)...
	_, err = Rebuild(ctx, db, Single, dstWeek.Start, dstWeek.Start.Add(dstWeek.Span), now, false)
	require.NoError(t, err)
	checkUsage(t, db, e)
	checkEndpoint(t, db, e)

	// ...and a range inside the data, not on day boundaries, is widened to
	// whole days and leaves the other days alone.
	mid := dstWeek.Start.Add(36*time.Hour + 17*time.Minute)
	rng, err = Rebuild(ctx, db, Single, mid, mid.Add(3*time.Hour), now, false)
	require.NoError(t, err)
	require.Equal(t, dstWeek.Start.Add(24*time.Hour), rng.From)
	require.Equal(t, dstWeek.Start.Add(48*time.Hour), rng.To)
	checkUsage(t, db, e)
	checkEndpoint(t, db, e)
	checkFeatures(t, db, e)
}

func TestRebuildRefusesRecentRange(t *testing.T) {
	db := migrated(t)
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	_, err := Rebuild(context.Background(), db, Single, now.Add(-2*time.Hour), now, now, false)
	require.ErrorContains(t, err, "records may still arrive")
	_, err = Rebuild(context.Background(), db, Single, now, now.Add(-time.Hour), now, true)
	require.ErrorContains(t, err, "after --from")
	_, err = Rebuild(context.Background(), db, Single, now.Add(-2*time.Hour), now, now, true)
	require.NoError(t, err)
}

func TestDayRange(t *testing.T) {
	d := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	r := DayRange(d("2026-03-29T01:30:00+01:00"), d("2026-03-30T00:00:00Z"))
	require.Equal(t, d("2026-03-29T00:00:00Z"), r.From)
	require.Equal(t, d("2026-03-30T00:00:00Z"), r.To)
	r = DayRange(d("2026-03-29T00:00:00Z"), d("2026-03-29T00:00:00.001Z"))
	require.Equal(t, d("2026-03-30T00:00:00Z"), r.To)
}
