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
