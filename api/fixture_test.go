package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// The route tests run the real server on the embedded engine, loaded
// once with generated records; every expected number is computed here in
// Go from those records.

const adminKey = "am_test-bootstrap-admin-key"

type apiFixture struct {
	db        store.Driver
	srv       *Server
	an        *Analytics
	limits    *limits.Limiter
	decisions *limits.Decisions
	keys      *auth.Store
	recs      []ingest.Record
	start     time.Time
	end       time.Time
	// keys for the tests: a user of tenant-1, another user of tenant-1,
	// a user of tenant-2, the admin of tenant-1.
	userKey, otherUserKey, foreignKey, tenantAdminKey string
	user, otherUser, tenant, otherTenant              string
	clock                                             time.Time // zero: real time
}

var fx *apiFixture

func TestMain(m *testing.M) {
	code := 0
	drop, err := setupAPIFixture()
	if err != nil {
		fmt.Fprintln(os.Stderr, "api tests: fixture:", err)
		code = 1
	} else {
		code = m.Run()
		drop()
	}
	os.Exit(code)
}

func setupAPIFixture() (func(), error) {
	db, drop, err := storetest.OpenDB()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	fail := func(err error) (func(), error) { drop(); return nil, err }
	m, err := schema.NewMigrator(db, schema.Single, nil)
	if err != nil {
		return fail(err)
	}
	if _, err := m.Apply(ctx); err != nil {
		return fail(err)
	}
	start := time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC)
	f := &apiFixture{db: db, start: start, end: start.Add(5 * 24 * time.Hour)}
	g := ingest.NewGenerator(ingest.GeneratorConfig{Seed: 7, Tenants: 3, Users: 12, Endpoints: 8, Start: start, Span: 5 * 24 * time.Hour, Count: 30000})
	var r ingest.Record
	folder := dims.NewFolder(fixtureDims, nil) // as the ingester folds them
	for g.Next(&r) {
		if r.Type == ingest.TypeAPICall {
			r.Dimensions = folder.Fold(r.TenantID, r.Metadata)
			f.recs = append(f.recs, r)
		}
	}
	var cols ingest.UsageColumns
	for i := range f.recs {
		cols.Append(&f.recs[i])
	}
	if err := db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{DedupToken: "api-fixture"}); err != nil {
		return fail(err)
	}
	f.tenant, f.otherTenant = "tenant-1", "tenant-2"
	f.user, f.otherUser = busiest(f.recs, f.tenant, 0), busiest(f.recs, f.tenant, 1)
	f.keys = auth.NewStore(db, adminKey)
	for dst, n := range map[*string]auth.NewKey{
		&f.userKey:        {Tenant: f.tenant, User: f.user, Role: auth.RoleUser},
		&f.otherUserKey:   {Tenant: f.tenant, User: f.otherUser, Role: auth.RoleUser},
		&f.foreignKey:     {Tenant: f.otherTenant, User: busiest(f.recs, f.otherTenant, 0), Role: auth.RoleUser},
		&f.tenantAdminKey: {Tenant: f.tenant, User: "boss", Role: auth.RoleAdmin},
	} {
		if _, *dst, err = f.keys.Create(ctx, n); err != nil {
			return fail(err)
		}
	}
	f.srv = New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	svc := query.New(db, query.Limits{})
	svc.SetClock(f.now)
	svc.SetDimensions(fixtureDims)
	ch := limits.ClickHouse{DB: db}
	f.decisions, err = limits.NewDecisions(limits.NewSecret())
	if err != nil {
		return fail(err)
	}
	f.limits = limits.New(limits.Config{Usage: ch, Resolver: accounts.New(db), Notices: limits.NewStoreNotices(ch), Clock: limits.ClockFunc(f.now),
		Decisions: f.decisions})
	spool, err := os.MkdirTemp("", "apimeter-api-spool-")
	if err != nil {
		return fail(err)
	}
	// Exports go through the spool, as serve runs them.
	f.an = &Analytics{Query: svc, Keys: f.keys, Now: f.now, ExportMaxRows: 20_000, Limits: f.limits, Records: db,
		Thresholds: query.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second},
		Downloads:  DownloadLimits{SpoolDir: spool}}
	f.srv.MountAnalytics(f.an)
	f.srv.MountDecisions(&DecisionsAPI{Limits: f.limits, Keys: f.keys})
	fx = f
	return func() { drop(); os.RemoveAll(spool) }, nil
}

