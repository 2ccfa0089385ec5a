package api

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/forecast"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/sla"
)

// BasePath is where the analytics API lives.
const BasePath = "/api/api-usage"

// IngestStats reports the ingester's state (an *ingest.Ingester).
type IngestStats interface {
	Stats() ingest.Stats
}

// Analytics serves the analytics routes.
type Analytics struct {
	Query *query.Service
	Keys  *auth.Store
	// Ingest is the ingester of this process, nil when it runs elsewhere.
	Ingest     IngestStats
	Thresholds query.Thresholds
	// HealthIncludesSelf counts apimeter's own API (tenant OwnTenant) in
	// the health of every tenant. Default false: health is about the
	// metered APIs, and a client giving up on apimeter is not their
	// outage.
	HealthIncludesSelf bool
	// ExportMaxRows refuses larger exports (0: 10,000,000).
	ExportMaxRows uint64
	// Downloads bounds the exports running at once and says how their
	// bytes reach clients.
	Downloads DownloadLimits
	// Limits reports /rate-limit and /quota (and its plans name the
	// accounts'). Default: in-memory limits on the default plans.
	Limits *limits.Limiter
	// Records is the store of the raw usage records SLA reports read;
	// nil answers /sla and the sla export with a 503.
	Records sla.DB
	// Enforce is the limit middleware of the analytics routes, run after
	// authentication; nil applies none.
	Enforce echo.MiddlewareFunc
	Now     func() time.Time
	log     *slog.Logger
	dl      *downloads
}

