// Package monitor watches apimeter's health: it judges the rolling
// aggregates of the last minutes (globally and per endpoint) with
// hysteresis, reports transitions as events, opens, updates and resolves
// incidents, and raises alerts with cooldowns.
package monitor

import (
	"time"

	"github.com/apimeter/apimeter/query"
)

// Statuses, from best to worst.
const (
	Healthy   = query.Healthy
	Degraded  = query.Degraded
	Unhealthy = query.Unhealthy
)

func rank(s string) int {
	switch s {
	case Unhealthy:
		return 2
	case Degraded:
		return 1
	}
	return 0
}

// Thresholds are when a subject is degraded or unhealthy.
type Thresholds struct {
	Degraded  float64       // error rate, percent (API_HEALTH_DEGRADED_THRESHOLD)
	Unhealthy float64       // error rate, percent (API_HEALTH_UNHEALTHY_THRESHOLD)
	Slow      time.Duration // average response time (API_SLOW_RESPONSE_THRESHOLD)
	// Margin is the hysteresis: a subject gets better only once its values
	// are this fraction below the threshold it crossed (0.2: an error
	// rate that made it degraded at 10 % must fall under 8 %). Default 0.2.
	Margin float64
}

// Values are a subject's numbers over the health window.
type Values struct {
	Requests        uint64  `json:"requests"`
	ErrorRate       float64 `json:"errorRate"`
	AvgResponseTime float64 `json:"averageResponseTime"` // ms
}

// raw is the status of values against thresholds scaled by factor.
func (th Thresholds) raw(v Values, factor float64) string {
	if v.Requests == 0 {
		return Healthy
	}
	switch {
	case v.ErrorRate >= th.Unhealthy*factor:
		return Unhealthy
	case v.ErrorRate >= th.Degraded*factor, v.AvgResponseTime > float64(th.Slow.Milliseconds())*factor:
		return Degraded
	}
	return Healthy
}

// Next is the status after prev given new values: worse at once when a
// threshold is crossed, better only when the values are under the
// thresholds lowered by the margin, so values hovering at a threshold do
// not flap.
func (th Thresholds) Next(prev string, v Values) string {
	now := th.raw(v, 1)
	if rank(now) >= rank(prev) {
		return now
	}
	lowered := th.raw(v, 1-th.Margin)
	if rank(lowered) < rank(prev) {
		return lowered
	}
	return prev
}
