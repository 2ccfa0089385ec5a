package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/scheduler"
)

// JobsAPI shows the background jobs and their runs to global admins, and
// runs one at once when this process runs the scheduler.
type JobsAPI struct {
	// Scheduler is this process's scheduler, nil when another replica
	// runs it (the runs are still listed, from Runs).
	Scheduler *scheduler.Scheduler
	Runs      scheduler.RunLog
}

// JobsResponse is GET /admin/jobs.
type JobsResponse struct {
	Jobs []scheduler.JobInfo `json:"jobs"`
	Runs []scheduler.Run     `json:"runs"`
}

// MountJobs adds the jobs routes behind admin.
func (s *Server) MountJobs(a *JobsAPI, admin echo.MiddlewareFunc) {
	g := s.echo.Group(BasePath + "/admin/jobs")
	g.GET("", a.list, admin, globalOnly)
	g.POST("/:name/run", a.run, admin, globalOnly)
}

func (a *JobsAPI) list(c echo.Context) error {
	q, err := queryParams(c)
	if err != nil {
		return err
	}
	job, err := single(q, "job")
	if err != nil {
		return err
	}
	limit, err := intParam(q, "limit", 50, 1, 1000)
	if err != nil {
		return err
	}
	r := JobsResponse{Jobs: []scheduler.JobInfo{}, Runs: []scheduler.Run{}}
	if a.Scheduler != nil {
		r.Jobs = a.Scheduler.Jobs()
	}
	if a.Runs != nil {
		runs, err := a.Runs.Recent(c.Request().Context(), job, limit)
		if err != nil {
			return err
		}
		if runs != nil {
			r.Runs = runs
		}
	}
	return c.JSON(http.StatusOK, r)
}

// run runs a job now and answers with its recorded run.
func (a *JobsAPI) run(c echo.Context) error {
	if a.Scheduler == nil {
		return Errorf(http.StatusConflict, "conflict", "this process does not run the scheduler (role scheduler)")
	}
	name := c.Param("name")
	ctx := c.Request().Context()
	err := a.Scheduler.RunNow(ctx, name)
	switch {
	case errors.Is(err, scheduler.ErrUnknownJob):
		return Errorf(http.StatusNotFound, "not_found", "no job %q", name)
	case errors.Is(err, scheduler.ErrRunning):
		return Errorf(http.StatusConflict, "conflict", "job %q is running", name)
	case errors.Is(err, scheduler.ErrClosed), errors.Is(err, context.Canceled):
		return Errorf(http.StatusServiceUnavailable, "unavailable", "the scheduler is stopping")
	}
	var last *scheduler.Run
	for _, j := range a.Scheduler.Jobs() {
		if j.Name == name {
			last = j.LastRun
		}
	}
	return c.JSON(http.StatusOK, JobRunResponse{Run: last, OK: err == nil})
}

// JobRunResponse is POST /admin/jobs/:name/run: the run, failed or not.
type JobRunResponse struct {
	Run *scheduler.Run `json:"run"`
	OK  bool           `json:"ok"`
}