func (a *Analytics) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// MountAnalytics adds the analytics routes.
func (s *Server) MountAnalytics(a *Analytics) {
	a.log = s.log
	a.dl = newDownloads(a.Downloads, s.reg, s.log)
	if a.ExportMaxRows == 0 {
		a.ExportMaxRows = 10_000_000
	}
	if a.Limits == nil {
		a.Limits = limits.New(limits.Config{})
	}
	enforce := a.Enforce
	if enforce == nil {
		enforce = func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	user, admin := KeyAuth(a.Keys, false), KeyAuth(a.Keys, true)
	g := s.echo.Group(BasePath)
	g.GET("/stats", a.stats, user, enforce)
	g.POST("/time-series", a.timeSeries, user, enforce)
	g.GET("/rate-limit", a.rateLimit, user, enforce)
	g.GET("/quota", a.quota, user, enforce)
	g.GET("/costs", a.costs, user, enforce)
	g.GET("/sla", a.sla, user, enforce)
	g.POST("/export", a.export, user, enforce)
	g.GET("/endpoints/:endpoint/analytics", a.endpointAnalytics, user, enforce)
	g.GET("/dimensions", a.dimensions, user, enforce)
	g.GET("/top-users", a.topUsers, admin)
	g.GET("/system-metrics", a.systemMetrics, admin)
	g.GET("/health", a.health, OptionalKeyAuth(a.Keys), enforce)
	g.POST("/admin/keys", a.createKey, admin)
	g.GET("/admin/keys", a.listKeys, admin)
	g.DELETE("/admin/keys/:keyId", a.revokeKey, admin)
	g.GET("/openapi.json", serveOpenAPI)
}

// Totals is an aggregate as the API shows it.
type Totals struct {
	Requests            uint64   `json:"requests"`
	Errors              uint64   `json:"errors"`
	ClientErrors        uint64   `json:"clientErrors"`
	ErrorRate           float64  `json:"errorRate"`
	ClientErrorRate     float64  `json:"clientErrorRate"`
	AverageResponseTime float64  `json:"averageResponseTime"`
	P50ResponseTime     *float64 `json:"p50ResponseTime,omitempty"`
	P90ResponseTime     *float64 `json:"p90ResponseTime,omitempty"`
	P95ResponseTime     *float64 `json:"p95ResponseTime,omitempty"`
	P99ResponseTime     *float64 `json:"p99ResponseTime,omitempty"`
	MaxResponseTime     float64  `json:"maxResponseTime"`
	RequestBytes        uint64   `json:"requestBytes"`
	ResponseBytes       uint64   `json:"responseBytes"`
	UniqueUsers         *uint64  `json:"uniqueUsers,omitempty"`
}

func totalsOf(a query.Aggregate, users bool) Totals {
	t := Totals{
		Requests: a.Requests, Errors: a.Errors5xx, ClientErrors: a.Errors4xx,
		ErrorRate: a.Value(query.ErrorRate), ClientErrorRate: a.Value(query.ClientErrorRate),
		AverageResponseTime: a.Value(query.AvgResponseTime), MaxResponseTime: a.Value(query.MaxResponseTime),
		RequestBytes: a.RequestBytes, ResponseBytes: a.ResponseBytes,
	}
	if a.Latency != nil {
		v := func(m query.Metric) *float64 { x := a.Value(m); return &x }
		t.P50ResponseTime, t.P90ResponseTime = v(query.P50ResponseTime), v(query.P90ResponseTime)
		t.P95ResponseTime, t.P99ResponseTime = v(query.P95ResponseTime), v(query.P99ResponseTime)
	}
	if users {
		n := a.Users
		t.UniqueUsers = &n
	}
	return t
}

// RangeJSON echoes the range a response covers.
type RangeJSON struct {
	Start    time.Time `json:"startDate"`
	End      time.Time `json:"endDate"`
	Timezone string    `json:"timezone"`
}

func rangeJSON(r query.Range) RangeJSON {
	return RangeJSON{Start: r.Start.UTC(), End: r.End.UTC(), Timezone: r.Loc.String()}
}

// ScopeJSON echoes whose data a response covers ("" for all).
type ScopeJSON struct {
	Tenant string `json:"tenantId,omitempty"`
	User   string `json:"userId,omitempty"`
}

// getRequest is what the GET analytics routes share: the scope, the range
// and the filters from the query string.
type getRequest struct {
	q       url.Values
	p       auth.Principal
	scope   query.Scope
	rng     query.Range
	filters query.Filters
}

func (a *Analytics) readGet(c echo.Context) (*getRequest, error) {
	q, err := queryParams(c)
	if err != nil {
		return nil, err
	}
	r := &getRequest{q: q}
	r.p, _ = principal(c)
	if r.scope, err = requestScope(c); err != nil {
		return nil, err
	}
	var d dates
	for name, dst := range map[string]*string{"startDate": &d.Start, "endDate": &d.End, "timezone": &d.Zone} {
		if *dst, err = single(q, name); err != nil {
			return nil, err
		}
	}
	if r.rng, err = rangeOf(d, a.now()); err != nil {
		return nil, err
	}
	if r.filters, err = filtersOf(q); err != nil {
		return nil, err
	}
	return r, nil
}

// StatsResponse is GET /stats.
type StatsResponse struct {
	Scope           ScopeJSON         `json:"scope"`
	Range           RangeJSON         `json:"range"`
	Totals          Totals            `json:"totals"`
	UniqueEndpoints int               `json:"uniqueEndpoints"`
	StatusClasses   map[string]uint64 `json:"statusClasses"`
	TopEndpoints    []EndpointTotals  `json:"topEndpoints"`
	Series          *SeriesJSON       `json:"series,omitempty"`
}

// EndpointTotals is one endpoint and method's totals.
type EndpointTotals struct {
	Endpoint string `json:"endpoint"`
	Method   string `json:"method"`
	Totals
}

func (a *Analytics) stats(c echo.Context) error {
	r, err := a.readGet(c)
	if err != nil {
		return err
	}
	groupBy, err := single(r.q, "groupBy")
	if err != nil {
		return err
	}
	if groupBy != "" && groupBy != "hour" && groupBy != "day" && groupBy != "week" && groupBy != "month" {
		return BadRequest("groupBy %q: want hour, day, week or month", groupBy)
	}
	limit, err := intParam(r.q, "limit", 10, 1, 100)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	admin := r.p.Admin() && r.scope.User == ""
	var total query.Aggregate
	var classes, endpoints []query.Breakdown
	var series *query.SeriesResult
	err = parallel(
		func() (err error) { total, err = a.Query.Total(ctx, r.scope, r.rng, r.filters, admin); return },
		func() (err error) {
			classes, err = a.Query.Breakdown(ctx, r.scope, r.rng, r.filters, []query.Dimension{query.DimStatusClass}, false, 0)
			return
		},
		func() (err error) {
			endpoints, err = a.Query.Breakdown(ctx, r.scope, r.rng, r.filters, []query.Dimension{query.DimEndpoint, query.DimMethod}, false, 0)
			return
		},
		func() (err error) {
			if groupBy != "" {
				series, err = a.Query.Series(ctx, query.SeriesRequest{Scope: r.scope, Range: r.rng, Granularity: query.Granularity(groupBy),
					Metrics: []query.Metric{query.Requests, query.Errors, query.ClientErrors, query.ErrorRate, query.AvgResponseTime}, Filters: r.filters})
			}
			return
		},
	)
	if err != nil {
		return queryError(err)
	}
	res := StatsResponse{
		Scope: ScopeJSON{r.scope.Tenant, r.scope.User}, Range: rangeJSON(r.rng), Totals: totalsOf(total, admin),
		StatusClasses: map[string]uint64{"2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}, TopEndpoints: []EndpointTotals{},
	}
	for _, b := range classes {
		res.StatusClasses[b.Key[0]] = b.Requests // "2xx"…
	}
	distinct := map[string]bool{}
	for i, b := range endpoints {
		distinct[b.Key[0]] = true
		if i < limit {
			res.TopEndpoints = append(res.TopEndpoints, EndpointTotals{Endpoint: b.Key[0], Method: b.Key[1], Totals: totalsOf(b.Aggregate, false)})
		}
	}
	res.UniqueEndpoints = len(distinct)
	if series != nil {
		res.Series = seriesJSON(series, query.Granularity(groupBy), r.rng)
	}
	return c.JSON(http.StatusOK, res)
}

// parallel runs independent queries at once (the store has a pool of
// connections) and returns the first error in argument order.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// SeriesJSON is a time series answer.
type SeriesJSON struct {
	Granularity string       `json:"granularity"`
	Timezone    string       `json:"timezone"`
	Source      string       `json:"source"`
	Series      []SeriesItem `json:"series"`
}

// SeriesItem is one group's points; each point has "time" and one field
// per metric.
type SeriesItem struct {
	Group  map[string]string `json:"group"`
	Points []Point           `json:"points"`
}

// Point is one bucket: "time" and a number per metric — null for a rate
// or latency of a bucket without requests (nothing was measured).
type Point map[string]any

// MarshalJSON writes a point without reflection ("time" first, then the
// metrics by name): a month of hourly points is 720 of them.
func (p Point) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "time" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if _, ok := p["time"]; ok {
		keys = append([]string{"time"}, keys...)
	}
	b := make([]byte, 0, 32+24*len(keys))
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		switch v := p[k].(type) {
		case float64:
			b = appendJSONFloat(b, v)
		case string:
			b = strconv.AppendQuote(b, v)
		default:
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			b = append(b, raw...)
		}
	}
	return append(b, '}'), nil
}

