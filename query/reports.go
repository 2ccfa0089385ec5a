package query

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/apimeter/apimeter/store"
)

// aggregate runs one plan and returns its rows.
func (s *Service) aggregate(ctx context.Context, n need, orderBy string, limit int) ([]aggRow, string, error) {
	n.now = s.now()
	p, err := newPlan(n)
	if err != nil {
		return nil, "", err
	}
	p.OrderBy, p.Limit = orderBy, limit
	rows, err := p.run(ctx, s.db)
	return rows, p.src.name, err
}

// Total is an aggregate over a whole range.
func (s *Service) Total(ctx context.Context, sc Scope, r Range, f Filters, users bool) (Aggregate, error) {
	if err := s.checkRange(r, GrainNone); err != nil {
		return Aggregate{}, err
	}
	// Every count and sum, and the percentiles.
	if !users {
		return s.total(ctx, need{scope: sc, rng: r, metrics: []Metric{Requests, P50ResponseTime}, filters: f})
	}
	// Unique users need per-user rows, percentiles need the sketches: no
	// rollup has both, so two reads at once instead of one of raw rows.
	var a, u Aggregate
	var errA, errU error
	var wg sync.WaitGroup
	wg.Go(func() {
		a, errA = s.total(ctx, need{scope: sc, rng: r, metrics: []Metric{Requests, P50ResponseTime}, filters: f})
	})
	wg.Go(func() {
		u, errU = s.total(ctx, need{scope: sc, rng: r, metrics: []Metric{Requests, UniqueUsers}, filters: f})
	})
	wg.Wait()
	if err := errors.Join(errA, errU); err != nil {
		return Aggregate{}, err
	}
	a.Users = u.Users
	return a, nil
}

func (s *Service) total(ctx context.Context, n need) (Aggregate, error) {
	rows, _, err := s.aggregate(ctx, n, "", 0)
	if err != nil || len(rows) == 0 {
		return Aggregate{}, err
	}
	return rows[0].agg, nil
}

// Breakdown is the total of one value of a dimension.
type Breakdown struct {
	Key []string // one value per dimension asked
	Aggregate
}

// Breakdown totals the range by the given dimensions, largest first
// (by requests), at most limit rows (0: all).
func (s *Service) Breakdown(ctx context.Context, sc Scope, r Range, f Filters, dims []Dimension, latency bool, limit int) ([]Breakdown, error) {
	if err := s.checkRange(r, GrainNone); err != nil {
		return nil, err
	}
	ms := []Metric{Requests}
	if latency {
		ms = append(ms, P50ResponseTime)
	}
	rows, _, err := s.aggregate(ctx, need{scope: sc, rng: r, metrics: ms, dims: dims, filters: f}, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]Breakdown, len(rows))
	for i, row := range rows {
		out[i] = Breakdown{Key: row.dims, Aggregate: row.agg}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Requests != out[j].Requests {
			return out[i].Requests > out[j].Requests
		}
		return fmt.Sprint(out[i].Key) < fmt.Sprint(out[j].Key)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RankBy orders top users.
type RankBy string

const (
	RankRequests     RankBy = "requests"
	RankErrors       RankBy = "errors"
	RankResponseTime RankBy = "responseTime"
	RankBytes        RankBy = "bytes"
)

var rankOrder = map[RankBy]string{
	RankRequests:     "agg_requests DESC",
	RankErrors:       "agg_5xx DESC, agg_requests DESC",
	RankResponseTime: "agg_time_sum / agg_requests DESC",
	RankBytes:        "agg_request_bytes + agg_response_bytes DESC",
}

// UserRank is one row of top users.
type UserRank struct {
	Tenant string
	User   string
	Aggregate
}

// TopUsers ranks the users of the scope's tenant (of every tenant when
// the scope has none) by rank, at most limit.
func (s *Service) TopUsers(ctx context.Context, sc Scope, r Range, f Filters, rank RankBy, limit int) ([]UserRank, error) {
	if err := s.checkRange(r, GrainNone); err != nil {
		return nil, err
	}
	order, ok := rankOrder[rank]
	if !ok {
		return nil, invalid("sortBy %q: want requests, errors, responseTime or bytes", rank)
	}
	if limit < 1 || limit > 1000 {
		return nil, invalid("limit %d: want 1 to 1000", limit)
	}
	rows, _, err := s.aggregate(ctx, need{scope: sc, rng: r, metrics: []Metric{Requests}, dims: []Dimension{DimTenant, DimUser}, filters: f},
		order+", d_tenant_id, d_user_id", limit)
	if err != nil {
		return nil, err
	}
	out := make([]UserRank, len(rows))
	for i, row := range rows {
		out[i] = UserRank{Tenant: row.dims[0], User: row.dims[1], Aggregate: row.agg}
	}
	return out, nil
}

// HealthWindow is how far back health looks.
const HealthWindow = 5 * time.Minute

// Thresholds are the health limits (API_HEALTH_*, API_SLOW_RESPONSE_THRESHOLD).
type Thresholds struct {
	Degraded  float64       // error rate, percent
	Unhealthy float64       // error rate, percent
	Slow      time.Duration // average response time
	// MinRequests is the least traffic an endpoint needs in the window to
	// be judged on its own (one failed call of a rarely used endpoint is
	// not an outage). Default 5.
	MinRequests uint64
}

// Health statuses.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
)

