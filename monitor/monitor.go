package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/query"
)

// Event types the monitor emits.
const (
	EventDegraded         = "api.health.degraded"
	EventUnhealthy        = "api.health.unhealthy"
	EventRecovered        = "api.health.recovered"
	EventIncidentCreated  = "incident.created"
	EventIncidentUpdated  = "incident.updated"
	EventIncidentResolved = "incident.resolved"
)

// Event is something the monitor reports; ID names the occurrence, so a
// repeat (after a crash) can be dropped by receivers.
type Event struct {
	ID   string
	Type string
	Time time.Time
	Data map[string]any
}

// Notification is an alert for operators (webhook, e-mail). Key is the
// idempotency key: the same for every attempt of one notification.
type Notification struct {
	Key      string
	DedupKey string
	Type     string
	Severity string
	Tenant   string
	User     string
	Subject  string
	Text     string
	Data     map[string]any
	At       time.Time
}

// Config configures a Monitor. Zero fields take the defaults in their
// comments.
type Config struct {
	// Health reads the last minutes' aggregates (query.Service.Health).
	Health func(ctx context.Context) (query.HealthReport, error)
	// Totals reads the aggregate of a longer window for alerts.
	Totals     func(ctx context.Context, start, end time.Time) (Values, error)
	Thresholds Thresholds
	// SustainedChecks is how many degraded checks in a row open a major
	// incident. Default 2.
	SustainedChecks int
	// Alerts are the alert conditions.
	Alerts AlertConfig
	Store  Store
	// AlertLog says when an alert last went out (its cooldown).
	AlertLog AlertLog
	// Notify sends operators' notifications. Default: none.
	Notify func(ctx context.Context, n Notification) error
	// Emit publishes events. Default: none.
	Emit       func(Event)
	Now        func() time.Time
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// AlertConfig are the alert conditions, checked over Window.
type AlertConfig struct {
	ErrorRate float64       // percent (API_ERROR_RATE_THRESHOLD); 0: 10
	Slow      time.Duration // average response time (API_SLOW_RESPONSE_THRESHOLD); 0: 3s
	Window    time.Duration // default 30 minutes
	Cooldown  time.Duration // one alert per condition per cooldown; default 1 hour
}

// Monitor judges health and keeps incidents.
type Monitor struct {
	cfg    Config
	mu     sync.Mutex
	loaded bool
	states map[string]*State

	status      *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	incidents   *prometheus.CounterVec
	alerts      *prometheus.CounterVec
}

// New builds a monitor.
func New(cfg Config) *Monitor {
	if cfg.SustainedChecks <= 0 {
		cfg.SustainedChecks = 2
	}
	if cfg.Thresholds.Margin <= 0 {
		cfg.Thresholds.Margin = 0.2
	}
	if cfg.Alerts.ErrorRate <= 0 {
		cfg.Alerts.ErrorRate = 10
	}
	if cfg.Alerts.Slow <= 0 {
		cfg.Alerts.Slow = 3 * time.Second
	}
	if cfg.Alerts.Window <= 0 {
		cfg.Alerts.Window = 30 * time.Minute
	}
	if cfg.Alerts.Cooldown <= 0 {
		cfg.Alerts.Cooldown = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.AlertLog == nil {
		cfg.AlertLog = NewMemoryAlertLog()
	}
	m := &Monitor{cfg: cfg, states: map[string]*State{},
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apimeter_health_status", Help: "Health of the metered API by subject: 0 healthy, 1 degraded, 2 unhealthy. The global subject always; an endpoint only while it is degraded or unhealthy.",
		}, []string{"subject"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_health_transitions_total", Help: "Health transitions, by the status reached.",
		}, []string{"status"}),
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_incidents_total", Help: "Incidents opened and resolved, by severity.",
		}, []string{"action", "severity"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_alerts_total", Help: "Alerts raised, and those held back by a cooldown or an open incident, by kind.",
		}, []string{"kind", "outcome"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.status, m.transitions, m.incidents, m.alerts)
	}
	return m
}

// Result is what a check found.
type Result struct {
	Status      string
	Report      query.HealthReport
	Transitions []Transition
	Opened      []Incident
	Resolved    []Incident
}

// Transition is a subject's change of status.
type Transition struct {
	Subject string
	From    string
	To      string
	Values  Values
}