// appendJSONFloat writes a number as encoding/json does (exponent form
// only for the very small and very large); NaN — a rate or latency of a
// bucket without requests — is null; infinities, which no metric
// produces, are 0.
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) {
		return append(b, "null"...)
	}
	if math.IsInf(v, 0) {
		return append(b, '0')
	}
	abs := math.Abs(v)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, v, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}

func seriesJSON(s *query.SeriesResult, g query.Granularity, r query.Range) *SeriesJSON {
	out := &SeriesJSON{Granularity: string(g), Timezone: r.Loc.String(), Source: s.Source, Series: []SeriesItem{}}
	for _, ser := range s.Series {
		item := SeriesItem{Group: map[string]string{}, Points: make([]Point, 0, len(ser.Points))}
		for d, v := range ser.Group {
			item.Group[string(d)] = v
		}
		for _, p := range ser.Points {
			pt := make(Point, len(p.Values)+1)
			pt["time"] = p.Time.In(r.Loc).Format(time.RFC3339)
			for m, v := range p.Values {
				pt[string(m)] = v
			}
			item.Points = append(item.Points, pt)
		}
		out.Series = append(out.Series, item)
	}
	return out
}

// stringList accepts a JSON string or an array of strings.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return &json.UnmarshalTypeError{Value: "another type", Type: reflect.TypeFor[stringList]()}
	}
	*l = many
	return nil
}

