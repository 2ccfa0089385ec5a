package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/schema"
)

// maxQueryBody bounds the JSON body of a query request.
const maxQueryBody = 1 << 20

// defaultDays is the range of a request without dates: the last 30 days,
// today included.
const defaultDays = 30

// queryParams reads a request's query string once; a malformed one (a
// bad escape) is a 400.
func queryParams(c echo.Context) (url.Values, error) {
	v, err := url.ParseQuery(c.Request().URL.RawQuery)
	if err != nil {
		return nil, BadRequest("the query string is malformed: %v", err)
	}
	return v, nil
}

// single returns a parameter given at most once.
func single(q url.Values, name string) (string, error) {
	vs := q[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", BadRequest("%s given %d times", name, len(vs))
}

// list reads a parameter given as repeats or comma-separated.
func list(q url.Values, name string) []string {
	var out []string
	for _, v := range q[name] {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// intParam reads an optional integer within [lo, hi].
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s, err := single(q, name)
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, BadRequest("%s %q: want a whole number from %d to %d", name, s, lo, hi)
	}
	return n, nil
}

// decodeBody reads a JSON request body into v, refusing unknown fields
// (a typo is an error, not a silently ignored filter), trailing data and
// bodies over maxQueryBody.
func decodeBody(c echo.Context, v any) error {
	if err := jsonContentType(c); err != nil {
		return err
	}
	body, err := readBody(c, maxQueryBody)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return BadRequest("the body is empty: send a JSON object")
	}
	if trimmed[0] != '{' {
		return BadRequest("the body is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest("the body is not valid: %s", jsonProblem(err))
	}
	if dec.More() {
		return BadRequest("the body has data after its JSON object")
	}
	return nil
}

// jsonContentType is the one rule for JSON request bodies: a body
// labelled application/json (or a +json type), or not labelled at all,
// or labelled application/x-www-form-urlencoded — what curl -d sends
// when told nothing — is read as JSON; any other type is a 415 saying
// what to send.
func jsonContentType(c echo.Context) error {
	ct := c.Request().Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, _ := strings.Cut(strings.ToLower(ct), ";")
	mt = strings.TrimSpace(mt)
	if mt == "application/json" || mt == "application/x-www-form-urlencoded" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the body as JSON (Content-Type: application/json), not %.100s", ct)
}

// readBody reads a request body of at most max bytes, inflating a gzip
// Content-Encoding (the inflated size counts against max, so a small
// bomb stays small). A body that arrives too slowly is a 408 and closes
// the connection.
func readBody(c echo.Context, max int64) ([]byte, error) {
	r := c.Request()
	var in io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get(echo.HeaderContentEncoding))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, bodyError(c, err, "the gzip body is not valid")
		}
		defer zr.Close()
		in = zr
	default:
		return nil, Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Encoding %q: send the body as it is or as gzip", enc)
	}
	body, err := io.ReadAll(io.LimitReader(in, max+1))
	if err != nil {
		return nil, bodyError(c, err, "reading the body")
	}
	if int64(len(body)) > max {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "payload_too_large", "the body is over %d bytes", max)
	}
	return body, nil
}

func bodyError(c echo.Context, err error, what string) error {
	if errors.Is(err, errBodyTimeout) {
		c.Response().Header().Set(echo.HeaderConnection, "close")
		return Errorf(http.StatusRequestTimeout, "request_timeout", "the request body arrived too slowly; the connection is closed")
	}
	return BadRequest("%s: %v", what, err)
}

// jsonProblem says what is wrong with a JSON body in the client's terms.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return fmt.Sprintf("want a JSON object, got %s", typeErr.Value)
		}
		return fmt.Sprintf("%s: want %s, got %s", typeErr.Field, jsonKind(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends too early"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonKind(goType string) string {
	switch {
	case strings.HasSuffix(goType, ".stringList"):
		return "a string or an array of strings"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "string", strings.HasSuffix(goType, ".Granularity"), strings.HasSuffix(goType, ".Metric"),
		strings.HasSuffix(goType, ".Dimension"), strings.HasSuffix(goType, ".Format"), strings.HasSuffix(goType, ".Dataset"):
		return "a string"
	case goType == "bool":
		return "true or false"
	}
	return "an object"
}

// dates is how a request names its range.
type dates struct {
	Start, End, Zone string
}

// rangeOf reads a request's range: RFC 3339 instants, or YYYY-MM-DD
// dates in its time zone, where a date-only end includes that whole day.
// Without a start, the range begins defaultDays before its end (not before
// schema.FirstYear); without an end, it runs to the end of today.
func rangeOf(d dates, now time.Time) (query.Range, error) {
	loc := time.UTC
	if d.Zone != "" {
		l, err := loadZone(d.Zone)
		if err != nil {
			return query.Range{}, err
		}
		loc = l
	}
	var r query.Range
	r.Loc = loc
	today := now.In(loc)
	midnight := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, loc)
	var err error
	if d.End == "" {
		r.End = midnight.AddDate(0, 0, 1)
	} else if r.End, err = parseDate("endDate", d.End, loc, true); err != nil {
		return r, err
	}
	if d.Start == "" {
		e := r.End.In(loc)
		r.Start = time.Date(e.Year(), e.Month(), e.Day(), 0, 0, 0, 0, loc).AddDate(0, 0, -defaultDays)
		if d.End == "" {
			r.Start = midnight.AddDate(0, 0, 1-defaultDays)
		}
		if first := time.Date(schema.FirstYear, 1, 1, 0, 0, 0, 0, loc); r.Start.Before(first) {
			r.Start = first // what the store holds begins there
		}
	} else if r.Start, err = parseDate("startDate", d.Start, loc, false); err != nil {
		return r, err
	}
	if !r.End.After(r.Start) {
		return r, BadRequest("startDate %s is not before endDate %s", r.Start.Format(time.RFC3339), r.End.Format(time.RFC3339))
	}
	return r, nil
}