// load reads the states back before every check: a restart keeps its
// memory, and replicas taking turns at the check (one per tick, by the
// scheduler's lock) each start from the last one's.
func (m *Monitor) load(ctx context.Context) error {
	states, err := m.cfg.Store.States(ctx)
	if err != nil {
		return fmt.Errorf("monitor: read states: %w", err)
	}
	m.states = make(map[string]*State, len(states))
	for _, s := range states {
		m.states[s.Subject] = &s
		m.export(s)
	}
	// Incidents opened just before a crash, whose state was not written
	// yet, are found by their dedup key.
	open, err := m.cfg.Store.Incidents(ctx, "open", 1000)
	if err != nil {
		return fmt.Errorf("monitor: read incidents: %w", err)
	}
	for _, i := range open {
		subject, ok := strings.CutPrefix(i.DedupKey, "health:")
		if !ok {
			continue
		}
		if st := m.states[subject]; st != nil && st.IncidentID == "" {
			st.IncidentID = i.ID
		}
		if !m.loaded {
			// A notification lost in a crash goes out now; one that
			// went out is not sent again (its key was delivered).
			m.notifyIncident(ctx, i, "created")
		}
	}
	m.loaded = true
	return nil
}

// Check judges the last minutes: statuses with hysteresis, transitions
// as events, incidents opened, updated and resolved.
func (m *Monitor) Check(ctx context.Context) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(ctx); err != nil {
		return Result{}, err
	}
	rep, err := m.cfg.Health(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("monitor: health: %w", err)
	}
	res := Result{Report: rep}
	now := m.cfg.Now()
	seen := map[string]bool{"global": true}
	res.Status = m.judge(ctx, State{Subject: "global", Scope: "global"},
		Values{Requests: rep.Requests, ErrorRate: rep.ErrorRate, AvgResponseTime: rep.AvgResponseTime}, now, &res, nil)
	// While the API as a whole has an incident, endpoints that fail with
	// it go into that incident's timeline instead of opening their own:
	// one outage, one incident, one notification.
	global := m.states["global"]
	for _, e := range rep.Endpoints {
		subject := "endpoint:" + e.Method + " " + e.Endpoint
		seen[subject] = true
		m.judge(ctx, State{Subject: subject, Scope: "endpoint", Endpoint: e.Endpoint, Method: e.Method},
			Values{Requests: e.Requests, ErrorRate: e.ErrorRate, AvgResponseTime: e.AvgResponseTime}, now, &res, global)
	}
	// Endpoints no longer busy enough to judge have recovered.
	for subject, st := range m.states {
		if !seen[subject] && (st.Status != Healthy || st.IncidentID != "") {
			m.judge(ctx, *st, Values{}, now, &res, global)
		}
	}
	return res, nil
}

// judge moves one subject to its next status; cover is the global state
// whose incident, if any, takes in this subject's failures.
func (m *Monitor) judge(ctx context.Context, subject State, v Values, now time.Time, res *Result, cover *State) string {
	st := m.states[subject.Subject]
	if st == nil {
		st = &subject
		st.Status, st.Since = Healthy, now
		m.states[subject.Subject] = st
	}
	prev := *st
	next := m.cfg.Thresholds.Next(st.Status, v)
	if next == Degraded {
		st.DegradedChecks++
	} else {
		st.DegradedChecks = 0
	}
	st.Values = v
	if next != prev.Status {
		st.Status, st.Since = next, now
		res.Transitions = append(res.Transitions, Transition{Subject: st.Subject, From: prev.Status, To: next, Values: v})
		m.transitions.WithLabelValues(next).Inc()
		m.emitTransition(*st, prev.Status)
	}
	m.export(*st)
	if cover != nil && cover.IncidentID != "" && st.IncidentID == "" && st.Subject != cover.Subject {
		if next != prev.Status {
			if inc, err := m.cfg.Store.Incident(ctx, cover.IncidentID); err == nil && inc.Open() {
				m.update(ctx, inc, now, fmt.Sprintf("endpoint %s %s is %s: %s", st.Method, st.Endpoint, next, describe(v, m.cfg.Thresholds)), v)
			}
		}
	} else {
		m.incidentFor(ctx, st, prev, now, res)
	}
	if *st != prev {
		if err := m.cfg.Store.PutState(ctx, *st); err != nil {
			m.cfg.Log.Error("monitor: write state", "subject", st.Subject, "err", err)
		}
	}
	return next
}

// export keeps apimeter_health_status bounded: the global subject
// always, an endpoint only while it is degraded or unhealthy. Endpoints
// come and go with the metered APIs' traffic; a series for every one ever
// seen would grow without end (and list every customer endpoint).
func (m *Monitor) export(st State) {
	if st.Scope == "global" || st.Subject == "global" || st.Status != Healthy {
		m.status.WithLabelValues(st.Subject).Set(float64(rank(st.Status)))
		return
	}
	m.status.DeleteLabelValues(st.Subject)
}