// FiltersJSON are the filters of a request body.
type FiltersJSON struct {
	Endpoint    stringList `json:"endpoint,omitempty"`
	Method      stringList `json:"method,omitempty"`
	StatusCode  []int      `json:"statusCode,omitempty"`
	StatusClass []int      `json:"statusClass,omitempty"`
	UserID      stringList `json:"userId,omitempty"`
	// Dimensions filters declared custom dimensions: name → values.
	Dimensions map[string]stringList `json:"dimensions,omitempty"`
}

func (f FiltersJSON) filters() (query.Filters, error) {
	out := query.Filters{Endpoint: f.Endpoint, Method: f.Method, StatusCode: f.StatusCode, StatusClass: f.StatusClass, User: f.UserID}
	if len(f.Dimensions) > 0 {
		out.Custom = make(map[string][]string, len(f.Dimensions))
		for name, vs := range f.Dimensions {
			out.Custom[name] = vs
		}
	}
	return out, checkFilters(out)
}

// bodyRequest is what the POST routes share.
type bodyRequest struct {
	StartDate string      `json:"startDate"`
	EndDate   string      `json:"endDate"`
	Timezone  string      `json:"timezone"`
	TenantID  string      `json:"tenantId"`
	UserID    string      `json:"userId"`
	Filters   FiltersJSON `json:"filters"`
}

func (a *Analytics) readBody(c echo.Context, b *bodyRequest) (auth.Principal, query.Scope, query.Range, query.Filters, error) {
	p, _ := principal(c)
	var f query.Filters
	if err := queryScope(c, &b.TenantID, &b.UserID); err != nil {
		return p, query.Scope{}, query.Range{}, f, err
	}
	sc, err := scopeOf(p, b.TenantID, b.UserID)
	if err != nil {
		return p, sc, query.Range{}, f, err
	}
	rng, err := rangeOf(dates{b.StartDate, b.EndDate, b.Timezone}, a.now())
	if err != nil {
		return p, sc, rng, f, err
	}
	f, err = b.Filters.filters()
	return p, sc, rng, f, err
}

// SeriesBody is POST /time-series.
type SeriesBody struct {
	bodyRequest
	Granularity string     `json:"granularity"`
	Metrics     stringList `json:"metrics"`
	GroupBy     stringList `json:"groupBy"`
}

func (a *Analytics) timeSeries(c echo.Context) error {
	var b SeriesBody
	if err := decodeBody(c, &b); err != nil {
		return err
	}
	p, sc, rng, f, err := a.readBody(c, &b.bodyRequest)
	if err != nil {
		return err
	}
	if b.Granularity == "" {
		b.Granularity = "day"
	}
	req := query.SeriesRequest{Scope: sc, Range: rng, Granularity: query.Granularity(b.Granularity), Filters: f}
	for _, m := range b.Metrics {
		req.Metrics = append(req.Metrics, query.Metric(m))
	}
	for _, d := range b.GroupBy {
		req.GroupBy = append(req.GroupBy, query.Dimension(d))
	}
	if err := checkUserAccess(p, f, req.GroupBy); err != nil {
		return err
	}
	res, err := a.Query.Series(c.Request().Context(), req)
	if err != nil {
		return queryError(err)
	}
	return c.JSON(http.StatusOK, seriesJSON(res, req.Granularity, rng))
}

