package api

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Requests name dates and times from 1970-01-01 to 2105-12-31, judged on
// the date as written (a date in the request's time zone, an RFC 3339 time
// in its own offset): rollup buckets are DateTime columns, which end on
// 2106-02-07. Outside that span every route answers a 400 naming the
// field; inside it every route answers.

// dateRoute is a route that reads startDate, endDate and timezone.
type dateRoute struct {
	name string
	send func(t *testing.T, start, end, zone string) *httptest.ResponseRecorder
}

func dateRoutes() []dateRoute {
	get := func(path, key, extra string) func(t *testing.T, start, end, zone string) *httptest.ResponseRecorder {
		return func(t *testing.T, start, end, zone string) *httptest.ResponseRecorder {
			q := url.Values{}
			for name, v := range map[string]string{"startDate": start, "endDate": end, "timezone": zone} {
				if v != "" {
					q.Set(name, v)
				}
			}
			target := BasePath + path + "?" + q.Encode()
			if extra != "" {
				target += "&" + extra
			}
			return call(t, "GET", target, key, nil)
		}
	}
	post := func(path, key string, fields map[string]any) func(t *testing.T, start, end, zone string) *httptest.ResponseRecorder {
		return func(t *testing.T, start, end, zone string) *httptest.ResponseRecorder {
			body := map[string]any{}
			for k, v := range fields {
				body[k] = v
			}
			for name, v := range map[string]string{"startDate": start, "endDate": end, "timezone": zone} {
				if v != "" {
					body[name] = v
				}
			}
			return call(t, "POST", BasePath+path, key, body)
		}
	}
	routes := []dateRoute{
		{"GET /stats", get("/stats", fx.userKey, "groupBy=day")},
		{"GET /stats (global admin)", get("/stats", adminKey, "")},
		{"POST /time-series", post("/time-series", fx.userKey, map[string]any{"granularity": "day", "metrics": []string{"requests", "p95ResponseTime"}})},
		{"POST /time-series by user", post("/time-series", adminKey, map[string]any{"granularity": "day", "groupBy": "userId", "metrics": []string{"requests", "uniqueUsers"}})},
		{"GET /endpoints/{endpoint}/analytics", get("/endpoints/"+url.PathEscape(fx.recs[0].Endpoint)+"/analytics", fx.userKey, "")},
		{"GET /top-users", get("/top-users", fx.tenantAdminKey, "")},
		{"GET /dimensions", get("/dimensions", fx.userKey, "")},
	}
	for _, ds := range []string{"events", "hourly", "daily", "dimensions"} {
		routes = append(routes, dateRoute{"POST /export " + ds, post("/export", fx.userKey, map[string]any{"format": "csv", "dataset": ds})})
	}
	for _, ds := range []string{"billing", "sla"} {
		routes = append(routes, dateRoute{"POST /export " + ds, post("/export", fx.tenantAdminKey, map[string]any{"format": "json", "dataset": ds})})
	}
	return routes
}

// errorMessage reads the message of an error answer.
func errorMessage(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return e.Error.Message
}

func TestDatesOutsideTheStoreAre400(t *testing.T) {
	bad := []struct {
		field, value string
	}{
		{"startDate", "1969-12-31"},
		{"startDate", "1900-01-01"},
		{"startDate", "1969-12-31T23:59:59Z"},
		{"startDate", "9999-12-01"},
		{"startDate", "2106-01-01"},
		{"startDate", "2150-01-01T00:00:00Z"},
		{"endDate", "9999-12-31"},
		{"endDate", "2106-01-01"},
		{"endDate", "2106-01-01T00:00:00+01:00"},
		{"endDate", "9999-12-31T00:00:00Z"},
		{"endDate", "1969-12-31"},
		{"endDate", "1969-12-31T12:00:00Z"},
	}
	for _, r := range dateRoutes() {
		for _, b := range bad {
			for _, zone := range []string{"", "Pacific/Kiritimati"} {
				start, end := "2026-10-23", "2026-10-24"
				if b.field == "startDate" {
					start = b.value
				} else {
					end = b.value
				}
				rec := r.send(t, start, end, zone)
				require.Equal(t, 400, rec.Code, "%s %s=%s: %s", r.name, b.field, b.value, rec.Body.String())
				msg := errorMessage(t, rec)
				require.Contains(t, msg, b.field+` "`+b.value+`"`, r.name)
				require.Contains(t, msg, "1970-01-01", r.name)
				require.Contains(t, msg, "2105-12-31", r.name)
			}
		}
	}

	// The month of an SLA report.
	for _, m := range []string{"1969-12", "1900-01", "2106-01", "9999-12"} {
		rec := call(t, "GET", BasePath+"/sla?month="+m, fx.userKey, nil)
		require.Equal(t, 400, rec.Code, "month %s: %s", m, rec.Body.String())
		msg := errorMessage(t, rec)
		require.Contains(t, msg, `month "`+m+`"`)
		require.Contains(t, msg, "1970-01 to 2105-12")
	}

	// A key's expiry.
	for _, at := range []string{"2106-01-01T00:00:00Z", "2150-06-01T00:00:00Z", "9999-12-31T00:00:00Z", "1969-12-31T00:00:00Z"} {
		rec := call(t, "POST", BasePath+"/admin/keys", adminKey, map[string]any{"tenantId": "dates", "userId": "u", "expiresAt": at})
		require.Equal(t, 400, rec.Code, "expiresAt %s: %s", at, rec.Body.String())
		require.Contains(t, errorMessage(t, rec), "expiresAt", at)
	}
	var keys KeyList
	callJSON(t, "GET", BasePath+"/admin/keys?tenantId=dates", adminKey, nil, 200, &keys)
	require.Empty(t, keys.Keys, "no key was issued")
}

