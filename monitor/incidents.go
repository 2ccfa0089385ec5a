package monitor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Incident severities and statuses.
const (
	SeverityCritical = "critical" // unhealthy
	SeverityMajor    = "major"    // degraded for a sustained time
	SeverityMinor    = "minor"    // opened by hand

	StatusInvestigating = "investigating"
	StatusIdentified    = "identified"
	StatusMonitoring    = "monitoring"
	StatusResolved      = "resolved"
)

// IncidentStatuses are the statuses an incident can be given by hand.
var IncidentStatuses = []string{StatusInvestigating, StatusIdentified, StatusMonitoring, StatusResolved}

// Incident is a system incident.
type Incident struct {
	ID          string     `json:"id"`
	Tenant      string     `json:"tenantId,omitempty"`
	Title       string     `json:"title"`
	Description string     `json:"description"`
	Severity    string     `json:"severity"`
	Status      string     `json:"status"`
	Scope       string     `json:"scope"` // global or endpoint
	Endpoint    string     `json:"endpoint,omitempty"`
	DedupKey    string     `json:"dedupKey"`
	StartedAt   time.Time  `json:"startedAt"`
	ResolvedAt  *time.Time `json:"resolvedAt"`
	UpdatedAt   time.Time  `json:"updatedAt"`
	Updates     []Update   `json:"updates,omitempty"`
}

// Open says the incident is not resolved.
func (i Incident) Open() bool { return i.Status != StatusResolved }

// Update is one entry of an incident's timeline.
type Update struct {
	IncidentID string             `json:"incidentId"`
	ID         string             `json:"id"`
	CreatedAt  time.Time          `json:"createdAt"`
	Status     string             `json:"status"`
	Message    string             `json:"message"`
	Author     string             `json:"author"` // "monitor" or the key that wrote it
	Metrics    map[string]float64 `json:"metrics,omitempty"`
}

// State is the monitor's memory of one subject.
type State struct {
	Subject        string
	Scope          string
	Endpoint       string
	Method         string
	Status         string
	Since          time.Time
	DegradedChecks int
	IncidentID     string
	Values         Values
}

// ErrNotFound is returned for an incident that does not exist.
var ErrNotFound = errors.New("monitor: no such incident")

// Store keeps incidents, their timelines and the monitor's states.
type Store interface {
	PutIncident(ctx context.Context, i Incident) error
	Incident(ctx context.Context, id string) (Incident, error) // with its updates, oldest first
	Incidents(ctx context.Context, status string, limit int) ([]Incident, error)
	AddUpdate(ctx context.Context, u Update) error
	States(ctx context.Context) ([]State, error)
	PutState(ctx context.Context, s State) error
}

// lastID keeps ids increasing in this process, so timeline entries
// written in one millisecond still sort in the order they were made.
var lastID atomic.Int64

// newID is prefix, the time in nanoseconds (strictly increasing here) in
// hex, and random bits: ids sort by creation.
func newID(prefix string) string {
	var t int64
	for {
		last, now := lastID.Load(), time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if lastID.CompareAndSwap(last, now) {
			t = now
			break
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%016x%s", prefix, t, hex.EncodeToString(b[:]))
}

// MemoryStore is a Store in memory, for tests.
type MemoryStore struct {
	mu        sync.Mutex
	incidents map[string]Incident
	updates   map[string][]Update
	states    map[string]State
}

// NewMemoryStore is an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{incidents: map[string]Incident{}, updates: map[string][]Update{}, states: map[string]State{}}
}

// PutIncident implements Store.
func (m *MemoryStore) PutIncident(_ context.Context, i Incident) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i.Updates = nil
	m.incidents[i.ID] = i
	return nil
}

// Incident implements Store.
func (m *MemoryStore) Incident(_ context.Context, id string) (Incident, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.incidents[id]
	if !ok {
		return Incident{}, ErrNotFound
	}
	i.Updates = slices.Clone(m.updates[id])
	return i, nil
}

// Incidents implements Store: newest first, "" for every status, "open"
// for those not resolved.
func (m *MemoryStore) Incidents(_ context.Context, status string, limit int) ([]Incident, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Incident
	for _, i := range m.incidents {
		if status == "" || i.Status == status || (status == "open" && i.Open()) {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b Incident) int { return b.StartedAt.Compare(a.StartedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AddUpdate implements Store.
func (m *MemoryStore) AddUpdate(_ context.Context, u Update) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.updates[u.IncidentID] = append(m.updates[u.IncidentID], u)
	return nil
}

// States implements Store.
func (m *MemoryStore) States(context.Context) ([]State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []State
	for _, s := range m.states {
		out = append(out, s)
	}
	return out, nil
}

// PutState implements Store.
func (m *MemoryStore) PutState(_ context.Context, s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states[s.Subject] = s
	return nil
}
