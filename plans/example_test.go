package plans_test

import (
	"fmt"
	"time"

	"github.com/apimeter/apimeter/plans"
)

// A plans file priced per endpoint, and the bill of one billing period.
func Example() {
	ps, err := plans.ParsePlans([]byte(`defaultPlan: pro
plans:
  - name: pro
    hourlyRequests: 2000
    monthlyRequests: 100000
    price:
      monthlyFee: "49.00"
      includedRequests: 1000
      perThousand: "0.40"
      weights:
        /api/search: "2.5"
`))
	if err != nil {
		panic(err)
	}
	pro := ps.Resolve("") // no account: the default plan
	start, end := plans.BillingPeriod(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), 15)
	b := plans.BillOf(pro, start, end, []plans.EndpointUsage{
		{Endpoint: "/api/search", Requests: 800},
		{Endpoint: "/api/users/:id", Requests: 3000},
	})
	fmt.Println(b.Plan, start.Format(time.DateOnly), end.Format(time.DateOnly))
	fmt.Println("units", b.Units, "overage", b.Overage.StringFixed(2), "total", b.Total.StringFixed(2))
	// Output:
	// pro 2026-11-15 2026-12-15
	// units 5000 overage 1.60 total 50.60
}

// Raw paths, as a gateway sees them, by their route templates.
func ExamplePlans_Route() {
	ps, err := plans.ParsePlans([]byte(`plans:
  - name: free
routes:
  - /api/users/me
  - /api/orders/:orderId/items/:itemId
  - /files/*path
`))
	if err != nil {
		panic(err)
	}
	for _, p := range []string{
		"/api/orders/42/items/7?expand=lines",
		"/api/users/me",
		"/api/users/8812/",
		"/files/2026/report.pdf",
		"/v2/sessions/0193a3c4-8f0e-7c2a-9d51-6b2f0e8a1c77",
	} {
		fmt.Println(ps.Route(p))
	}
	// Output:
	// /api/orders/:orderId/items/:itemId
	// /api/users/me
	// /api/users/:id
	// /files/*path
	// /v2/sessions/:id
}