// EndpointResponse is GET /endpoints/:endpoint/analytics.
type EndpointResponse struct {
	Endpoint    string            `json:"endpoint"`
	Scope       ScopeJSON         `json:"scope"`
	Range       RangeJSON         `json:"range"`
	Totals      Totals            `json:"totals"`
	StatusCodes map[string]uint64 `json:"statusCodes"`
	Methods     map[string]uint64 `json:"methods"`
	Series      *SeriesJSON       `json:"series"`
}

func (a *Analytics) endpointAnalytics(c echo.Context) error {
	endpoint, err := url.PathUnescape(c.Param("endpoint"))
	if err != nil || endpoint == "" || len(endpoint) > 1024 {
		return BadRequest("the endpoint in the path must be URL-encoded, e.g. %s", url.PathEscape("/api/users/:id"))
	}
	r, err := a.readGet(c)
	if err != nil {
		return err
	}
	if len(r.filters.Endpoint) > 0 {
		return BadRequest("the endpoint is in the path: drop the endpoint parameter")
	}
	r.filters.Endpoint = []string{endpoint}
	g, err := single(r.q, "granularity")
	if err != nil {
		return err
	}
	if g == "" {
		g = "day"
		if r.rng.End.Sub(r.rng.Start) <= 7*24*time.Hour {
			g = "hour"
		}
	}
	ctx := c.Request().Context()
	var total query.Aggregate
	var codes, methods []query.Breakdown
	var series *query.SeriesResult
	err = parallel(
		func() (err error) { total, err = a.Query.Total(ctx, r.scope, r.rng, r.filters, false); return },
		func() (err error) {
			codes, err = a.Query.Breakdown(ctx, r.scope, r.rng, r.filters, []query.Dimension{query.DimStatusCode}, false, 0)
			return
		},
		func() (err error) {
			methods, err = a.Query.Breakdown(ctx, r.scope, r.rng, r.filters, []query.Dimension{query.DimMethod}, false, 0)
			return
		},
		func() (err error) {
			series, err = a.Query.Series(ctx, query.SeriesRequest{Scope: r.scope, Range: r.rng, Granularity: query.Granularity(g),
				Metrics: []query.Metric{query.Requests, query.Errors, query.ErrorRate, query.AvgResponseTime, query.P95ResponseTime}, Filters: r.filters})
			return
		},
	)
	if err != nil {
		return queryError(err)
	}
	res := EndpointResponse{Endpoint: endpoint, Scope: ScopeJSON{r.scope.Tenant, r.scope.User}, Range: rangeJSON(r.rng),
		Totals: totalsOf(total, false), StatusCodes: map[string]uint64{}, Methods: map[string]uint64{},
		Series: seriesJSON(series, query.Granularity(g), r.rng)}
	for _, b := range codes {
		res.StatusCodes[b.Key[0]] = b.Requests
	}
	for _, b := range methods {
		res.Methods[b.Key[0]] = b.Requests
	}
	return c.JSON(http.StatusOK, res)
}

// TopUsersResponse is GET /top-users.
type TopUsersResponse struct {
	Range  RangeJSON  `json:"range"`
	SortBy string     `json:"sortBy"`
	Users  []UserJSON `json:"users"`
}

// UserJSON is one ranked user.
type UserJSON struct {
	Rank   int    `json:"rank"`
	Tenant string `json:"tenantId"`
	User   string `json:"userId"`
	Totals
}

