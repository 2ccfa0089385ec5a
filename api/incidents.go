package api

import (
	"errors"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/monitor"
)

// IncidentsAPI serves the incidents the health monitor opens, to global
// admins (an incident is about the whole metered API, every tenant's).
type IncidentsAPI struct {
	Monitor *monitor.Monitor
}

// IncidentList is GET /admin/incidents.
type IncidentList struct {
	Incidents []monitor.Incident `json:"incidents"`
}

// IncidentUpdateBody is POST /admin/incidents/:id/updates and /resolve.
type IncidentUpdateBody struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// MountIncidents adds the incident routes behind admin (KeyAuth(keys, true)).
func (s *Server) MountIncidents(a *IncidentsAPI, admin echo.MiddlewareFunc) {
	g := s.echo.Group(BasePath + "/admin/incidents")
	g.GET("", a.list, admin, globalOnly)
	g.GET("/:id", a.get, admin, globalOnly)
	g.POST("/:id/updates", a.addUpdate, admin, globalOnly)
	g.POST("/:id/resolve", a.resolve, admin, globalOnly)
}

// globalOnly lets global admins through.
func globalOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p, ok := principal(c); !ok || !p.Global() {
			return forbidden("this route needs an admin key of every tenant")
		}
		return next(c)
	}
}

var incidentFilters = []string{"", "open", monitor.StatusInvestigating, monitor.StatusIdentified, monitor.StatusMonitoring, monitor.StatusResolved}

func (a *IncidentsAPI) list(c echo.Context) error {
	q, err := queryParams(c)
	if err != nil {
		return err
	}
	status, err := single(q, "status")
	if err != nil {
		return err
	}
	if _, given := q["status"]; (given && status == "") || !slices.Contains(incidentFilters, status) {
		return BadRequest("status %q: want open, investigating, identified, monitoring or resolved", status)
	}
	limit, err := intParam(q, "limit", 100, 1, 1000)
	if err != nil {
		return err
	}
	list, err := a.Monitor.Incidents(c.Request().Context(), status, limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []monitor.Incident{}
	}
	return c.JSON(http.StatusOK, IncidentList{Incidents: list})
}

func (a *IncidentsAPI) get(c echo.Context) error {
	i, err := a.Monitor.Incident(c.Request().Context(), c.Param("id"))
	if errors.Is(err, monitor.ErrNotFound) {
		return Errorf(http.StatusNotFound, "not_found", "no incident %q", c.Param("id"))
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, i)
}

func (a *IncidentsAPI) addUpdate(c echo.Context) error {
	var b IncidentUpdateBody
	if err := decodeBody(c, &b); err != nil {
		return err
	}
	if b.Message == "" {
		return BadRequest("message: say what changed")
	}
	return a.write(c, b.Status, b.Message)
}

func (a *IncidentsAPI) resolve(c echo.Context) error {
	var b IncidentUpdateBody
	if c.Request().ContentLength != 0 {
		if err := decodeBody(c, &b); err != nil {
			return err
		}
	}
	if b.Status != "" && b.Status != monitor.StatusResolved {
		return BadRequest("status: resolving sets it to resolved")
	}
	if b.Message == "" {
		b.Message = "resolved by hand"
	}
	return a.write(c, monitor.StatusResolved, b.Message)
}

func (a *IncidentsAPI) write(c echo.Context, status, message string) error {
	if status != "" && !slices.Contains(monitor.IncidentStatuses, status) {
		return BadRequest("status %q: want investigating, identified, monitoring or resolved", status)
	}
	p, _ := principal(c)
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := a.Monitor.Incident(ctx, id); errors.Is(err, monitor.ErrNotFound) {
		return Errorf(http.StatusNotFound, "not_found", "no incident %q", id)
	}
	i, err := a.Monitor.AddUpdate(ctx, id, status, message, "key:"+p.KeyID)
	if err != nil {
		if errors.Is(err, monitor.ErrResolved) {
			return Errorf(http.StatusConflict, "conflict", "%v", err)
		}
		return err
	}
	return c.JSON(http.StatusOK, i)
}
