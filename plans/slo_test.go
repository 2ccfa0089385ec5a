package plans

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestObjectivesFromThePlansFile(t *testing.T) {
	ps, err := ParsePlans([]byte(`plans:
  - name: free
slos:
  - name: api-availability
    tenant: acme
    endpoint: /api/orders/:id
    availability: 99.9
    latency: {thresholdMs: 500, target: 99}
  - name: latency-only
    latency:
      thresholdMs: 1200
      target: 95.5
  - name: errors-only
    availability: 99
    alertMinRequests: 500
`))
	require.NoError(t, err)
	require.Equal(t, []Objective{
		{Name: "api-availability", Tenant: "acme", Endpoint: "/api/orders/:id", Availability: 99.9, LatencyThreshold: 500 * time.Millisecond, LatencyTarget: 99, AlertMinRequests: 20},
		{Name: "latency-only", LatencyThreshold: 1200 * time.Millisecond, LatencyTarget: 95.5, AlertMinRequests: 20},
		{Name: "errors-only", Availability: 99, AlertMinRequests: 500},
	}, ps.Objectives())
	require.True(t, ps.Objectives()[0].AppliesTo("acme"))
	require.False(t, ps.Objectives()[0].AppliesTo("other"))
	require.True(t, ps.Objectives()[1].AppliesTo("other"))

	// JSON reads the same.
	ps, err = ParsePlans([]byte(`{"plans":[{"name":"free"}],"slos":[{"name":"x","latency":{"thresholdMs":250,"target":90}}]}`))
	require.NoError(t, err)
	require.Equal(t, []Objective{{Name: "x", LatencyThreshold: 250 * time.Millisecond, LatencyTarget: 90, AlertMinRequests: DefaultAlertMinRequests}}, ps.Objectives())
}

func TestObjectivesDefaultAndOff(t *testing.T) {
	want := []Objective{{Name: "api", Availability: 99.9, LatencyThreshold: 3000 * time.Millisecond, LatencyTarget: 99, AlertMinRequests: 20}}
	require.Equal(t, want, DefaultPlans().Objectives())
	ps, err := ParsePlans([]byte("plans:\n  - name: free\n"))
	require.NoError(t, err)
	require.Equal(t, want, ps.Objectives(), "no slos key: the default objective")
	ps, err = ParsePlans([]byte("plans:\n  - name: free\nslos:\n"))
	require.NoError(t, err)
	require.Equal(t, want, ps.Objectives(), "an empty slos key is no key")
	ps, err = ParsePlans([]byte("plans:\n  - name: free\nslos: []\n"))
	require.NoError(t, err)
	require.Empty(t, ps.Objectives(), "an empty list turns objectives off")
	// Callers cannot change the plans' objectives.
	ps = DefaultPlans()
	ps.Objectives()[0].Name = "changed"
	require.Equal(t, "api", ps.Objectives()[0].Name)
}

func TestObjectiveErrorsNameTheLine(t *testing.T) {
	const head = "plans:\n  - name: free\nslos:\n"
	for _, c := range []struct{ slos, want string }{
		{"  - name: x\n    availability: 100\n", "line 5: slos[0].availability 100: want a percent above 0 and below 100"},
		{"  - name: x\n    availability: 0\n", "line 5: slos[0].availability 0:"},
		{"  - name: x\n    availability: -3\n", "line 5: slos[0].availability -3:"},
		{"  - name: x\n    availability: .nan\n", "line 5: slos[0].availability NaN:"},
		{"  - name: x\n    latency: {thresholdMs: 500, target: 100.5}\n", "line 5: slos[0].latency.target 100.5:"},
		{"  - name: x\n    latency:\n      thresholdMs: 0\n      target: 99\n", "line 6: slos[0].latency.thresholdMs 0: want 1 to 3600000 milliseconds"},
		{"  - name: x\n    latency:\n      target: 99\n", "line 5: slos[0].latency: set thresholdMs"},
		{"  - name: x\n    latency:\n      thresholdMs: 300\n", "line 5: slos[0].latency: set target"},
		{"  - name: x\n", "line 4: slos[0]: set availability, latency or both"},
		{"  - availability: 99\n", "line 4: slos[0]: name the objective"},
		{"  - name: Bad_Name\n    availability: 99\n", "line 4: slos[0].name \"Bad_Name\""},
		{"  - name: x\n    availability: 99\n  - name: y\n    availability: 98\n  - name: x\n    availability: 97\n", "line 8: slos[2]: a second objective named \"x\""},
		{"  - name: x\n    availability: 99\n    target: 98\n", "line 6: field target not found"},
		{"  - name: x\n    latency: {thresholdMs: 5, target: 9, percentile: 3}\n", "line 5: field percentile not found"},
		{"  - name: x\n    availability: lots\n", "line 5: cannot unmarshal"},
		{"  - name: x\n    tenant: \"*\"\n    availability: 99\n", "line 5: slos[0].tenant \"*\""},
		{"  - name: x\n    endpoint: orders\n    availability: 99\n", "line 5: slos[0].endpoint \"orders\""},
		{"  - name: x\n    availability: 99\n    alertMinRequests: 0\n", "line 6: slos[0].alertMinRequests 0: want 1 or more"},
	} {
		_, err := ParsePlans([]byte(head + c.slos))
		require.Error(t, err, c.slos)
		require.Contains(t, err.Error(), c.want, c.slos)
	}
	// Every problem at once, the plans' and the objectives'.
	_, err := ParsePlans([]byte("plans:\n  - name: free\n    hourlyRequests: -1\nslos:\n  - name: x\n    availability: 120\n  - name: y\n"))
	require.ErrorContains(t, err, "line 3: plans[0].hourlyRequests")
	require.ErrorContains(t, err, "line 6: slos[0].availability 120")
	require.ErrorContains(t, err, "line 7: slos[1]: set availability")
}
