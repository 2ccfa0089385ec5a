package graphql_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/graphql"
	"github.com/apimeter/apimeter/limits"
)

func ExampleComplexity() {
	// viewer 1 + name 1; posts 1 + 5 × (title 1 + author (1 + name 1))
	n, err := graphql.Complexity(`query Feed($n: Int = 20) {
	  viewer { name }
	  posts(first: $n) { title author { name } }
	}`, "", map[string]any{"n": 5}, graphql.Options{})
	fmt.Println(n, err)
	// Output: 18 <nil>
}

// ExampleCost meters a GraphQL endpoint by query complexity: a query
// for five users spends 1 + 5 × 2 = 11 of the caller's hourly limit and
// monthly quota.
func ExampleCost() {
	cost := graphql.Cost(graphql.Options{MaxComplexity: 500})
	mw := limits.New(limits.Config{}).Middleware(limits.MiddlewareConfig{Cost: cost})
	// the same cost function goes to producer.MiddlewareConfig.Cost

	e := echo.New()
	auth := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set("tenantId", "acme")
			c.Set("userId", "ada")
			return next(c)
		}
	}
	e.POST("/graphql", func(c echo.Context) error {
		var req struct{ Query string }
		if err := c.Bind(&req); err != nil {
			return err
		}
		if _, err := graphql.Complexity(req.Query, "", nil, graphql.Options{MaxComplexity: 500}); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		return c.JSON(http.StatusOK, map[string]any{"data": nil})
	}, auth, mw.Enforce())

	body := `{"query": "{ users(first: 5) { id name } }"}`
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	spent := func(limit, remaining string) uint64 {
		l, _ := strconv.ParseUint(limits.Header(rec.Header(), limit), 10, 64)
		r, _ := strconv.ParseUint(limits.Header(rec.Header(), remaining), 10, 64)
		return l - r
	}
	fmt.Println(rec.Code, "hourly:", spent(limits.HeaderLimit, limits.HeaderRemaining), "quota:", spent(limits.HeaderQuotaLimit, limits.HeaderQuotaRemaining))
	// Output: 200 hourly: 11 quota: 11
}