// migrated applies the schema to a test's fresh database.
func migrated(t *testing.T, db store.Driver) store.Driver {
	t.Helper()
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return db
}

func (f *apiFixture) now() time.Time {
	if f.clock.IsZero() {
		return time.Now()
	}
	return f.clock
}

// setClock moves the server's clock for one test.
func setClock(t *testing.T, at time.Time) {
	fx.clock = at
	t.Cleanup(func() { fx.clock = time.Time{} })
}

// busiest is the rank-th user of a tenant by number of records.
func busiest(recs []ingest.Record, tenant string, rank int) string {
	n := map[string]int{}
	for i := range recs {
		if recs[i].TenantID == tenant {
			n[recs[i].UserID]++
		}
	}
	users := make([]string, 0, len(n))
	for u := range n {
		users = append(users, u)
	}
	slices.SortFunc(users, func(a, b string) int {
		if n[a] != n[b] {
			return n[b] - n[a]
		}
		return strings.Compare(a, b)
	})
	return users[rank]
}

// call sends a request to the test server.
func call(t *testing.T, method, target, key string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req := newRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	fx.srv.Echo().ServeHTTP(rec, req)
	return rec
}

// newRequest builds a request, also for targets a client may send but
// url.Parse refuses (bad escapes), which reach the router as raw text.
func newRequest(method, target string, body io.Reader) *http.Request {
	req := httptest.NewRequest(method, "/", body)
	if u, err := url.ParseRequestURI(target); err == nil {
		req.URL = u
	} else {
		path, rawQuery, _ := strings.Cut(target, "?")
		req.URL = &url.URL{Path: path, RawPath: path, RawQuery: rawQuery}
	}
	req.RequestURI = target
	return req
}

// callJSON sends a request, requires status want, checks a successful
// answer against the OpenAPI document, and decodes it into out.
func callJSON(t *testing.T, method, target, key string, body any, want int, out any) {
	t.Helper()
	rec := call(t, method, target, key, body)
	require.Equal(t, want, rec.Code, "%s %s: %s", method, target, rec.Body.String())
	if want < 300 {
		checkAgainstOpenAPI(t, method, target, want, rec.Body.Bytes())
	} else {
		var e struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
		require.NotEmpty(t, e.Error.Code)
		require.NotEmpty(t, e.Error.Message)
	}
	if out != nil {
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out))
	}
}

// agg is a Go aggregate of records.
type agg struct {
	n, e4, e5, sum, max, rq, rs uint64
	lat                         []uint64
	users                       map[string]bool
}

func (a *agg) add(r *ingest.Record) {
	a.n++
	switch {
	case r.StatusCode >= 500:
		a.e5++
	case r.StatusCode >= 400:
		a.e4++
	}
	a.sum += r.ResponseTimeUs
	a.max = max(a.max, r.ResponseTimeUs)
	a.rq += r.RequestBytes
	a.rs += r.ResponseBytes
	a.lat = append(a.lat, r.ResponseTimeUs)
	if a.users == nil {
		a.users = map[string]bool{}
	}
	a.users[r.UserID] = true
}

func (a *agg) avgMs() float64 {
	if a.n == 0 {
		return 0
	}
	return float64(a.sum) / float64(a.n) / 1000
}

func (a *agg) pct(k uint64) float64 {
	if a.n == 0 {
		return 0
	}
	return 100 * float64(k) / float64(a.n)
}

// ddError is the latency sketch's relative error.
const ddError = 0.01

// checkQuantile requires got (ms) to be the q quantile of the records'
// latencies within the sketch's error.
func (a *agg) checkQuantile(t *testing.T, q float64, got *float64) {
	t.Helper()
	require.NotNil(t, got)
	s := slices.Clone(a.lat)
	slices.Sort(s)
	rank := q * float64(len(s)-1)
	lo, hi := float64(s[int(math.Floor(rank))])/1000, float64(s[int(math.Ceil(rank))])/1000
	require.True(t, *got >= lo*(1-ddError)-1e-9 && *got <= hi*(1+ddError)+1e-9, "p%v: %v not in [%v, %v]", q*100, *got, lo, hi)
}

