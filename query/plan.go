package query

import (
	"iter"
	"slices"
	"strings"
	"time"
)

// Scope limits a query to a tenant and a user; "" means every one.
type Scope struct {
	Tenant string
	User   string
	// ExcludeTenant leaves one tenant out of a scope of every tenant:
	// global health is about the metered APIs, not apimeter's own calls
	// (recorded under their own tenant).
	ExcludeTenant string
}

// Range is the half-open span [Start, End) a query covers, and the time
// zone its buckets are cut in.
type Range struct {
	Start, End time.Time
	Loc        *time.Location
}

// Granularity is the size of a series' buckets; GrainNone is one bucket
// for the whole range.
type Granularity string

const (
	GrainNone   Granularity = ""
	GrainMinute Granularity = "minute"
	GrainHour   Granularity = "hour"
	GrainDay    Granularity = "day"
	GrainWeek   Granularity = "week"
	GrainMonth  Granularity = "month"
)

// Granularities lists the valid granularities of a series.
var Granularities = []Granularity{GrainMinute, GrainHour, GrainDay, GrainWeek, GrainMonth}

// Metric names a value of a series point or a total.
type Metric string

// PerRequest says the metric is measured over requests (a rate or a
// latency): a bucket without requests has no value for it, where counts
// are 0. Series points hold NaN there; the API writes null.
func (m Metric) PerRequest() bool {
	switch m {
	case ErrorRate, ClientErrorRate, AvgResponseTime, P50ResponseTime, P90ResponseTime, P95ResponseTime, P99ResponseTime, MaxResponseTime:
		return true
	}
	return false
}

const (
	Requests        Metric = "requests"
	Errors          Metric = "errors"       // 5xx
	ClientErrors    Metric = "clientErrors" // 4xx
	ErrorRate       Metric = "errorRate"    // percent of requests with 5xx
	ClientErrorRate Metric = "clientErrorRate"
	AvgResponseTime Metric = "averageResponseTime" // ms
	P50ResponseTime Metric = "p50ResponseTime"
	P90ResponseTime Metric = "p90ResponseTime"
	P95ResponseTime Metric = "p95ResponseTime"
	P99ResponseTime Metric = "p99ResponseTime"
	MaxResponseTime Metric = "maxResponseTime"
	RequestBytes    Metric = "requestBytes"
	ResponseBytes   Metric = "responseBytes"
	// Cost sums the records' costs: what quotas count.
	Cost        Metric = "cost"
	UniqueUsers Metric = "uniqueUsers"
)

// Metrics lists every metric.
var Metrics = []Metric{Requests, Errors, ClientErrors, ErrorRate, ClientErrorRate, AvgResponseTime,
	P50ResponseTime, P90ResponseTime, P95ResponseTime, P99ResponseTime, MaxResponseTime, RequestBytes, ResponseBytes, UniqueUsers, Cost}

func (m Metric) latency() bool {
	switch m {
	case P50ResponseTime, P90ResponseTime, P95ResponseTime, P99ResponseTime:
		return true
	}
	return false
}

// Dimension is what a series can be grouped or filtered by.
type Dimension string

const (
	DimEndpoint    Dimension = "endpoint"
	DimMethod      Dimension = "method"
	DimStatusCode  Dimension = "statusCode"
	DimStatusClass Dimension = "statusClass"
	DimUser        Dimension = "userId"
	DimTenant      Dimension = "tenantId"
)

// Dimensions lists the dimensions a request may group by, besides the
// declared custom ones.
var Dimensions = []Dimension{DimEndpoint, DimMethod, DimStatusCode, DimStatusClass, DimUser}

// CustomPrefix starts the name of a custom dimension: "dimensions.region"
// groups by the declared dimension region (package dims).
const CustomPrefix = "dimensions."

// Custom is the declared dimension d names, if it is a custom one.
func (d Dimension) Custom() (string, bool) {
	name, ok := strings.CutPrefix(string(d), CustomPrefix)
	return name, ok && name != ""
}