func (a *Analytics) topUsers(c echo.Context) error {
	r, err := a.readGet(c)
	if err != nil {
		return err
	}
	if r.scope.User != "" {
		return BadRequest("top-users ranks users: drop userId")
	}
	sortBy, err := single(r.q, "sortBy")
	if err != nil {
		return err
	}
	if sortBy == "" {
		sortBy = string(query.RankRequests)
	}
	limit, err := intParam(r.q, "limit", 10, 1, 1000)
	if err != nil {
		return err
	}
	rows, err := a.Query.TopUsers(c.Request().Context(), r.scope, r.rng, r.filters, query.RankBy(sortBy), limit)
	if err != nil {
		return queryError(err)
	}
	res := TopUsersResponse{Range: rangeJSON(r.rng), SortBy: sortBy, Users: []UserJSON{}}
	for i, u := range rows {
		res.Users = append(res.Users, UserJSON{Rank: i + 1, Tenant: u.Tenant, User: u.User, Totals: totalsOf(u.Aggregate, false)})
	}
	return c.JSON(http.StatusOK, res)
}

// DimensionsResponse is GET /dimensions.
type DimensionsResponse struct {
	Range      RangeJSON            `json:"range"`
	Dimensions []query.DimensionUse `json:"dimensions"`
}

// dimensions reports the declared custom dimensions in the caller's
// scope: their busiest values and how much was folded past the cap.
func (a *Analytics) dimensions(c echo.Context) error {
	r, err := a.readGet(c)
	if err != nil {
		return err
	}
	if !r.filters.Empty() {
		return BadRequest("filters: dimensions are counted per tenant and user only; name a user with userId")
	}
	limit, err := intParam(r.q, "limit", 10, 1, 100)
	if err != nil {
		return err
	}
	uses, err := a.Query.DimensionUses(c.Request().Context(), r.scope, r.rng, limit)
	if err != nil {
		return queryError(err)
	}
	return c.JSON(http.StatusOK, DimensionsResponse{Range: rangeJSON(r.rng), Dimensions: uses})
}

// HealthResponse is GET /health, in the seed's shape.
type HealthResponse struct {
	Status  string        `json:"status"`
	Metrics HealthMetrics `json:"metrics"`
	Issues  []query.Issue `json:"issues"`
	Checked time.Time     `json:"checkedAt"`
	Window  RangeJSON     `json:"window"`
}

// HealthMetrics are the figures health is judged on.
type HealthMetrics struct {
	RequestsPerMinute   float64 `json:"requestsPerMinute"`
	ErrorRate           float64 `json:"errorRate"`
	AverageResponseTime float64 `json:"averageResponseTime"`
	ActiveEndpoints     int     `json:"activeEndpoints"`
}

// health answers anonymous callers with the global state and no endpoint
// names; a key narrows it to what the key may read (a user key its own
// traffic, a tenant admin its tenant) and shows endpoints.
func (a *Analytics) health(c echo.Context) error {
	_, authed := principal(c)
	var sc query.Scope
	if authed {
		var err error
		if sc, err = requestScope(c); err != nil {
			return err
		}
	}
	if !a.HealthIncludesSelf {
		sc.ExcludeTenant = OwnTenant
	}
	rep, err := a.Query.Health(c.Request().Context(), sc, a.Thresholds)
	if err != nil {
		return err
	}
	issues := rep.Issues
	if !authed {
		issues = []query.Issue{}
		for _, is := range rep.Issues {
			if is.Scope == "global" {
				issues = append(issues, is)
			}
		}
	}
	return c.JSON(http.StatusOK, HealthResponse{
		Status: rep.Status, Issues: issues, Checked: rep.CheckedAt.UTC().Truncate(time.Second), Window: rangeJSON(rep.Window),
		Metrics: HealthMetrics{RequestsPerMinute: rep.RequestsPerMin, ErrorRate: rep.ErrorRate,
			AverageResponseTime: rep.AvgResponseTime, ActiveEndpoints: rep.ActiveEndpoints},
	})
}

