package query

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/apimeter/apimeter/store"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

var aggregateSQL = template.Must(template.ParseFS(sqlFiles, "sql/aggregate.sql"))

// DB is what the query package needs of a store.
type DB interface {
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

type dimExpr struct {
	Dim   Dimension
	Expr  string
	Alias string
}

type filterExpr struct {
	Expr, Param, Type string
}

// plan is one aggregate query: its source and the rendered pieces.
type plan struct {
	src     source
	grain   Granularity
	rng     Range
	Bucket  string
	Dims    []dimExpr
	Agg     aggregates
	Latency bool
	Users   bool
	Table   string
	TimeCol string
	Tenant  bool
	User    bool
	Filters []filterExpr
	// Conds are further conditions, fixed text with parameters.
	Conds   []string
	OrderBy string
	Limit   int
	// Settings are the query's SETTINGS clause, if any.
	Settings string
	params   []store.Param
}

var aliases = map[Dimension]string{
	DimEndpoint: "d_endpoint", DimMethod: "d_method", DimStatusCode: "d_status_code",
	DimStatusClass: "d_status_class", DimUser: "d_user_id", DimTenant: "d_tenant_id",
}

// newPlan chooses the source for n and prepares the query.
func newPlan(n need) (*plan, error) { return planFrom(choose(n), n) }

// planFrom prepares the query of n on the given source.
func planFrom(src source, n need) (*plan, error) {
	p := &plan{
		src: src, grain: n.grain, rng: n.rng,
		Bucket: src.bucketExpr(n.grain), Agg: src.aggregates(), Table: src.table, TimeCol: src.timeCol,
		Tenant: n.scope.Tenant != "", User: n.scope.User != "",
	}
	if p.User && !src.raw {
		// One user's rollup rows: a few granules. A single thread reads
		// them without handing work to the pool, which on a busy machine
		// costs more than the read (it sets the tail latency).
		p.Settings = "max_threads = 1"
	}
	for _, m := range n.metrics {
		p.Latency = p.Latency || m.latency()
		p.Users = p.Users || m == UniqueUsers
	}
	if p.Users && !p.Tenant {
		// Over several tenants a user is a (tenant, user) pair.
		p.Agg.Users = "uniqExact(tenant_id, user_id)"
	}
	if n.only {
		// Read only the columns the metrics need: on a small read, each
		// column of each part is a fixed cost.
		used := func(ms ...Metric) bool {
			return slices.ContainsFunc(n.metrics, func(m Metric) bool { return slices.Contains(ms, m) })
		}
		keep := func(expr *string, ms ...Metric) {
			if !used(ms...) {
				*expr = ""
			}
		}
		keep(&p.Agg.Errors4xx, ClientErrors, ClientErrorRate)
		keep(&p.Agg.Errors5xx, Errors, ErrorRate)
		keep(&p.Agg.TimeSum, AvgResponseTime)
		keep(&p.Agg.TimeMax, MaxResponseTime)
		keep(&p.Agg.RequestBytes, RequestBytes)
		keep(&p.Agg.ResponseBytes, ResponseBytes)
	}
	if !slices.Contains(n.metrics, Cost) {
		p.Agg.Cost = "" // read only when asked for
	}
	p.params = []store.Param{store.Named("start", n.rng.Start), store.Named("end", n.rng.End), store.Named("tz", n.rng.Loc.String())}
	if p.Tenant {
		p.params = append(p.params, store.Named("tenant", n.scope.Tenant))
	}
	if p.User {
		p.params = append(p.params, store.Named("user", n.scope.User))
	}
	if x := n.scope.ExcludeTenant; x != "" && !p.Tenant {
		p.Conds = append(p.Conds, "tenant_id != {x_tenant:String}")
		p.params = append(p.params, store.Named("x_tenant", x))
	}
	custom := n.customNames()
	if src.dimensional && len(custom) > 1 {
		return nil, invalid("%s holds one custom dimension per row: filter by one of %s", src.name, strings.Join(custom, ", "))
	}
	for _, name := range custom {
		// The records that have the dimension: a rollup row per
		// dimension, or raw records whose map holds it.
		if src.dimensional {
			p.Conds = append(p.Conds, "dimension = {"+customParam(name)+":String}")
		} else {
			p.Conds = append(p.Conds, "mapContains(dimensions, {"+customParam(name)+":String})")
		}
		p.params = append(p.params, store.Named(customParam(name), name))
	}
	for _, d := range n.dims {
		expr, err := src.column(d)
		if err != nil {
			return nil, err
		}
		alias := aliases[d]
		if name, ok := d.Custom(); ok {
			alias = "dc_" + name
		}
		p.Dims = append(p.Dims, dimExpr{Dim: d, Expr: expr, Alias: alias})
	}
	add := func(d Dimension, param, typ string, v any) error {
		expr, err := src.column(d)
		if err != nil {
			return err
		}
		p.Filters = append(p.Filters, filterExpr{Expr: expr, Param: param, Type: typ})
		p.params = append(p.params, store.Named(param, v))
		return nil
	}
	f := n.filters
	for _, x := range []struct {
		dim        Dimension
		param, typ string
		v          any
		set        bool
	}{
		{DimEndpoint, "f_endpoint", "Array(String)", f.Endpoint, len(f.Endpoint) > 0},
		{DimMethod, "f_method", "Array(String)", f.Method, len(f.Method) > 0},
		{DimStatusCode, "f_status_code", "Array(UInt16)", f.StatusCode, len(f.StatusCode) > 0},
		{DimStatusClass, "f_status_class", "Array(UInt8)", f.StatusClass, len(f.StatusClass) > 0},
		{DimUser, "f_user", "Array(String)", f.User, len(f.User) > 0},
	} {
		if x.set {
			if err := add(x.dim, x.param, x.typ, x.v); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(f.Custom)) {
		if len(f.Custom[name]) > 0 {
			if err := add(Dimension(CustomPrefix+name), "fc_"+name, "Array(String)", f.Custom[name]); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// SQL renders the query text.
func (p *plan) SQL() (string, error) {
	var b bytes.Buffer
	if err := aggregateSQL.Execute(&b, p); err != nil {
		return "", err
	}
	return b.String(), nil
}

// SmallDB is a store that reads small results in one piece.
type SmallDB interface {
	QuerySmall(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// aggRow is one row of an aggregate query.
type aggRow struct {
	bucket int64
	dims   []string
	agg    Aggregate
}

// run executes the plan and reads its rows.
func (p *plan) run(ctx context.Context, db DB) ([]aggRow, error) {
	q, err := p.SQL()
	if err != nil {
		return nil, err
	}
	query := db.Query
	if small, ok := db.(SmallDB); ok {
		query = small.QuerySmall // aggregates are bounded by the caps
	}
	rows, err := query(ctx, q, p.params...)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", p.src.name, err)
	}
	defer rows.Close()
	var out []aggRow
	for rows.Next() {
		vals := rows.Values()
		var r aggRow
		if err := store.Assign(&r.bucket, vals[0]); err != nil {
			return nil, err
		}
		i := 1
		for _, d := range p.Dims {
			r.dims = append(r.dims, dimText(d.Dim, vals[i]))
			i++
		}
		a := &r.agg
		for _, m := range []struct {
			expr string
			dst  *uint64
		}{{p.Agg.Requests, &a.Requests}, {p.Agg.Errors4xx, &a.Errors4xx}, {p.Agg.Errors5xx, &a.Errors5xx}, {p.Agg.TimeSum, &a.TimeSumUs},
			{p.Agg.TimeMax, &a.TimeMaxUs}, {p.Agg.RequestBytes, &a.RequestBytes}, {p.Agg.ResponseBytes, &a.ResponseBytes}, {p.Agg.Cost, &a.Cost}} {
			if m.expr == "" {
				continue // not selected: the request needs no metric of it
			}
			if err := store.Assign(m.dst, vals[i]); err != nil {
				return nil, err
			}
			i++
		}
		if p.Latency {
			if err := store.Assign(&a.Latency, vals[i]); err != nil {
				return nil, err
			}
			i++
		}
		if p.Users {
			if err := store.Assign(&a.Users, vals[i]); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// dimText is a dimension's value as it appears in responses.
func dimText(d Dimension, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case uint64:
		if d == DimStatusClass {
			return strconv.FormatUint(x, 10) + "xx"
		}
		return strconv.FormatUint(x, 10)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprint(v)
}

// Aggregate is the measures of a bucket (or a range); metrics come from it.
type Aggregate struct {
	Requests      uint64
	Errors4xx     uint64
	Errors5xx     uint64
	TimeSumUs     uint64
	TimeMaxUs     uint64
	RequestBytes  uint64
	ResponseBytes uint64
	Cost          uint64
	// Latency holds p50, p90, p95, p99 in microseconds (DDSketch, 1 %
	// relative error); nil when not asked for.
	Latency []float64
	Users   uint64
}

// Value computes a metric; response times are in milliseconds, rates in
// percent.
func (a Aggregate) Value(m Metric) float64 {
	pct := func(n uint64) float64 {
		if a.Requests == 0 {
			return 0
		}
		return 100 * float64(n) / float64(a.Requests)
	}
	lat := func(i int) float64 {
		if len(a.Latency) <= i || a.Requests == 0 {
			return 0
		}
		return a.Latency[i] / 1000
	}
	switch m {
	case Requests:
		return float64(a.Requests)
	case Errors:
		return float64(a.Errors5xx)
	case ClientErrors:
		return float64(a.Errors4xx)
	case ErrorRate:
		return pct(a.Errors5xx)
	case ClientErrorRate:
		return pct(a.Errors4xx)
	case AvgResponseTime:
		if a.Requests == 0 {
			return 0
		}
		return float64(a.TimeSumUs) / float64(a.Requests) / 1000
	case P50ResponseTime:
		return lat(0)
	case P90ResponseTime:
		return lat(1)
	case P95ResponseTime:
		return lat(2)
	case P99ResponseTime:
		return lat(3)
	case MaxResponseTime:
		return float64(a.TimeMaxUs) / 1000
	case RequestBytes:
		return float64(a.RequestBytes)
	case ResponseBytes:
		return float64(a.ResponseBytes)
	case Cost:
		return float64(a.Cost)
	case UniqueUsers:
		return float64(a.Users)
	}
	return 0
}

// buckets lists the start of every bucket of g in r, in r's zone: local
// days, weeks (from Monday) and months, so a day across a DST change is 23
// or 25 hours long.
func buckets(r Range, g Granularity) []time.Time {
	if g == GrainNone {
		return []time.Time{r.Start}
	}
	first := bucketStart(r.Start.In(r.Loc), g)
	var out []time.Time
	for t := first; t.Before(r.End); t = nextBucket(t, g) {
		out = append(out, t)
	}
	return out
}

func bucketStart(t time.Time, g Granularity) time.Time {
	y, m, d := t.Date()
	switch g {
	case GrainMinute:
		return t.Truncate(time.Minute)
	case GrainHour:
		// The start of the local hour (zones with half-hour offsets too).
		_, off := t.Zone()
		shifted := t.Add(time.Duration(off) * time.Second).Truncate(time.Hour)
		return shifted.Add(-time.Duration(off) * time.Second)
	case GrainDay:
		return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
	case GrainWeek:
		wd := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-wd, 0, 0, 0, 0, t.Location())
	case GrainMonth:
		return time.Date(y, m, 1, 0, 0, 0, 0, t.Location())
	}
	return t
}

func nextBucket(t time.Time, g Granularity) time.Time {
	y, m, d := t.Date()
	switch g {
	case GrainMinute:
		return t.Add(time.Minute)
	case GrainHour:
		return bucketStart(t.Add(time.Hour), GrainHour)
	case GrainDay:
		return time.Date(y, m, d+1, 0, 0, 0, 0, t.Location())
	case GrainWeek:
		return time.Date(y, m, d+7, 0, 0, 0, 0, t.Location())
	case GrainMonth:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, t.Location())
	}
	return t
}