// Filters narrow a query to some values of dimensions.
type Filters struct {
	Endpoint    []string `json:"endpoint,omitempty"`
	Method      []string `json:"method,omitempty"`
	StatusCode  []int    `json:"statusCode,omitempty"`
	StatusClass []int    `json:"statusClass,omitempty"` // 2 for 2xx…
	User        []string `json:"userId,omitempty"`
	// Custom filters declared dimensions: name → the values kept.
	Custom map[string][]string `json:"dimensions,omitempty"`
}

// Empty says no filter is set.
func (f Filters) Empty() bool {
	return len(f.Endpoint)+len(f.Method)+len(f.StatusCode)+len(f.StatusClass)+len(f.User)+len(f.Custom) == 0
}

func (f Filters) has(d Dimension) bool {
	switch d {
	case DimEndpoint:
		return len(f.Endpoint) > 0
	case DimMethod:
		return len(f.Method) > 0
	case DimStatusCode:
		return len(f.StatusCode) > 0
	case DimStatusClass:
		return len(f.StatusClass) > 0
	case DimUser:
		return len(f.User) > 0
	}
	if name, ok := d.Custom(); ok {
		return len(f.Custom[name]) > 0
	}
	return false
}

// source is a table a query can read, and how.
type source struct {
	name     string
	table    string
	timeCol  string        // what the range filters on
	grain    time.Duration // bucket size of a rollup; 0 for raw records
	retained time.Duration // how far back it reaches; 0 for as long as kept
	users    bool          // has user_id
	detail   bool          // has endpoint, method and a status column
	codes    bool          // has status_code (else status_class only)
	latency  bool          // can give percentiles
	raw      bool
	costs    bool // has cost
	// dimensional: a row per custom dimension and value (dimension,
	// value), so it answers only queries about one custom dimension.
	dimensional bool
}

var (
	srcRaw            = source{name: "usage_events", table: "usage_events", timeCol: "event_time", users: true, detail: true, codes: true, latency: true, raw: true, costs: true}
	srcUsageHourly    = source{name: "usage_hourly", table: "usage_hourly", timeCol: "bucket", grain: time.Hour, users: true, detail: true, codes: true, costs: true}
	srcUsageDaily     = source{name: "usage_daily", table: "usage_daily", timeCol: "bucket", grain: 24 * time.Hour, users: true, detail: true, codes: true, costs: true}
	srcUserHourly     = source{name: "user_hourly", table: "user_hourly", timeCol: "bucket", grain: time.Hour, users: true}
	srcUserDaily      = source{name: "user_daily", table: "user_daily", timeCol: "bucket", grain: 24 * time.Hour, users: true}
	srcEndpointMinute = source{name: "endpoint_minute", table: "endpoint_minute", timeCol: "bucket", grain: time.Minute, retained: 47 * time.Hour, detail: true, latency: true}
	srcEndpointHourly = source{name: "endpoint_hourly", table: "endpoint_hourly", timeCol: "bucket", grain: time.Hour, detail: true, latency: true}
	srcEndpointDaily  = source{name: "endpoint_daily", table: "endpoint_daily", timeCol: "bucket", grain: 24 * time.Hour, detail: true, latency: true}
	srcDimension      = source{name: "dimension_hourly", table: "dimension_hourly", timeCol: "bucket", grain: time.Hour, users: true, dimensional: true, costs: true}
)

// preference is the order sources are tried in: fewest rows first. The
// user_* rollups (a row per user and bucket) come before usage_* (a row
// per user, endpoint, method, status and bucket).
var preference = []source{srcEndpointDaily, srcUserDaily, srcUsageDaily, srcEndpointHourly, srcUserHourly, srcUsageHourly, srcEndpointMinute, srcDimension, srcRaw}

// need is what a query asks of its source.
type need struct {
	scope   Scope
	rng     Range
	grain   Granularity
	metrics []Metric
	dims    []Dimension
	filters Filters
	now     time.Time
	// only: select just the measures the metrics need (series); otherwise
	// every sum is read (totals and breakdowns show them all).
	only bool
}