// Issue is one breached threshold.
type Issue struct {
	Scope     string  `json:"scope"` // "global" or "endpoint"
	Endpoint  string  `json:"endpoint,omitempty"`
	Method    string  `json:"method,omitempty"`
	Metric    string  `json:"metric"` // "errorRate" or "averageResponseTime"
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Status    string  `json:"status"`
}

// HealthReport is the state of the last HealthWindow.
type HealthReport struct {
	Status          string
	Requests        uint64
	RequestsPerMin  float64
	ErrorRate       float64
	AvgResponseTime float64
	ActiveEndpoints int
	Issues          []Issue
	// Endpoints are the endpoints with enough traffic to be judged (see
	// Thresholds.MinRequests), with their values, breaching or not.
	Endpoints []EndpointHealth
	CheckedAt time.Time
	Window    Range
}

// EndpointHealth is one endpoint's values over the health window.
type EndpointHealth struct {
	Endpoint        string
	Method          string
	Requests        uint64
	ErrorRate       float64
	AvgResponseTime float64
}

// Health judges the last five complete minutes (from the minute rollup:
// the cost does not grow with the data kept), globally and per endpoint.
func (s *Service) Health(ctx context.Context, sc Scope, th Thresholds) (HealthReport, error) {
	if th.MinRequests == 0 {
		th.MinRequests = 5
	}
	now := s.now().UTC()
	end := now.Truncate(time.Minute)
	r := Range{Start: end.Add(-HealthWindow), End: end, Loc: time.UTC}
	rows, _, err := s.aggregate(ctx, need{scope: sc, rng: r, metrics: []Metric{Requests}, dims: []Dimension{DimEndpoint, DimMethod}}, "", 0)
	if err != nil {
		return HealthReport{}, err
	}
	rep := HealthReport{Status: Healthy, CheckedAt: now, Window: r, Issues: []Issue{}}
	var total Aggregate
	for _, row := range rows {
		total.Requests += row.agg.Requests
		total.Errors5xx += row.agg.Errors5xx
		total.TimeSumUs += row.agg.TimeSumUs
	}
	endpoints := map[string]bool{}
	for _, row := range rows {
		endpoints[row.dims[0]] = true
	}
	rep.Requests = total.Requests
	rep.RequestsPerMin = float64(total.Requests) / HealthWindow.Minutes()
	rep.ErrorRate = total.Value(ErrorRate)
	rep.AvgResponseTime = total.Value(AvgResponseTime)
	rep.ActiveEndpoints = len(endpoints)
	rep.Status, rep.Issues = judge(total, "global", "", "", th, rep.Issues)
	sort.Slice(rows, func(i, j int) bool { return fmt.Sprint(rows[i].dims) < fmt.Sprint(rows[j].dims) })
	for _, row := range rows {
		if row.agg.Requests < th.MinRequests {
			continue
		}
		rep.Endpoints = append(rep.Endpoints, EndpointHealth{Endpoint: row.dims[0], Method: row.dims[1], Requests: row.agg.Requests,
			ErrorRate: row.agg.Value(ErrorRate), AvgResponseTime: row.agg.Value(AvgResponseTime)})
		_, rep.Issues = judge(row.agg, "endpoint", row.dims[0], row.dims[1], th, rep.Issues)
	}
	return rep, nil
}