// The edges of the accepted span answer 2xx on every route: the first and
// the last 400 days (the longest range a route takes), written as dates in
// zones 14 hours east and 12 hours west of UTC and as RFC 3339 times with
// such offsets.
func TestTheWholeAcceptedSpanAnswers(t *testing.T) {
	// The last month of the span is the current one, so that the SLA
	// report of it and keys expiring at its end are allowed.
	setClock(t, time.Date(2105, 12, 31, 12, 0, 0, 0, time.UTC))
	type span struct{ start, end, zone string }
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	const maxDays = 400
	first, last := day(1970, 1, 1), day(2105, 12, 31)
	var spans []span
	for _, zone := range []string{"", "Etc/GMT-14", "Etc/GMT+12", "Europe/Berlin"} {
		// A date-only end includes its day: 400 days end on the 400th.
		spans = append(spans,
			span{first.Format(time.DateOnly), first.AddDate(0, 0, maxDays-1).Format(time.DateOnly), zone},
			span{last.AddDate(0, 0, 1-maxDays).Format(time.DateOnly), last.Format(time.DateOnly), zone})
	}
	for _, off := range []string{"+14:00", "-12:00", "Z"} {
		startEarly := "1970-01-01T00:00:00" + off
		endLate := "2105-12-31T23:59:59.999" + off
		early, err := time.Parse(time.RFC3339Nano, startEarly)
		require.NoError(t, err)
		late, err := time.Parse(time.RFC3339Nano, endLate)
		require.NoError(t, err)
		spans = append(spans,
			span{startEarly, early.AddDate(0, 0, maxDays).Format(time.RFC3339Nano), ""},
			span{late.AddDate(0, 0, -maxDays).Format(time.RFC3339Nano), endLate, ""})
	}
	for _, r := range dateRoutes() {
		for _, s := range spans {
			rec := answered(t, func() *httptest.ResponseRecorder { return r.send(t, s.start, s.end, s.zone) })
			require.Less(t, rec.Code, 300, "%s %+v: %s", r.name, s, rec.Body.String())
		}
	}
	// Without a start the range reaches 30 days back, but not before the span.
	var res StatsResponse
	callJSON(t, "GET", BasePath+"/stats?endDate=1970-01-10", fx.userKey, nil, 200, &res)
	require.Equal(t, first, res.Range.Start)

	// Bills have no range cap: the whole span at once, in both extreme
	// zones; a user without an account has a bill per UTC calendar month
	// the range touches (the zone moves the range by up to a day).
	for _, zone := range []string{"Etc/GMT-14", "Etc/GMT+12"} {
		rec := call(t, "POST", BasePath+"/export", fx.tenantAdminKey, map[string]any{"format": "csv", "dataset": "billing",
			"startDate": "1970-01-01", "endDate": "2105-12-31", "timezone": zone, "userId": "no-account"})
		require.Equal(t, 200, rec.Code, "%s: %s", zone, rec.Body.String())
		loc := mustZone(t, zone)
		from, to := time.Date(1970, 1, 1, 0, 0, 0, 0, loc).UTC(), time.Date(2106, 1, 1, 0, 0, 0, 0, loc).Add(-time.Millisecond).UTC()
		months := (to.Year()-from.Year())*12 + int(to.Month()) - int(from.Month()) + 1
		require.Equal(t, months+1, strings.Count(rec.Body.String(), "\n"), zone) // and the header
	}
	// The first and the last month of SLA reports.
	for _, zone := range []string{"Etc/GMT-14", "Etc/GMT+12"} {
		for _, m := range []string{"1970-01", "2105-12"} {
			var rep SLAResponse
			callJSON(t, "GET", BasePath+"/sla?month="+m+"&timezone="+url.QueryEscape(zone), fx.userKey, nil, 200, &rep)
			require.Equal(t, m, rep.Month)
		}
	}
	// A key may expire at the end of the span.
	for _, at := range []string{"2105-12-31T23:59:59.999Z", "2105-12-31T23:59:59-12:00"} {
		var k CreatedKey
		callJSON(t, "POST", BasePath+"/admin/keys", adminKey, map[string]any{"tenantId": "span", "userId": "u", "expiresAt": at}, 201, &k)
		require.NotNil(t, k.ExpiresAt)
	}
}

// answered runs a request and fails the test if it has no answer within a
// minute (the planner once looped forever on some far-future ranges).
func answered(t *testing.T, send func() *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- send() }()
	select {
	case rec := <-done:
		return rec
	case <-time.After(time.Minute):
		t.Fatal("no answer within a minute")
		return nil
	}
}

// A range over the cap names its span and the cap in days, also when the
// span is too long for a time.Duration.
func TestRangeOverTheCapIsSaidInDays(t *testing.T) {
	start, end := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
	days := (end.Unix() - start.Unix()) / 86400
	for _, r := range dateRoutes() {
		if strings.HasSuffix(r.name, "billing") || strings.HasSuffix(r.name, "sla") {
			continue // bills and SLA months have caps of their own
		}
		rec := r.send(t, "1970-01-01", "2105-12-31", "")
		require.Equal(t, 400, rec.Code, "%s: %s", r.name, rec.Body.String())
		msg := errorMessage(t, rec)
		require.Contains(t, msg, fmt.Sprintf("the range spans %d days", days), r.name)
		require.Contains(t, msg, "at most 400 days", r.name)
		require.NotContains(t, msg, "h0m", r.name)
	}
}