// SystemMetrics is GET /system-metrics.
type SystemMetrics struct {
	Scope       ScopeJSON         `json:"scope"`
	Traffic     map[string]Totals `json:"traffic"`
	ActiveUsers map[string]uint64 `json:"activeUsers"`
	Endpoints   map[string]int    `json:"activeEndpoints"`
	Ingest      *ingest.Stats     `json:"ingest,omitempty"`
	DeadLetters *DeadLetters      `json:"deadLetters,omitempty"`
	Storage     []query.Storage   `json:"storage,omitempty"`
	CheckedAt   time.Time         `json:"checkedAt"`
}

// DeadLetters counts rejected records.
type DeadLetters struct {
	Last24Hours uint64            `json:"last24Hours"`
	ByReason    map[string]uint64 `json:"byReason"`
}

// systemMetrics reports traffic for the admin's scope; a global admin
// also sees the ingester, the dead letters and the storage.
func (a *Analytics) systemMetrics(c echo.Context) error {
	sc, err := requestScope(c)
	if err != nil {
		return err
	}
	p, _ := principal(c)
	ctx := c.Request().Context()
	now := a.now().UTC()
	res := SystemMetrics{Scope: ScopeJSON{sc.Tenant, sc.User}, Traffic: map[string]Totals{}, ActiveUsers: map[string]uint64{},
		Endpoints: map[string]int{}, CheckedAt: now.Truncate(time.Second)}
	windows := []struct {
		name   string
		window time.Duration
		total  query.Aggregate
		eps    []query.Breakdown
	}{{name: "lastHour", window: time.Hour}, {name: "last24Hours", window: 24 * time.Hour}}
	var work []func() error
	for i := range windows {
		w := &windows[i]
		rng := query.Range{Start: now.Add(-w.window).Truncate(time.Minute), End: now.Truncate(time.Minute).Add(time.Minute), Loc: time.UTC}
		work = append(work,
			func() (err error) { w.total, err = a.Query.Total(ctx, sc, rng, query.Filters{}, true); return },
			func() (err error) {
				w.eps, err = a.Query.Breakdown(ctx, sc, rng, query.Filters{}, []query.Dimension{query.DimEndpoint}, false, 0)
				return
			})
	}
	if err := parallel(work...); err != nil {
		return queryError(err)
	}
	for _, w := range windows {
		res.Traffic[w.name] = totalsOf(w.total, false)
		res.ActiveUsers[w.name] = w.total.Users
		res.Endpoints[w.name] = len(w.eps)
	}
	if p.Global() && sc.Tenant == "" {
		if a.Ingest != nil {
			st := a.Ingest.Stats()
			res.Ingest = &st
		}
		dl, err := a.Query.DeadLetters(ctx, query.Range{Start: now.Add(-24 * time.Hour), End: now.Add(time.Second), Loc: time.UTC})
		if err != nil {
			return err
		}
		res.DeadLetters = &DeadLetters{ByReason: dl}
		for _, n := range dl {
			res.DeadLetters.Last24Hours += n
		}
		if res.Storage, err = a.Query.Storage(ctx); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, res)
}

// quotaTarget is whose limits /rate-limit and /quota report: the scope's
// user, or the caller's own for an admin that names none.
func quotaTarget(c echo.Context) (tenant, user string, err error) {
	sc, err := requestScope(c)
	if err != nil {
		return "", "", err
	}
	p, _ := principal(c)
	tenant, user = sc.Tenant, sc.User
	if user == "" {
		user = p.User
	}
	if tenant == "" {
		tenant = p.Tenant
	}
	if tenant == auth.AllTenants {
		return "", "", BadRequest("name the tenant: tenantId")
	}
	return tenant, user, nil
}

// Limit is one limit's state, as the limit headers show it.
type Limit = limits.LimitState

