package plans

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBillOfWeightsIncludedUnitsAndRounding(t *testing.T) {
	ps, err := ParsePlans([]byte(`plans:
  - name: free
    price:
      monthlyFee: "9.99"
      includedRequests: 1000
      perThousand: "0.333"
      weights:
        /a: "2"
`))
	require.NoError(t, err)
	p, _ := ps.Get("free")
	start, end := BillingPeriod(time.Date(2028, 2, 10, 9, 30, 0, 0, time.UTC), 1)
	b := BillOf(p, start, end, []EndpointUsage{{"/b", 100}, {"/a", 700}})
	// Units: 700×2 + 100 = 1500; 500 past the 1000 included; 500/1000 ×
	// 0.333 = 0.1665 → 0.17; total 9.99 + 0.17.
	require.EqualValues(t, 800, b.Requests)
	require.Equal(t, "1500", b.Units.String())
	require.Equal(t, "500", b.BillableUnits.String())
	require.Equal(t, "0.17", b.Overage.StringFixed(2))
	require.Equal(t, "10.16", b.Total.StringFixed(2))
	require.Equal(t, "/a", b.Endpoints[0].Endpoint, "most units first")
	require.Equal(t, "0.16", b.Endpoints[0].Overage.StringFixed(2)) // 0.1665 × 1400/1500 = 0.1554
	require.Equal(t, "0.01", b.Endpoints[1].Overage.StringFixed(2)) // 0.1665 × 100/1500 = 0.0111
	js, err := json.Marshal(b)
	require.NoError(t, err)
	require.Contains(t, string(js), `"total":"10.16"`)
	require.Contains(t, string(js), `"monthlyFee":"9.99"`)

	// Under the included units: the fee only.
	b = BillOf(p, start, end, []EndpointUsage{{"/a", 500}})
	require.Equal(t, "0", b.BillableUnits.String())
	require.Equal(t, "9.99", b.Total.StringFixed(2))
}
