package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/monitor"
	"github.com/apimeter/apimeter/query"
)

func TestIncidentRoutes(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	report := query.HealthReport{Requests: 500, ErrorRate: 40, AvgResponseTime: 90}
	mon := monitor.New(monitor.Config{
		Health:     func(context.Context) (query.HealthReport, error) { return report, nil },
		Thresholds: monitor.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second},
		Store:      &monitor.ClickHouse{DB: fx.db}, Now: func() time.Time { return now },
	})
	res, err := mon.Check(ctx)
	require.NoError(t, err)
	require.Len(t, res.Opened, 1)
	id := res.Opened[0].ID

	srv := New(Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountIncidents(&IncidentsAPI{Monitor: mon}, KeyAuth(fx.keys, true))
	base := BasePath + "/admin/incidents"

	var list IncidentList
	rec := serveJSON(t, srv, "GET", base+"?status=open", adminKey, "", &list)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Condition(t, func() bool {
		for _, i := range list.Incidents {
			if i.ID == id {
				return i.Severity == monitor.SeverityCritical && i.Status == monitor.StatusInvestigating
			}
		}
		return false
	}, "the open incident is listed")
	require.Equal(t, http.StatusForbidden, serveJSON(t, srv, "GET", base, fx.tenantAdminKey, "", nil).Code, "a tenant admin")
	require.Equal(t, http.StatusForbidden, serveJSON(t, srv, "GET", base, fx.userKey, "", nil).Code)
	require.Equal(t, http.StatusBadRequest, serveJSON(t, srv, "GET", base+"?status=maybe", adminKey, "", nil).Code)

	var inc monitor.Incident
	require.Equal(t, http.StatusOK, serveJSON(t, srv, "GET", base+"/"+id, adminKey, "", &inc).Code)
	require.Len(t, inc.Updates, 1, "the opening entry")
	require.EqualValues(t, 40, inc.Updates[0].Metrics["errorRate"])
	require.Equal(t, http.StatusNotFound, serveJSON(t, srv, "GET", base+"/inc_nope", adminKey, "", nil).Code)

	rec = serveJSON(t, srv, "POST", base+"/"+id+"/updates", adminKey, `{"status":"identified","message":"a bad deploy"}`, &inc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, monitor.StatusIdentified, inc.Status)
	require.Equal(t, "a bad deploy", inc.Updates[1].Message)
	require.Equal(t, "key:bootstrap", inc.Updates[1].Author)
	for _, body := range []string{`{"status":"gone","message":"x"}`, `{"message":""}`, `{"message":"x","extra":1}`, `not json`} {
		require.Equal(t, http.StatusBadRequest, serveJSON(t, srv, "POST", base+"/"+id+"/updates", adminKey, body, nil).Code, body)
	}
	require.Equal(t, http.StatusNotFound, serveJSON(t, srv, "POST", base+"/inc_nope/updates", adminKey, `{"message":"x"}`, nil).Code)

	rec = serveJSON(t, srv, "POST", base+"/"+id+"/resolve", adminKey, `{"message":"rolled back"}`, &inc)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, monitor.StatusResolved, inc.Status)
	require.NotNil(t, inc.ResolvedAt)
	require.Equal(t, http.StatusConflict, serveJSON(t, srv, "POST", base+"/"+id+"/resolve", adminKey, "", nil).Code)
	rec = serveJSON(t, srv, "GET", base+"?status=resolved&limit=5", adminKey, "", &list)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, id, list.Incidents[0].ID, fmt.Sprint(list.Incidents))
}