func (m *Monitor) emitTransition(st State, from string) {
	typ := EventDegraded
	switch st.Status {
	case Unhealthy:
		typ = EventUnhealthy
	case Healthy:
		typ = EventRecovered
	}
	m.emit(Event{ID: fmt.Sprintf("health:%s:%s:%d", st.Subject, st.Status, st.Since.UnixMilli()), Type: typ, Time: st.Since,
		Data: map[string]any{"subject": st.Subject, "scope": st.Scope, "endpoint": st.Endpoint, "method": st.Method,
			"previousStatus": from, "status": st.Status, "metrics": st.Values, "thresholds": m.thresholdData()}})
}

func (m *Monitor) thresholdData() map[string]any {
	th := m.cfg.Thresholds
	return map[string]any{"degradedErrorRate": th.Degraded, "unhealthyErrorRate": th.Unhealthy, "slowResponseMs": th.Slow.Milliseconds()}
}

func (m *Monitor) emit(e Event) {
	if m.cfg.Emit != nil {
		m.cfg.Emit(e)
	}
}

// incidentFor opens, escalates, updates or resolves the subject's
// incident after a check.
func (m *Monitor) incidentFor(ctx context.Context, st *State, prev State, now time.Time, res *Result) {
	switch {
	case st.Status == Unhealthy, st.Status == Degraded && (st.IncidentID != "" || st.DegradedChecks >= m.cfg.SustainedChecks):
		severity := SeverityMajor
		if st.Status == Unhealthy {
			severity = SeverityCritical
		}
		if st.IncidentID == "" {
			i := m.open(ctx, st, severity, now)
			res.Opened = append(res.Opened, i)
			return
		}
		inc, err := m.cfg.Store.Incident(ctx, st.IncidentID)
		if err != nil {
			m.cfg.Log.Error("monitor: read incident", "id", st.IncidentID, "err", err)
			return
		}
		if !inc.Open() { // resolved by hand while still failing: a new one
			i := m.open(ctx, st, severity, now)
			res.Opened = append(res.Opened, i)
			return
		}
		escalated := rank(severityStatus(severity)) > rank(severityStatus(inc.Severity))
		if escalated {
			inc.Severity = severity
			inc.UpdatedAt = now
			m.put(ctx, inc)
		}
		if escalated || st.Status != prev.Status || notable(prev.Values, st.Values) {
			m.update(ctx, inc, now, fmt.Sprintf("%s: %s", st.Status, describe(st.Values, m.cfg.Thresholds)), st.Values)
		}
		if escalated {
			m.notifyIncident(ctx, inc, "escalated-"+severity)
		}
	case st.IncidentID != "" && st.Status == Healthy:
		inc, err := m.cfg.Store.Incident(ctx, st.IncidentID)
		st.IncidentID = ""
		if err != nil {
			m.cfg.Log.Error("monitor: read incident", "err", err)
			return
		}
		if !inc.Open() {
			return
		}
		m.resolve(ctx, &inc, now, "recovered: "+describe(st.Values, m.cfg.Thresholds), "monitor", st.Values)
		res.Resolved = append(res.Resolved, inc)
	}
}

func severityStatus(sev string) string {
	if sev == SeverityCritical {
		return Unhealthy
	}
	return Degraded
}

// notable says values moved enough to be worth a timeline entry.
func notable(a, b Values) bool {
	return math.Abs(a.ErrorRate-b.ErrorRate) >= 1 || math.Abs(a.AvgResponseTime-b.AvgResponseTime) >= 0.1*math.Max(a.AvgResponseTime, 1)
}

func describe(v Values, th Thresholds) string {
	if v.Requests == 0 {
		return "no traffic in the window"
	}
	return fmt.Sprintf("error rate %.1f %% (degraded at %.0f %%, unhealthy at %.0f %%), average response %.0f ms (slow above %d ms), %d requests",
		v.ErrorRate, th.Degraded, th.Unhealthy, v.AvgResponseTime, th.Slow.Milliseconds(), v.Requests)
}

func metricsOf(v Values) map[string]float64 {
	return map[string]float64{"errorRate": v.ErrorRate, "averageResponseTime": v.AvgResponseTime, "requests": float64(v.Requests)}
}

