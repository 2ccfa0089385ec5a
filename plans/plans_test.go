package plans

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

func TestDefaultPlansAreTheContract(t *testing.T) {
	ps := DefaultPlans()
	want := map[string][2]uint64{"free": {1000, 100}, "starter": {10000, 500}, "pro": {100000, 2000}, "enterprise": {0, 0}}
	for name, w := range want {
		p, ok := ps.Get(name)
		require.True(t, ok, name)
		require.Equal(t, w, [2]uint64{p.MonthlyRequests, p.HourlyRequests}, name)
	}
	require.Equal(t, "free", ps.Default)
	free, _ := ps.Get("FREE")
	require.Equal(t, "starter", ps.Next(free).Name)
	ent, _ := ps.Get("enterprise")
	require.Nil(t, ps.Next(ent))
	require.Equal(t, "free", ps.Resolve("no-such-plan").Name)
}

const plansYAML = `defaultPlan: starter
currency: EUR
plans:
  - name: starter
    hourlyRequests: 500
    monthlyRequests: 10000
    quota: soft
    endpoints:
      - path: /api/bulk-operation
        method: post
        limit: 5
        window: 1m
    price:
      monthlyFee: "19.00"
      includedRequests: 10000
      perThousand: "0.40"
      weights:
        /api/search: "2.5"
  - name: unlimited
`

func TestPlansFileYAMLAndJSON(t *testing.T) {
	ps, err := ParsePlans([]byte(plansYAML))
	require.NoError(t, err)
	require.Equal(t, "starter", ps.Default)
	p, _ := ps.Get("starter")
	require.Equal(t, uint64(500), p.HourlyRequests)
	require.Equal(t, QuotaSoft, p.QuotaMode)
	require.Equal(t, []EndpointLimit{{Path: "/api/bulk-operation", Method: "POST", Limit: 5, Window: time.Minute}}, p.Endpoints)
	require.Equal(t, "EUR", p.Price.Currency)
	require.True(t, decimal.RequireFromString("0.4").Equal(p.Price.PerThousand))
	require.True(t, decimal.RequireFromString("2.5").Equal(p.Price.Weight("/api/search")))
	require.True(t, decimal.NewFromInt(1).Equal(p.Price.Weight("/api/other")))
	u, _ := ps.Get("unlimited")
	require.True(t, u.Unlimited())

	js := `{"plans":[{"name":"free","hourlyRequests":10,"monthlyRequests":20}]}`
	ps, err = ParsePlans([]byte(js))
	require.NoError(t, err)
	f, _ := ps.Get("free")
	require.Equal(t, [2]uint64{20, 10}, [2]uint64{f.MonthlyRequests, f.HourlyRequests})
}

func TestPlansFileErrorsNameTheLine(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"plans:\n  - name: a\n    hourlyRequests: 0\n", "line 3: plans[0].hourlyRequests: 0"},
		{"plans:\n  - name: a\n    quota: maybe\n", "line 3: plans[0].quota \"maybe\""},
		{"plans:\n  - name: a\n    endpoints:\n      - path: /x\n        limit: 3\n        window: soon\n", "line 6: plans[0].endpoints[0].window \"soon\""},
		{"plans:\n  - name: a\n    endpoints:\n      - path: x\n        limit: 3\n        window: 1m\n", "line 4: plans[0].endpoints[0].path \"x\""},
		{"defaultPlan: gold\nplans:\n  - name: a\n", "line 1: defaultPlan \"gold\""},
		{"plans:\n  - name: a\n  - name: A\n", "line 3: plans[1]: a second plan named \"a\""},
		{"plans:\n  - name: a\n    hourlyRequest: 5\n", "line 3: field hourlyRequest not found"},
		{"plans:\n  - name: a\n    hourlyRequests: lots\n", "line 3: cannot unmarshal"},
		{"plans:\n  - name: a\n    price:\n      perThousand: \"-1\"\n", "line 4: plans[0].price.perThousand"},
		{"{\"plans\": [\n {\"name\": \"a\",\n  \"monthlyRequests\": -5}]}", "line 3: plans[0].monthlyRequests: -5"},
		{"plans: []\n", "name at least one plan"},
	} {
		_, err := ParsePlans([]byte(c.file))
		require.Error(t, err, c.file)
		require.Contains(t, err.Error(), c.want, c.file)
	}
	// Every problem at once.
	_, err := ParsePlans([]byte("plans:\n  - name: a\n    hourlyRequests: -1\n    quota: x\n"))
	require.ErrorContains(t, err, "line 3")
	require.ErrorContains(t, err, "line 4")
}
