package graphql

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
)

// costApp is an echo app whose middleware puts a request's cost in the
// X-Cost header and whose handler answers the body it reads.
func costApp(cost func(echo.Context) uint64) *echo.Echo {
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Response().Header().Set("X-Cost", strconv.FormatUint(cost(c), 10))
			return next(c)
		}
	})
	echoBody := func(c echo.Context) error {
		b, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		return c.Blob(http.StatusOK, "text/plain", b)
	}
	e.GET("/graphql", echoBody)
	e.POST("/graphql", echoBody)
	return e
}

func serve(e *echo.Echo, method, target, contentType, body string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if contentType != "" {
		req.Header.Set(echo.HeaderContentType, contentType)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func TestCost(t *testing.T) {
	e := costApp(Cost(Options{}))
	get := "/graphql?" + url.Values{
		"query":     {`query Q($n: Int) { users(first: $n) { name } }`},
		"variables": {`{"n": 2}`},
	}.Encode()
	big := `{"query": "{ a b }"` + strings.Repeat(" ", maxBody) + `}`
	cases := []struct {
		name, method, target, contentType, body string
		want                                    string
	}{
		// users 1 + 5 × name 1
		{"json", http.MethodPost, "/graphql", "application/json",
			`{"query": "query Q($n: Int) { users(first: $n) { name } }", "variables": {"n": 5}}`, "6"},
		{"json charset", http.MethodPost, "/graphql", "application/json; charset=utf-8", `{"query": "{ a b }"}`, "2"},
		{"json operation", http.MethodPost, "/graphql", "application/json",
			`{"query": "query A { a } query B { b c }", "operationName": "B", "variables": null}`, "2"},
		{"graphql body", http.MethodPost, "/graphql", "application/graphql", `{ users(first: 3) { name } }`, "4"},
		{"graphql body operation", http.MethodPost, "/graphql?operationName=A", "application/graphql", `query A { a } query B { b c }`, "1"},
		{"get", http.MethodGet, get, "", "", "3"},
		{"json at the limit", http.MethodPost, "/graphql", "application/json",
			`{"query": "{ a b }"` + strings.Repeat(" ", maxBody-len(`{"query": "{ a b }"}`)) + `}`, "2"},
		{"not graphql", http.MethodPost, "/graphql", "text/plain", `{ a b }`, "1"},
		{"no query", http.MethodPost, "/graphql", "application/json", `{"hello": "world"}`, "1"},
		{"bad json", http.MethodPost, "/graphql", "application/json", `{"query": `, "1"},
		{"syntax error", http.MethodPost, "/graphql", "application/json", `{"query": "{ a "}`, "1"},
		{"negative first", http.MethodPost, "/graphql", "application/graphql", `{ a(first: -1) { b } }`, "1"},
		{"empty body", http.MethodPost, "/graphql", "application/json", ``, "1"},
		{"get without query", http.MethodGet, "/graphql?x=1", "", "", "1"},
		{"get bad variables", http.MethodGet, "/graphql?query=%7Ba%7D&variables=%7B", "", "", "1"},
		{"too large", http.MethodPost, "/graphql", "application/json", big, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(e, tc.method, tc.target, tc.contentType, tc.body)
			require.Equal(t, http.StatusOK, rec.Code)
			require.Equal(t, tc.want, rec.Header().Get("X-Cost"))
			require.Equal(t, tc.body, rec.Body.String(), "the handler reads the body unchanged")
		})
	}
}

func TestCostOptions(t *testing.T) {
	// past the limits: counted, not refused
	e := costApp(Cost(Options{Fallback: 7, MaxComplexity: 5, MaxDepth: 1, DefaultListSize: 4, Schema: testSchema(t)}))
	rec := serve(e, http.MethodPost, "/graphql", "application/graphql", `{ viewer { posts { id } } }`)
	require.Equal(t, "6", rec.Header().Get("X-Cost")) // viewer 1 + (posts 1 + 4 × id 1)
	rec = serve(e, http.MethodPost, "/graphql", "application/graphql", `{ viewer { nope } }`)
	require.Equal(t, "7", rec.Header().Get("X-Cost"))
	rec = serve(e, http.MethodPut, "/graphql", "application/graphql", `{ viewer { id } }`)
	require.Equal(t, "7", rec.Header().Get("X-Cost"))
}

func TestCostOnce(t *testing.T) {
	cost := Cost(Options{})
	other := Cost(Options{})
	var first, second, third uint64
	e := echo.New()
	e.POST("/graphql", func(c echo.Context) error {
		first = cost(c)
		// a second call finds the value kept, not this body
		c.Request().Body = io.NopCloser(strings.NewReader(`{"query": "{ a b c d e }"}`))
		second = cost(c)
		third = other(c) // another function keeps its own
		return c.NoContent(http.StatusNoContent)
	})
	serve(e, http.MethodPost, "/graphql", "application/json", `{"query": "{ a b }"}`)
	require.Equal(t, uint64(2), first)
	require.Equal(t, uint64(2), second)
	require.Equal(t, uint64(5), third)
}

// TestCostBodyRest checks that a body past the limit, read in pieces,
// reaches the handler whole.
func TestCostBodyRest(t *testing.T) {
	e := costApp(Cost(Options{}))
	body := strings.Repeat("x", 3*maxBody+17)
	req := httptest.NewRequest(http.MethodPost, "/graphql", iotest.HalfReader(strings.NewReader(body)))
	req.Header.Set(echo.HeaderContentType, "application/graphql")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	require.Equal(t, "1", rec.Header().Get("X-Cost"))
	require.Equal(t, len(body), rec.Body.Len())
	require.Equal(t, body, rec.Body.String())
}