// RateLimitResponse is GET /rate-limit.
type RateLimitResponse struct {
	Tenant    string  `json:"tenantId"`
	User      string  `json:"userId"`
	Plan      string  `json:"plan"`
	Hourly    Limit   `json:"hourly"`
	Endpoints []Limit `json:"endpoints"`
}

// limitStatus reads a user's limits as a request made now would count
// them: the numbers the X-RateLimit and X-Quota headers carry.
func (a *Analytics) limitStatus(c echo.Context) (*limits.Decision, error) {
	tenant, user, err := quotaTarget(c)
	if err != nil {
		return nil, err
	}
	d, err := a.Limits.Status(c.Request().Context(), tenant, user)
	if d == nil && err != nil {
		return nil, Errorf(http.StatusServiceUnavailable, "unavailable", "limits are unavailable; try again shortly")
	}
	return d, err
}

// unlimited is a limit the plan does not have.
func unlimited(name string, reset time.Time) Limit {
	return Limit{Name: name, ResetAt: reset.UTC(), Unlimited: true}
}

// rateLimit reports the hourly limit (a sliding hour) and the plan's
// endpoint limits.
func (a *Analytics) rateLimit(c echo.Context) error {
	d, err := a.limitStatus(c)
	if err != nil {
		return err
	}
	r := RateLimitResponse{Tenant: d.Tenant, User: d.User, Plan: d.Plan.Name, Hourly: unlimited("hourly", d.Now), Endpoints: []Limit{}}
	r.Hourly.Window, r.Hourly.WindowSeconds = "1h", 3600
	for i, ch := range d.Checks {
		switch {
		case ch.Window == 0:
		case ch.Key.Policy == "hourly":
			r.Hourly = limits.StateOf(d, i)
		default:
			r.Endpoints = append(r.Endpoints, limits.StateOf(d, i))
		}
	}
	return c.JSON(http.StatusOK, r)
}

// quota reports the quota of the current billing period.
func (a *Analytics) quota(c echo.Context) error {
	d, err := a.limitStatus(c)
	if err != nil {
		return err
	}
	var q QuotaLimit
	for i, ch := range d.Checks {
		if ch.Window == 0 {
			q.Limit = limits.StateOf(d, i)
			break
		}
	}
	if q.Name == "" {
		// An unlimited plan: the period's use, from the records.
		start, end := plans.BillingPeriod(d.Now, d.Account.AnchorDay)
		used, err := a.Limits.Usage(c.Request().Context(), d.Tenant, d.User, start, end)
		if err != nil {
			return queryError(err)
		}
		q.Limit = unlimited("monthly_requests", end)
		q.Used, q.PeriodStart = used, &start
	}
	f, err := a.forecastOf(c, d, q.Limit)
	if err != nil {
		return err
	}
	q.Forecast = &f
	return c.JSON(http.StatusOK, []QuotaLimit{q})
}

// QuotaLimit is a quota with its forecast.
type QuotaLimit struct {
	Limit
	// Forecast projects the period's end from the last weeks' daily use
	// (package forecast): the total then, and the day the quota runs out
	// at this pace.
	Forecast *forecast.Result `json:"forecast,omitempty"`
}

// forecastOf projects a quota to its period's end from the user's daily
// usage (query.Service.QuotaForecast).
func (a *Analytics) forecastOf(c echo.Context, d *limits.Decision, l Limit) (forecast.Result, error) {
	var start time.Time
	if l.PeriodStart != nil {
		start = *l.PeriodStart
	}
	var limit uint64
	if l.Limit != nil {
		limit = *l.Limit
	}
	f, err := a.Query.QuotaForecast(c.Request().Context(), query.Scope{Tenant: d.Tenant, User: d.User}, d.Now, start, l.ResetAt, limit, l.Used)
	if err != nil {
		return f, queryError(err)
	}
	return f, nil
}
