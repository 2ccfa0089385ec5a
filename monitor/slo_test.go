package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/query"
)

func TestBurnRateAlertsCoolDownPerKeyAndDeferToIncidents(t *testing.T) {
	ctx := context.Background()
	w := newWorld()
	var got []Notification
	m := New(Config{
		Store: w.store, AlertLog: w.alerts,
		Health: func(context.Context) (query.HealthReport, error) { return w.report, nil },
		Notify: func(_ context.Context, n Notification) error { got = append(got, n); return nil },
		Now:    func() time.Time { return w.now },
	})
	page := func() bool {
		ok, err := m.BurnRateAlert(ctx, "api", "acme", "availability", "critical", "SLO api burns", "details", map[string]any{"longBurnRate": 20.0})
		require.NoError(t, err)
		return ok
	}
	require.True(t, page())
	require.Len(t, got, 1)
	n := got[0]
	require.Equal(t, "slo:api:acme:availability:critical", n.DedupKey)
	require.Equal(t, "alert.slo_burn_rate", n.Type)
	require.Equal(t, "critical", n.Severity)
	require.Equal(t, "acme", n.Tenant)
	require.Equal(t, 20.0, n.Data["longBurnRate"])
	require.Contains(t, n.Key, n.DedupKey+":")

	// Within the cooldown the same condition is held; another severity,
	// indicator or tenant is another condition.
	w.tick(5 * time.Minute)
	require.False(t, page())
	ok, err := m.BurnRateAlert(ctx, "api", "acme", "availability", "warning", "s", "t", nil)
	require.NoError(t, err)
	require.True(t, ok)
	ok, _ = m.BurnRateAlert(ctx, "api", "acme", "latency", "critical", "s", "t", nil)
	require.True(t, ok)
	ok, _ = m.BurnRateAlert(ctx, "api", "other", "availability", "critical", "s", "t", nil)
	require.True(t, ok)
	require.Len(t, got, 4)
	w.tick(time.Hour)
	require.True(t, page(), "after the cooldown")

	// While the API as a whole has an incident, the alert is held.
	w.set(40, 100)
	_, err = m.Check(ctx)
	require.NoError(t, err)
	w.tick(2 * time.Hour)
	require.False(t, page())
}