// checkTotals compares API totals with a Go aggregate.
func (a *agg) checkTotals(t *testing.T, got Totals, what string) {
	t.Helper()
	require.Equal(t, a.n, got.Requests, what)
	require.Equal(t, a.e5, got.Errors, what)
	require.Equal(t, a.e4, got.ClientErrors, what)
	require.InDelta(t, a.pct(a.e5), got.ErrorRate, 1e-9, what)
	require.InDelta(t, a.pct(a.e4), got.ClientErrorRate, 1e-9, what)
	require.InDelta(t, a.avgMs(), got.AverageResponseTime, 1e-6, what)
	require.InDelta(t, float64(a.max)/1000, got.MaxResponseTime, 1e-9, what)
	require.Equal(t, a.rq, got.RequestBytes, what)
	require.Equal(t, a.rs, got.ResponseBytes, what)
}

// where filters the fixture's records.
func where(keep func(r *ingest.Record) bool) []*ingest.Record {
	var out []*ingest.Record
	for i := range fx.recs {
		if keep(&fx.recs[i]) {
			out = append(out, &fx.recs[i])
		}
	}
	return out
}

func in(r *ingest.Record, start, end time.Time) bool {
	t := time.UnixMilli(r.EventTimeMs)
	return !t.Before(start) && t.Before(end)
}

func sum(rs []*ingest.Record) *agg {
	a := &agg{}
	for _, r := range rs {
		a.add(r)
	}
	return a
}

// checkAgainstOpenAPI validates a JSON response with the document's
// schema for its route.
func checkAgainstOpenAPI(t *testing.T, method, target string, status int, body []byte) {
	t.Helper()
	path := strings.TrimPrefix(strings.SplitN(target, "?", 2)[0], BasePath)
	doc := openAPIJSON(t)
	paths := doc["paths"].(map[string]any)
	for tmpl, item := range paths {
		// QuoteMeta escapes the template's braces.
		re := regexp.MustCompile("^" + regexp.MustCompile(`\\\{[^}]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), "[^/]+") + "$")
		if !re.MatchString(path) {
			continue
		}
		op, ok := item.(map[string]any)[strings.ToLower(method)].(map[string]any)
		require.True(t, ok, "%s %s is not in the OpenAPI document", method, tmpl)
		resp := op["responses"].(map[string]any)[fmt.Sprint(status)].(map[string]any)
		sch := resp["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
		var v any
		require.NoError(t, json.Unmarshal(body, &v))
		require.NoError(t, validate(v, sch, doc, "$"), "%s %s", method, tmpl)
		return
	}
	t.Fatalf("%s is not in the OpenAPI document", path)
}

var openAPICache map[string]any

func openAPIJSON(t *testing.T) map[string]any {
	if openAPICache == nil {
		rec := call(t, http.MethodGet, BasePath+"/openapi.json", "", nil)
		require.Equal(t, http.StatusOK, rec.Code)
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &openAPICache))
	}
	return openAPICache
}

// validate checks v against a JSON schema of the OpenAPI subset the
// document uses; objects may not carry properties the schema omits.
func validate(v any, sch map[string]any, doc map[string]any, at string) error {
	if ref, ok := sch["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		def, ok := doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: no schema %s", at, name)
		}
		return validate(v, def, doc, at)
	}
	if v == nil {
		if sch["nullable"] == true {
			return nil
		}
		return fmt.Errorf("%s: null where the schema does not allow it", at)
	}
	if all, ok := sch["allOf"].([]any); ok {
		for _, s := range all {
			if err := validate(v, s.(map[string]any), doc, at); err != nil {
				return err
			}
		}
		return nil
	}
	if one, ok := sch["oneOf"].([]any); ok {
		for _, s := range one {
			if validate(v, s.(map[string]any), doc, at) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: matches no alternative", at)
	}
	switch sch["type"] {
	case nil:
		return nil
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, v)
		}
		props, _ := sch["properties"].(map[string]any)
		if req, ok := sch["required"].([]any); ok {
			for _, r := range req {
				if _, ok := m[r.(string)]; !ok {
					return fmt.Errorf("%s: required %s missing", at, r)
				}
			}
		}
		extra, _ := sch["additionalProperties"].(map[string]any)
		for k, x := range m {
			p, ok := props[k].(map[string]any)
			switch {
			case ok:
			case extra != nil:
				p = extra
			default:
				return fmt.Errorf("%s: property %q is not in the schema", at, k)
			}
			if err := validate(x, p, doc, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, v)
		}
		for i, x := range a {
			if err := validate(x, sch["items"].(map[string]any), doc, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want a string, got %T", at, v)
		}
		if sch["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf("%s: %q is not RFC 3339", at, s)
			}
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("%s: want an integer, got %v", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: want a number, got %T", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", at, v)
		}
	}
	return nil
}