// zones caches loaded time zones (LoadLocation reads files); only valid
// IANA names get in, so it stays small.
var zones sync.Map // name → *time.Location

func loadZone(name string) (*time.Location, error) {
	if len(name) > 64 || strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return nil, BadRequest("timezone %q: want an IANA name such as Europe/Berlin", name)
	}
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, BadRequest("timezone %q: want an IANA name such as Europe/Berlin", name)
	}
	zones.Store(name, l)
	return l, nil
}

// parseDate reads an RFC 3339 time or a date in loc; either is held to the
// years the store holds (schema.InDateSpan), judged on the date as written.
func parseDate(name, s string, loc *time.Location, end bool) (time.Time, error) {
	dateOnly := len(s) == len(time.DateOnly)
	var t time.Time
	var err error
	if dateOnly {
		t, err = time.ParseInLocation(time.DateOnly, s, loc)
	} else {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err != nil {
		return time.Time{}, BadRequest("%s %q: want RFC 3339 (2026-01-31T12:00:00Z) or a date (2026-01-31)", name, s)
	}
	if !schema.InDateSpan(t) {
		return time.Time{}, BadRequest("%s %q: out of range: dates and times go from %s", name, s, schema.DateSpan)
	}
	if dateOnly {
		if end {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	return t.Truncate(time.Millisecond), nil
}

// filtersOf reads filters from query parameters.
func filtersOf(q url.Values) (query.Filters, error) {
	f := query.Filters{Endpoint: list(q, "endpoint"), Method: list(q, "method"), User: nil}
	var err error
	if f.StatusCode, err = ints(list(q, "statusCode"), "statusCode", 100, 599); err != nil {
		return f, err
	}
	if f.StatusClass, err = ints(list(q, "statusClass"), "statusClass", 1, 5); err != nil {
		return f, err
	}
	return f, checkFilters(f)
}

func ints(vs []string, name string, lo, hi int) ([]int, error) {
	var out []int
	for _, v := range vs {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.ToLower(v), "xx"))
		if err != nil || n < lo || n > hi {
			return nil, BadRequest("%s %q: want a number from %d to %d", name, v, lo, hi)
		}
		out = append(out, n)
	}
	return out, nil
}

// maxFilterValues bounds each filter list.
const maxFilterValues = 100

func checkFilters(f query.Filters) error {
	for name, n := range map[string]int{"endpoint": len(f.Endpoint), "method": len(f.Method), "statusCode": len(f.StatusCode),
		"statusClass": len(f.StatusClass), "userId": len(f.User)} {
		if n > maxFilterValues {
			return BadRequest("filter %s has %d values: at most %d", name, n, maxFilterValues)
		}
	}
	for name, vs := range f.Custom {
		if len(vs) > maxFilterValues {
			return BadRequest("filter dimensions.%s has %d values: at most %d", name, len(vs), maxFilterValues)
		}
	}
	for _, c := range f.StatusCode {
		if c < 100 || c > 599 {
			return BadRequest("filter statusCode %d: want 100 to 599", c)
		}
	}
	for _, c := range f.StatusClass {
		if c < 1 || c > 5 {
			return BadRequest("filter statusClass %d: want 1 to 5 (2 for 2xx)", c)
		}
	}
	return nil
}

// queryError maps a query service error: a refused request is a 400,
// anything else a server fault.
func queryError(err error) error {
	if query.IsInvalid(err) {
		return BadRequest("%s", err.Error())
	}
	return err
}

// bodyQueryParams are the query parameters a route that takes its input
// in the request body also reads; a parameter outside them is refused
// rather than ignored (a POST /export?tenantId=acme answering for every
// tenant would widen what the caller asked for).
var bodyQueryParams = map[string][]string{
	BasePath + "/time-series":            {"tenantId", "userId"},
	BasePath + "/export":                 {"tenantId", "userId"},
	BasePath + "/limits/check":           {"tenantId", "userId"},
	BasePath + "/limits/forward-auth":    {"refusedStatus"},
	BasePath + "/admin/accounts/:userId": {"tenantId"},
}

// bodyRouteQuery refuses, on POST, PUT and PATCH routes, query
// parameters the route does not read.
func bodyRouteQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		switch c.Request().Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
		default:
			return next(c)
		}
		if c.Request().URL.RawQuery == "" || c.Path() == "" {
			return next(c)
		}
		q, err := queryParams(c)
		if err != nil {
			return err
		}
		allowed := bodyQueryParams[c.Path()]
		for name := range q {
			if !slices.Contains(allowed, name) {
				if len(allowed) == 0 {
					return BadRequest("query parameter %.60q: this route takes no query parameters (its input is the JSON body)", name)
				}
				return BadRequest("query parameter %.60q: this route reads only %s from the query string (the rest goes in the JSON body)", name, strings.Join(allowed, " and "))
			}
		}
		return next(c)
	}
}

// queryScope takes tenantId and userId from the query string into a
// body's scope fields; a value given in both places must agree.
func queryScope(c echo.Context, tenant, user *string) error {
	q, err := queryParams(c)
	if err != nil {
		return err
	}
	for name, dst := range map[string]*string{"tenantId": tenant, "userId": user} {
		v, err := single(q, name)
		if err != nil {
			return err
		}
		if _, given := q[name]; !given {
			continue
		}
		if v == "" {
			return BadRequest("%s is empty in the query string", name)
		}
		if *dst != "" && *dst != v {
			return BadRequest("%s is %.140q in the query string and %.140q in the body", name, v, *dst)
		}
		*dst = v
	}
	return nil
}
