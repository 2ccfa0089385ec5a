package monitor

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ErrResolved is returned for a change to a resolved incident.
var ErrResolved = errors.New("the incident is resolved")

// Incidents lists incidents, newest first ("open", a status, or "" for
// all).
func (m *Monitor) Incidents(ctx context.Context, status string, limit int) ([]Incident, error) {
	return m.cfg.Store.Incidents(ctx, status, limit)
}

// Incident reads one incident with its timeline.
func (m *Monitor) Incident(ctx context.Context, id string) (Incident, error) {
	return m.cfg.Store.Incident(ctx, id)
}

// AddUpdate adds an entry to an incident's timeline by hand, with a new
// status (one of IncidentStatuses, "" to keep it); resolved resolves it.
func (m *Monitor) AddUpdate(ctx context.Context, id, status, message, author string) (Incident, error) {
	if status != "" && !slices.Contains(IncidentStatuses, status) {
		return Incident{}, fmt.Errorf("status %q: want one of %v", status, IncidentStatuses)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	inc, err := m.cfg.Store.Incident(ctx, id)
	if err != nil {
		return Incident{}, err
	}
	if !inc.Open() {
		return Incident{}, fmt.Errorf("incident %s: %w", id, ErrResolved)
	}
	now := m.cfg.Now()
	if status == StatusResolved {
		m.resolve(ctx, &inc, now, message, author, Values{})
		m.unlink(ctx, id)
		return m.cfg.Store.Incident(ctx, id)
	}
	if status != "" {
		inc.Status = status
	}
	inc.UpdatedAt = now
	m.put(ctx, inc)
	u, err := m.entry(ctx, inc, now, message, author, nil)
	if err != nil {
		return Incident{}, err
	}
	m.updated(inc, u)
	return m.cfg.Store.Incident(ctx, id)
}

// Resolve resolves an incident by hand.
func (m *Monitor) Resolve(ctx context.Context, id, message, author string) (Incident, error) {
	if message == "" {
		message = "resolved by hand"
	}
	return m.AddUpdate(ctx, id, StatusResolved, message, author)
}

// unlink forgets an incident resolved by hand, so a subject still
// failing at the next check opens a new one.
func (m *Monitor) unlink(ctx context.Context, id string) {
	for _, st := range m.states {
		if st.IncidentID == id {
			st.IncidentID = ""
			if err := m.cfg.Store.PutState(ctx, *st); err != nil {
				m.cfg.Log.Error("monitor: write state", "subject", st.Subject, "err", err)
			}
		}
	}
}