// customNames are the custom dimensions n groups or filters by, sorted.
func (n need) customNames() []string {
	var out []string
	for _, d := range n.dims {
		if name, ok := d.Custom(); ok {
			out = append(out, name)
		}
	}
	for name, vs := range n.filters.Custom {
		if len(vs) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// choose picks the cheapest source that can answer exactly: it has the
// dimensions and metrics asked for, its buckets nest in the requested ones
// in the request's time zone, and the range starts and ends on its bucket
// boundaries. Raw records answer everything.
func choose(n need) source {
	for _, s := range preference {
		if s.fits(n) {
			return s
		}
	}
	return srcRaw
}

func (s source) fits(n need) bool {
	if s.raw {
		return true
	}
	if custom := n.customNames(); s.dimensional != (len(custom) > 0) || len(custom) > 1 {
		return false
	}
	users := n.scope.User != "" || slices.Contains(n.dims, DimUser) || n.filters.has(DimUser) || slices.Contains(n.metrics, UniqueUsers)
	if users && !s.users {
		return false
	}
	if (slices.Contains(n.dims, DimStatusCode) || n.filters.has(DimStatusCode)) && !s.codes {
		return false
	}
	if !s.detail {
		for _, d := range []Dimension{DimEndpoint, DimMethod, DimStatusCode, DimStatusClass} {
			if slices.Contains(n.dims, d) || n.filters.has(d) {
				return false
			}
		}
	}
	for _, m := range n.metrics {
		if m.latency() && !s.latency || m == Cost && !s.costs {
			return false
		}
	}
	if s.retained > 0 && n.rng.Start.Before(n.now.Add(-s.retained)) {
		return false
	}
	return nests(s.grain, n.grain, n.rng)
}

// nests reports whether buckets of size grain (UTC-aligned) add up exactly
// to the requested buckets over the range: the range starts and ends on
// the source's bucket boundaries and, for a series, the zone's offset keeps
// local buckets made of whole source buckets.
func nests(grain time.Duration, g Granularity, r Range) bool {
	if !aligned(r.Start, grain) || !aligned(r.End, grain) {
		return false
	}
	switch {
	case g == GrainNone:
		return true
	case grain == 24*time.Hour:
		return g != GrainMinute && g != GrainHour && fixedOffset(r, 0)
	case grain == time.Hour:
		return g != GrainMinute && offsetsMultipleOf(r, time.Hour)
	case grain == time.Minute:
		return offsetsMultipleOf(r, time.Minute)
	}
	return false
}

func aligned(t time.Time, grain time.Duration) bool {
	return t.UTC().Truncate(grain).Equal(t)
}

// offsetsMultipleOf reports whether the zone's offset is a whole number of
// d at every instant of the range (walking its transitions).
func offsetsMultipleOf(r Range, d time.Duration) bool {
	for off := range offsets(r) {
		if time.Duration(off)*time.Second%d != 0 {
			return false
		}
	}
	return true
}

// fixedOffset reports whether the zone's offset is off seconds over the
// whole range.
func fixedOffset(r Range, off int) bool {
	for o := range offsets(r) {
		if o != off {
			return false
		}
	}
	return true
}

// offsets yields the zone's offset (seconds east of UTC) at the start of
// the range and after each of its transitions within the range.
func offsets(r Range) iter.Seq[int] {
	return func(yield func(int) bool) {
		t := r.Start.In(r.Loc)
		for {
			if _, off := t.Zone(); !yield(off) {
				return
			}
			_, end := t.ZoneBounds()
			if !end.IsZero() && !end.After(t) {
				// Past the zone table's last year Go extends the zone's
				// rule, and on the last day of a leap year ZoneBounds
				// names an end that is not ahead (2040-12-31 in
				// Europe/Berlin): look an hour later instead.
				end = t.Add(time.Hour)
			}
			if end.IsZero() || !end.Before(r.End) {
				return
			}
			t = end
		}
	}
}

// column is the expression a dimension reads from a source.
func (s source) column(d Dimension) (string, error) {
	if name, ok := d.Custom(); ok {
		switch {
		case s.raw:
			return "dimensions[{" + customParam(name) + ":String}]", nil
		case s.dimensional:
			return "value", nil
		}
		return "", invalid("%s cannot be filtered or grouped by custom dimensions", s.name)
	}
	if !s.detail && d != DimUser && d != DimTenant {
		return "", invalid("%s has no %s", s.name, d)
	}
	switch d {
	case DimEndpoint:
		return "endpoint", nil
	case DimMethod:
		return "method", nil
	case DimStatusCode:
		if s.codes {
			return "status_code", nil
		}
	case DimStatusClass:
		if s.codes {
			return "intDiv(status_code, 100)", nil
		}
		return "status_class", nil
	case DimUser:
		if s.users {
			return "user_id", nil
		}
	case DimTenant:
		return "tenant_id", nil
	}
	return "", invalid("%s has no %s", s.name, d)
}

// bucketExpr is the Unix time of a row's bucket start in the request's
// zone ({tz:String}).
func (s source) bucketExpr(g Granularity) string {
	t := s.timeCol
	switch g {
	case GrainMinute:
		return "toUnixTimestamp(toStartOfMinute(" + t + "))"
	case GrainHour:
		return "toUnixTimestamp(toStartOfHour(" + t + ", {tz:String}))"
	case GrainDay:
		return "toUnixTimestamp(toStartOfDay(" + t + ", {tz:String}))"
	case GrainWeek:
		return "toUnixTimestamp(toDateTime(toMonday(" + t + ", {tz:String}), {tz:String}))"
	case GrainMonth:
		return "toUnixTimestamp(toDateTime(toStartOfMonth(" + t + ", {tz:String}), {tz:String}))"
	}
	return "0"
}

// aggregates are a source's expressions for the measures every query
// reads; metrics are computed from them.
type aggregates struct {
	Requests, Errors4xx, Errors5xx, TimeSum, TimeMax, RequestBytes, ResponseBytes, Cost, Latency, Users string
}

func (s source) aggregates() aggregates {
	if s.raw {
		return aggregates{
			Requests: "count()", Errors4xx: "countIf(status_code >= 400 AND status_code < 500)", Errors5xx: "countIf(status_code >= 500)",
			TimeSum: "sum(response_time_us)", TimeMax: "max(response_time_us)",
			RequestBytes: "sum(request_bytes)", ResponseBytes: "sum(response_bytes)",
			Latency: "quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us)", Users: "uniqExact(user_id)",
			Cost: "sum(cost)",
		}
	}
	a := aggregates{
		Requests: "sum(requests)", Errors4xx: "sum(errors_4xx)", Errors5xx: "sum(errors_5xx)",
		TimeSum: "sum(response_time_sum_us)", TimeMax: "max(response_time_max_us)",
		RequestBytes: "sum(request_bytes)", ResponseBytes: "sum(response_bytes)",
	}
	if s.latency {
		a.Latency = "quantilesDDMerge(0.01, 0.5, 0.9, 0.95, 0.99)(latency_us)"
	}
	if s.users {
		a.Users = "uniqExact(user_id)"
	}
	if s.costs {
		a.Cost = "sum(cost)"
	}
	return a
}

// withTenant puts tenantId before userId in a grouping over several
// tenants: user ids are each tenant's own, so user-1 of one tenant is not
// user-1 of another (/top-users names users the same way).
func withTenant(sc Scope, dims []Dimension) []Dimension {
	i := slices.Index(dims, DimUser)
	if sc.Tenant != "" || i < 0 || slices.Contains(dims, DimTenant) {
		return dims
	}
	return slices.Insert(slices.Clone(dims), i, DimTenant)
}

// customParam is the query parameter holding a custom dimension's name
// (names are [a-z][a-z0-9_]*, package dims).
func customParam(name string) string { return "dk_" + name }