func (m *Monitor) open(ctx context.Context, st *State, severity string, now time.Time) Incident {
	what := "The API"
	if st.Scope == "endpoint" {
		what = "Endpoint " + st.Method + " " + st.Endpoint
	}
	i := Incident{ID: newID("inc_"), Title: fmt.Sprintf("%s is %s", what, st.Status), Description: describe(st.Values, m.cfg.Thresholds),
		Severity: severity, Status: StatusInvestigating, Scope: st.Scope, Endpoint: strings.TrimSpace(st.Method + " " + st.Endpoint),
		DedupKey: "health:" + st.Subject, StartedAt: now, UpdatedAt: now}
	st.IncidentID = i.ID
	m.put(ctx, i)
	// The first timeline entry; incident.created tells of it.
	m.logEntry(m.entry(ctx, i, now, "opened: "+i.Description, "monitor", metricsOf(st.Values)))
	m.incidents.WithLabelValues("opened", severity).Inc()
	m.emit(Event{ID: "incident:" + i.ID + ":created", Type: EventIncidentCreated, Time: now, Data: incidentData(i)})
	m.notifyIncident(ctx, i, "created")
	return i
}

func (m *Monitor) put(ctx context.Context, i Incident) {
	if err := m.cfg.Store.PutIncident(ctx, i); err != nil {
		m.cfg.Log.Error("monitor: write incident", "id", i.ID, "err", err)
	}
}

// entry adds a timeline entry with the incident's status.
func (m *Monitor) entry(ctx context.Context, i Incident, now time.Time, msg, author string, metrics map[string]float64) (Update, error) {
	u := Update{IncidentID: i.ID, ID: newID("upd_"), CreatedAt: now, Status: i.Status, Message: msg, Author: author, Metrics: metrics}
	return u, m.cfg.Store.AddUpdate(ctx, u)
}

func (m *Monitor) logEntry(u Update, err error) {
	if err != nil {
		m.cfg.Log.Error("monitor: write incident update", "id", u.IncidentID, "err", err)
	}
}

// updated tells of a timeline entry.
func (m *Monitor) updated(i Incident, u Update) {
	m.emit(Event{ID: "incident:" + i.ID + ":" + u.ID, Type: EventIncidentUpdated, Time: u.CreatedAt, Data: map[string]any{"incident": incidentData(i), "update": u}})
}

// update adds the monitor's timeline entry and tells of it.
func (m *Monitor) update(ctx context.Context, i Incident, now time.Time, msg string, v Values) {
	u, err := m.entry(ctx, i, now, msg, "monitor", metricsOf(v))
	if err != nil {
		m.logEntry(u, err)
		return
	}
	m.updated(i, u)
}

func (m *Monitor) resolve(ctx context.Context, i *Incident, now time.Time, msg, author string, v Values) {
	i.Status, i.ResolvedAt, i.UpdatedAt = StatusResolved, &now, now
	m.put(ctx, *i)
	var metrics map[string]float64
	if v != (Values{}) {
		metrics = metricsOf(v)
	}
	m.logEntry(m.entry(ctx, *i, now, msg, author, metrics))
	m.incidents.WithLabelValues("resolved", i.Severity).Inc()
	m.emit(Event{ID: "incident:" + i.ID + ":resolved", Type: EventIncidentResolved, Time: now, Data: incidentData(*i)})
	m.notifyIncident(ctx, *i, "resolved")
}

func incidentData(i Incident) map[string]any {
	i.Updates = nil
	return map[string]any{"id": i.ID, "title": i.Title, "description": i.Description, "severity": i.Severity, "status": i.Status,
		"scope": i.Scope, "endpoint": i.Endpoint, "startedAt": i.StartedAt, "resolvedAt": i.ResolvedAt}
}

// notifyIncident tells operators; the key makes each (incident, what)
// one notification however often it is asked for.
func (m *Monitor) notifyIncident(ctx context.Context, i Incident, what string) {
	if m.cfg.Notify == nil {
		return
	}
	subject := fmt.Sprintf("Incident opened: %s", i.Title)
	switch {
	case what == "resolved":
		subject = fmt.Sprintf("Incident resolved: %s", i.Title)
	case strings.HasPrefix(what, "escalated"):
		subject = fmt.Sprintf("Incident now %s: %s", i.Severity, i.Title)
	}
	n := Notification{Key: "incident:" + i.ID + ":" + what, DedupKey: i.DedupKey, Type: "incident." + what, Severity: i.Severity,
		Subject: subject, Text: subject + "\n\n" + i.Description + "\n\nIncident " + i.ID + ", started " + i.StartedAt.UTC().Format(time.RFC3339) + ".",
		Data: incidentData(i), At: m.cfg.Now()}
	if err := m.cfg.Notify(ctx, n); err != nil {
		m.cfg.Log.Error("monitor: notify", "key", n.Key, "err", err)
	}
}

// Status is the current status of every subject that is not healthy, and
// the global one.
func (m *Monitor) Status() []State {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []State
	for _, st := range m.states {
		if st.Subject == "global" || st.Status != Healthy {
			out = append(out, *st)
		}
	}
	return out
}
