package plans

import (
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/apimeter/apimeter/auth"
)

// Objective is a service-level objective of the metered API, judged per
// tenant over calendar months (package sla): the share of responses that
// are not 5xx (Availability) and the share answered within
// LatencyThreshold (LatencyTarget), each a percent; 0 leaves that
// indicator out.
type Objective struct {
	Name string `json:"name"`
	// Tenant is the one tenant the objective is about; "" means every
	// tenant, each judged on its own.
	Tenant string `json:"tenant,omitempty"`
	// Endpoint is the one route template (such as /api/orders/:id) the
	// objective is about; "" means every endpoint.
	Endpoint         string        `json:"endpoint,omitempty"`
	Availability     float64       `json:"availability,omitempty"`
	LatencyThreshold time.Duration `json:"-"`
	LatencyTarget    float64       `json:"latencyTarget,omitempty"`
	// AlertMinRequests is the fewest requests a burn-rate rule's long
	// window needs to fire (alertMinRequests; default
	// DefaultAlertMinRequests): below it one failure would page.
	AlertMinRequests uint64 `json:"alertMinRequests"`
}

// DefaultAlertMinRequests is an objective's alertMinRequests when the
// plans file sets none.
const DefaultAlertMinRequests = 20

// AppliesTo says the objective is about tenant.
func (o Objective) AppliesTo(tenant string) bool { return o.Tenant == "" || o.Tenant == tenant }

// DefaultObjectiveName names the objective in force without an slos key.
const DefaultObjectiveName = "api"

// DefaultObjectives are the objectives without an slos key in the plans
// file: "api", for every tenant and endpoint, 99.9 % of responses not 5xx
// and 99 % within 3000 ms (API_SLOW_RESPONSE_THRESHOLD's default).
func DefaultObjectives() []Objective {
	return []Objective{{Name: DefaultObjectiveName, Availability: 99.9, LatencyThreshold: 3 * time.Second, LatencyTarget: 99,
		AlertMinRequests: DefaultAlertMinRequests}}
}

// Objectives are the service-level objectives: the plans file's slos,
// or DefaultObjectives when it has none (an empty list turns them off).
func (ps *Plans) Objectives() []Objective {
	if ps.slos == nil {
		return DefaultObjectives()
	}
	return slices.Clone(ps.slos)
}

// The slos key of the plans file.
type sloEntry struct {
	Name         string        `yaml:"name"`
	Tenant       string        `yaml:"tenant"`
	Endpoint     string        `yaml:"endpoint"`
	Availability *float64      `yaml:"availability"`
	Latency      *latencyEntry `yaml:"latency"`
	MinRequests  *int64        `yaml:"alertMinRequests"`
}

type latencyEntry struct {
	ThresholdMs *int64   `yaml:"thresholdMs"`
	Target      *float64 `yaml:"target"`
}

var objectiveNameRE = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

// maxLatencyThreshold bounds an objective's latency threshold.
const maxLatencyThreshold = time.Hour

// objectives checks the slos entries, reporting each problem with its line.
func (v *validator) objectives(es []sloEntry) []Objective {
	out := make([]Objective, 0, len(es))
	seen := map[string]bool{}
	for i, e := range es {
		at := []any{"slos", i}
		o := Objective{Name: e.Name, Tenant: e.Tenant, Endpoint: e.Endpoint, AlertMinRequests: DefaultAlertMinRequests}
		if n := e.MinRequests; n != nil {
			if *n < 1 {
				v.errf(v.line(append(at, "alertMinRequests")...), "%s.alertMinRequests %d: want 1 or more", pathString(at), *n)
			} else {
				o.AlertMinRequests = uint64(*n)
			}
		}
		switch {
		case e.Name == "":
			v.errf(v.line(at...), "%s: name the objective", pathString(at))
		case !objectiveNameRE.MatchString(e.Name):
			v.errf(v.line(append(at, "name")...), "%s.name %q: want 1 to 64 lower-case letters, digits or -", pathString(at), e.Name)
		case seen[e.Name]:
			v.errf(v.line(append(at, "name")...), "%s: a second objective named %q", pathString(at), e.Name)
		}
		seen[e.Name] = true
		if e.Tenant != "" && !auth.ValidTenant(e.Tenant) {
			v.errf(v.line(append(at, "tenant")...), "%s.tenant %.140q: want %s (leave it out for every tenant)", pathString(at), e.Tenant, auth.NameRule)
		}
		if e.Endpoint != "" && (e.Endpoint[0] != '/' || len(e.Endpoint) > 1024) {
			v.errf(v.line(append(at, "endpoint")...), "%s.endpoint %q: want a route template starting with / (leave it out for every endpoint)", pathString(at), e.Endpoint)
		}
		if e.Availability == nil && e.Latency == nil {
			v.errf(v.line(at...), "%s: set availability, latency or both", pathString(at))
		}
		if e.Availability != nil {
			o.Availability = v.percent(*e.Availability, append(at, "availability")...)
		}
		if l := e.Latency; l != nil {
			lat := append(at, "latency")
			if l.ThresholdMs == nil {
				v.errf(v.line(lat...), "%s: set thresholdMs", pathString(lat))
			} else if ms := *l.ThresholdMs; ms <= 0 || time.Duration(ms)*time.Millisecond > maxLatencyThreshold {
				v.errf(v.line(append(lat, "thresholdMs")...), "%s.thresholdMs %d: want 1 to %d milliseconds", pathString(lat), ms, maxLatencyThreshold.Milliseconds())
			} else {
				o.LatencyThreshold = time.Duration(ms) * time.Millisecond
			}
			if l.Target == nil {
				v.errf(v.line(lat...), "%s: set target (a percent such as 99)", pathString(lat))
			} else {
				o.LatencyTarget = v.percent(*l.Target, append(lat, "target")...)
			}
		}
		out = append(out, o)
	}
	return out
}

// percent checks an objective's target: more than 0 and less than 100
// (100 % leaves no error budget to judge by).
func (v *validator) percent(x float64, path ...any) float64 {
	if !(x > 0 && x < 100) {
		v.errf(v.line(path...), "%s %s: want a percent above 0 and below 100, such as 99.9", pathString(path), strconv.FormatFloat(x, 'g', -1, 64))
		return 0
	}
	return x
}
