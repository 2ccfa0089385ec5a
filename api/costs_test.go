package api

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/query"
)

// cents is a price of units on the test plan, computed here with
// integers: a fee of 10.00, 100 units included, 2.50 per 1,000 more,
// rounded half up to cents.
func cents(units int64) int64 {
	billable := max(units-100, 0)
	return 1000 + (billable*250+500)/1000
}

func money(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func TestCostsAndBillingExport(t *testing.T) {
	heavy := fx.recs[0].Endpoint // weighted 3
	ps, err := plans.ParsePlans([]byte(`defaultPlan: metered
plans:
  - name: metered
    monthlyRequests: 100
    price:
      currency: EUR
      monthlyFee: "10"
      includedRequests: 100
      perThousand: "2.50"
      weights:
        "` + heavy + `": "3"
`))
	require.NoError(t, err)
	now := time.Date(2026, 10, 28, 12, 0, 0, 0, time.UTC)
	ch := limits.ClickHouse{DB: fx.db}
	lim := limits.New(limits.Config{Plans: ps, Usage: ch, Resolver: accounts.New(fx.db), Clock: limits.ClockFunc(func() time.Time { return now })})
	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountAnalytics(&Analytics{Query: query.New(fx.db, query.Limits{}), Keys: fx.keys, Limits: lim, Now: func() time.Time { return now }})

	october := func(r *ingest.Record) bool {
		return in(r, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) && r.StatusCode != 429
	}
	unitsOf := func(user string) (requests, units int64) {
		for _, r := range where(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && r.UserID == user && october(r) }) {
			requests++
			if r.Endpoint == heavy {
				units += 3
			} else {
				units++
			}
		}
		return requests, units
	}

	var cr CostsResponse
	rec := serveJSON(t, srv, "GET", BasePath+"/costs?periods=2", fx.userKey, "", &cr)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "metered", cr.Plan)
	require.Equal(t, "EUR", cr.Currency)
	require.Len(t, cr.Periods, 2)
	cur, prev := cr.Periods[0], cr.Periods[1]
	require.True(t, cur.Current)
	require.False(t, prev.Current)
	require.Equal(t, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), cur.PeriodStart.UTC())
	require.Equal(t, time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), prev.PeriodStart.UTC())
	requests, units := unitsOf(fx.user)
	require.Positive(t, units)
	require.EqualValues(t, requests, cur.Requests)
	require.Equal(t, strconv.FormatInt(units, 10), cur.Units.String())
	require.Equal(t, money(cents(units)), cur.Total.StringFixed(2))
	require.Equal(t, "10.00", prev.Total.StringFixed(2), "a period without use costs the fee")
	var endpointUnits int64
	for _, e := range cur.Endpoints {
		endpointUnits += e.Units.IntPart()
		if e.Endpoint == heavy {
			require.Equal(t, "3", e.Weight.String())
		}
	}
	require.Equal(t, units, endpointUnits)

	// The billing export of the tenant: a row per user with use in October.
	body := `{"format":"csv","dataset":"billing","startDate":"2026-10-01T00:00:00Z","endDate":"2026-10-31T00:00:00Z"}`
	rec = serveJSON(t, srv, "POST", BasePath+"/export", fx.tenantAdminKey, body, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	rows, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
	require.NoError(t, err)
	require.Equal(t, billingColumns, rows[0])
	var users []string
	for _, r := range where(func(r *ingest.Record) bool { return r.TenantID == fx.tenant && october(r) }) {
		if !slices.Contains(users, r.UserID) {
			users = append(users, r.UserID)
		}
	}
	require.Len(t, rows, 1+len(users))
	for _, row := range rows[1:] {
		requests, units := unitsOf(row[1])
		require.Equal(t, fx.tenant, row[0])
		require.Equal(t, strconv.FormatInt(requests, 10), row[7], row[1])
		require.Equal(t, money(cents(units)), row[13], row[1])
	}
	// A user key exports its own bill only; Arrow is refused.
	rec = serveJSON(t, srv, "POST", BasePath+"/export", fx.userKey, strings.Replace(body, `"csv"`, `"ndjson"`, 1), nil)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, 1, strings.Count(rec.Body.String(), "\n"))
	require.Contains(t, rec.Body.String(), `"userId":"`+fx.user+`"`)
	rec = serveJSON(t, srv, "POST", BasePath+"/export", fx.userKey, strings.Replace(body, `"csv"`, `"arrow"`, 1), nil)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	rec = serveJSON(t, srv, "POST", BasePath+"/export", fx.userKey, strings.Replace(body, `"csv",`, `"csv","filters":{"endpoint":"/x"},`, 1), nil)
	require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	// Another tenant's bills are out of reach.
	rec = serveJSON(t, srv, "GET", BasePath+"/costs?tenantId="+fx.otherTenant, fx.tenantAdminKey, "", nil)
	require.Equal(t, http.StatusForbidden, rec.Code)
}

// serveJSON sends a request to srv and decodes a 2xx JSON answer into out.
func serveJSON(t *testing.T, srv *Server, method, target, key, body string, out any) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	srv.Echo().ServeHTTP(rec, req)
	if out != nil && rec.Code < 300 {
		checkAgainstOpenAPI(t, method, target, rec.Code, rec.Body.Bytes())
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), out))
	}
	return rec
}