// judge compares an aggregate with the thresholds, appending an issue per
// breach; it returns the status they amount to.
func judge(a Aggregate, scope, endpoint, method string, th Thresholds, issues []Issue) (string, []Issue) {
	status := Healthy
	if a.Requests == 0 {
		return status, issues
	}
	issue := func(metric string, value, threshold float64, st string) {
		issues = append(issues, Issue{Scope: scope, Endpoint: endpoint, Method: method, Metric: metric, Value: value, Threshold: threshold, Status: st})
		if st == Unhealthy || status == Healthy {
			status = st
		}
	}
	er := a.Value(ErrorRate)
	switch {
	case er >= th.Unhealthy:
		issue("errorRate", er, th.Unhealthy, Unhealthy)
	case er >= th.Degraded:
		issue("errorRate", er, th.Degraded, Degraded)
	}
	if avg := a.Value(AvgResponseTime); avg > float64(th.Slow.Milliseconds()) {
		issue("averageResponseTime", avg, float64(th.Slow.Milliseconds()), Degraded)
	}
	return status, issues
}

// Storage is what one table holds.
type Storage struct {
	Table            string `json:"table"`
	Rows             uint64 `json:"rows"`
	BytesOnDisk      uint64 `json:"bytesOnDisk"`
	UncompressedSize uint64 `json:"uncompressedBytes"`
	Parts            uint64 `json:"parts"`
}

// Storage lists the tables' sizes (active parts).
func (s *Service) Storage(ctx context.Context) ([]Storage, error) {
	rows, err := s.db.Query(ctx, `SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), count()
		FROM system.parts WHERE database = currentDatabase() AND active GROUP BY table ORDER BY sum(bytes_on_disk) DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Storage{}
	for rows.Next() {
		var st Storage
		if err := rows.Scan(&st.Table, &st.Rows, &st.BytesOnDisk, &st.UncompressedSize, &st.Parts); err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// DeadLetters counts rejected records by reason in a range.
func (s *Service) DeadLetters(ctx context.Context, r Range) (map[string]uint64, error) {
	rows, err := s.db.Query(ctx, `SELECT reason, count() FROM ingest_rejections
		WHERE rejected_at >= {start:DateTime64(3, 'UTC')} AND rejected_at < {end:DateTime64(3, 'UTC')} GROUP BY reason`,
		store.Named("start", r.Start), store.Named("end", r.End))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var reason string
		var n uint64
		if err := rows.Scan(&reason, &n); err != nil {
			return nil, err
		}
		out[reason] = n
	}
	return out, rows.Err()
}

// RecentRequests counts a user's requests in the last window (a sliding
// hour for rate limits), from raw records — sorted by tenant and user, so
// the read is the user's own rows.
func (s *Service) RecentRequests(ctx context.Context, sc Scope, window time.Duration) (uint64, error) {
	now := s.now()
	rows, _, err := s.aggregate(ctx, need{scope: sc, rng: Range{Start: now.Add(-window), End: now, Loc: time.UTC}, metrics: []Metric{Requests}}, "", 0)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	return rows[0].agg.Requests, nil
}

// BillableRow is a user's usage of an endpoint on one UTC day, leaving
// out the requests a limit refused (status 429).
type BillableRow struct {
	User     string
	Day      time.Time
	Endpoint string
	// Requests counts each request by its cost (1 unless the record
	// said otherwise): what quotas count.
	Requests uint64
}

// BillableUsage reads the daily usage bills and quotas are made of, for
// a tenant's user (or every user when sc.User is empty), in [start, end):
// requests counted by their cost (1 unless the record said otherwise).
func (s *Service) BillableUsage(ctx context.Context, sc Scope, start, end time.Time) ([]BillableRow, error) {
	rows, err := s.db.Query(ctx, `SELECT user_id, bucket, endpoint, sum(cost) FROM usage_daily
		WHERE tenant_id = {tenant:String} AND ({user:String} = '' OR user_id = {user:String})
		  AND bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')} AND status_code != 429
		GROUP BY user_id, bucket, endpoint ORDER BY user_id, bucket, endpoint`,
		store.Named("tenant", sc.Tenant), store.Named("user", sc.User), store.Named("start", start.UTC()), store.Named("end", end.UTC()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BillableRow
	for rows.Next() {
		var r BillableRow
		if err := rows.Scan(&r.User, &r.Day, &r.Endpoint, &r.Requests); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
