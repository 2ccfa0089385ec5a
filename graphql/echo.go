package graphql

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/labstack/echo/v4"
)

// maxBody is the most of a request body read for its query; a larger
// body counts Options.Fallback.
const maxBody = 1 << 20

// costKeys numbers the context keys of Cost functions.
var costKeys atomic.Uint64

// Cost returns a function for limits.MiddlewareConfig.Cost and
// producer.MiddlewareConfig.Cost: the complexity of the request's
// GraphQL query, sent as a POST of application/json
// ({"query", "operationName", "variables"}) or application/graphql (the
// query; operationName and variables in the URL), or a GET with the
// query, operationName and variables URL parameters.
//
// A request that is not GraphQL or not a valid query counts
// Options.Fallback; the handler reports the error to the client. Cost
// meters and does not refuse: a query past MaxDepth or MaxComplexity
// counts its complexity, and refusing it is the handler's call
// (Complexity returns the *LimitError).
//
// The handler reads the body unchanged. The result is kept in the echo
// context, so the middlewares that share one function parse a request
// once. The first call must come before the handler consumes the body:
// the limits middleware's does, and the producer's, made after the
// handler, then finds it kept.
func Cost(opts Options) func(c echo.Context) uint64 {
	fallback := opts.Fallback
	if fallback == 0 {
		fallback = 1
	}
	key := "apimeter.graphqlCost." + strconv.FormatUint(costKeys.Add(1), 10)
	return func(c echo.Context) uint64 {
		if n, ok := c.Get(key).(uint64); ok {
			return n
		}
		n := fallback
		if query, op, vars, ok := request(c.Request()); ok {
			if r, err := measure(query, op, vars, &opts); err == nil {
				n = r.cost
			}
		}
		c.Set(key, n)
		return n
	}
}

// request reads the GraphQL request of an HTTP request.
func request(r *http.Request) (query, op string, vars map[string]any, ok bool) {
	q := r.URL.Query()
	params := func() bool {
		op = q.Get("operationName")
		if s := q.Get("variables"); s != "" {
			return decode([]byte(s), &vars) == nil
		}
		return true
	}
	switch r.Method {
	case http.MethodGet:
		query = q.Get("query")
		return query, op, vars, query != "" && params()
	case http.MethodPost:
		mt, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
		if mt != echo.MIMEApplicationJSON && mt != "application/graphql" {
			return "", "", nil, false
		}
		body, ok := readBody(r)
		if !ok {
			return "", "", nil, false
		}
		if mt == "application/graphql" {
			query = string(body)
			return query, op, vars, query != "" && params()
		}
		var req struct {
			Query         string         `json:"query"`
			OperationName string         `json:"operationName"`
			Variables     map[string]any `json:"variables"`
		}
		if decode(body, &req) != nil || req.Query == "" {
			return "", "", nil, false
		}
		return req.Query, req.OperationName, req.Variables, true
	}
	return "", "", nil, false
}

// decode reads JSON with numbers as json.Number, so large integers stay
// exact.
func decode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// readBody reads up to maxBody bytes of a request's body and puts them
// back in front of the rest. ok is false for a larger body, or one that
// failed.
func readBody(r *http.Request) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	return b, err == nil && len(b) <= maxBody
}

type readCloser struct {
	io.Reader
	io.Closer
}
