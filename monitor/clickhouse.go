package monitor

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/apimeter/apimeter/store"
)

// DB is what the ClickHouse store needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// ClickHouse keeps incidents in incidents and incident_updates, the
// monitor's states in health_states, and reads alert cooldowns from
// alert_notifications.
type ClickHouse struct {
	DB      DB
	version atomic.Int64
}

// next is a version larger than any this process wrote before.
func (c *ClickHouse) next() uint64 {
	for {
		last, now := c.version.Load(), time.Now().UnixNano()
		if now <= last {
			now = last + 1
		}
		if c.version.CompareAndSwap(last, now) {
			return uint64(now)
		}
	}
}

// PutIncident implements Store.
func (c *ClickHouse) PutIncident(ctx context.Context, i Incident) error {
	resolved := store.NullParam("resolved")
	if i.ResolvedAt != nil {
		resolved = store.Named("resolved", *i.ResolvedAt)
	}
	return c.DB.Exec(ctx, `INSERT INTO incidents (id, tenant_id, title, description, severity, status, scope, endpoint, dedup_key, started_at, resolved_at, updated_at, version)
		SELECT {id:String}, {tenant:String}, {title:String}, {description:String}, {severity:String}, {status:String}, {scope:String},
		       {endpoint:String}, {dedup:String}, {started:DateTime64(3, 'UTC')}, {resolved:Nullable(DateTime64(3, 'UTC'))},
		       {updated:DateTime64(3, 'UTC')}, {version:UInt64}`,
		store.Named("id", i.ID), store.Named("tenant", i.Tenant), store.Named("title", i.Title), store.Named("description", i.Description),
		store.Named("severity", i.Severity), store.Named("status", i.Status), store.Named("scope", i.Scope), store.Named("endpoint", i.Endpoint),
		store.Named("dedup", i.DedupKey), store.Named("started", i.StartedAt), resolved, store.Named("updated", i.UpdatedAt),
		store.Named("version", c.next()))
}

const incidentColumns = `id, tenant_id, title, description, severity, status, scope, endpoint, dedup_key, started_at, resolved_at, updated_at`

func scanIncident(r store.Rows) (Incident, error) {
	var i Incident
	var resolved any
	if err := r.Scan(&i.ID, &i.Tenant, &i.Title, &i.Description, &i.Severity, &i.Status, &i.Scope, &i.Endpoint, &i.DedupKey,
		&i.StartedAt, &resolved, &i.UpdatedAt); err != nil {
		return i, err
	}
	if t, ok := resolved.(time.Time); ok {
		i.ResolvedAt = &t
	}
	return i, nil
}

// Incident implements Store.
func (c *ClickHouse) Incident(ctx context.Context, id string) (Incident, error) {
	rows, err := c.DB.Query(ctx, `SELECT `+incidentColumns+` FROM incidents FINAL WHERE id = {id:String}`, store.Named("id", id))
	if err != nil {
		return Incident{}, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Incident{}, err
		}
		return Incident{}, ErrNotFound
	}
	i, err := scanIncident(rows)
	if err != nil {
		return i, err
	}
	rows.Close()
	ups, err := c.DB.Query(ctx, `SELECT incident_id, id, created_at, status, message, author, toJSONString(metrics)
		FROM incident_updates WHERE incident_id = {id:String} ORDER BY created_at, id`, store.Named("id", id))
	if err != nil {
		return i, err
	}
	defer ups.Close()
	for ups.Next() {
		var u Update
		var metrics string
		if err := ups.Scan(&u.IncidentID, &u.ID, &u.CreatedAt, &u.Status, &u.Message, &u.Author, &metrics); err != nil {
			return i, err
		}
		if metrics != "{}" {
			_ = json.Unmarshal([]byte(metrics), &u.Metrics)
		}
		i.Updates = append(i.Updates, u)
	}
	return i, ups.Err()
}

// Incidents implements Store.
func (c *ClickHouse) Incidents(ctx context.Context, status string, limit int) ([]Incident, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := c.DB.Query(ctx, `SELECT `+incidentColumns+` FROM incidents FINAL
		WHERE {status:String} = '' OR status = {status:String} OR ({status:String} = 'open' AND status != 'resolved')
		ORDER BY started_at DESC, id LIMIT {limit:UInt32}`, store.Named("status", status), store.Named("limit", limit))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Incident
	for rows.Next() {
		i, err := scanIncident(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

// AddUpdate implements Store.
func (c *ClickHouse) AddUpdate(ctx context.Context, u Update) error {
	metrics, _ := json.Marshal(u.Metrics)
	if u.Metrics == nil {
		metrics = []byte("{}")
	}
	return c.DB.Exec(ctx, `INSERT INTO incident_updates (incident_id, id, created_at, status, message, author, metrics)
		SELECT {incident:String}, {id:String}, {created:DateTime64(3, 'UTC')}, {status:String}, {message:String}, {author:String},
		       CAST(JSONExtract({metrics:String}, 'Map(String, Float64)') AS Map(LowCardinality(String), Float64))`,
		store.Named("incident", u.IncidentID), store.Named("id", u.ID), store.Named("created", u.CreatedAt), store.Named("status", u.Status),
		store.Named("message", u.Message), store.Named("author", u.Author), store.Named("metrics", string(metrics)))
}

// States implements Store.
func (c *ClickHouse) States(ctx context.Context) ([]State, error) {
	rows, err := c.DB.Query(ctx, `SELECT subject, scope, endpoint, method, status, since, degraded_checks, incident_id, error_rate, avg_response_ms, requests
		FROM health_states FINAL ORDER BY subject`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []State
	for rows.Next() {
		var s State
		var checks uint32
		if err := rows.Scan(&s.Subject, &s.Scope, &s.Endpoint, &s.Method, &s.Status, &s.Since, &checks, &s.IncidentID,
			&s.Values.ErrorRate, &s.Values.AvgResponseTime, &s.Values.Requests); err != nil {
			return nil, err
		}
		s.DegradedChecks = int(checks)
		out = append(out, s)
	}
	return out, rows.Err()
}

// PutState implements Store.
func (c *ClickHouse) PutState(ctx context.Context, s State) error {
	return c.DB.Exec(ctx, `INSERT INTO health_states (subject, scope, endpoint, method, status, since, degraded_checks, incident_id, error_rate, avg_response_ms, requests, version)
		SELECT {subject:String}, {scope:String}, {endpoint:String}, {method:String}, {status:String}, {since:DateTime64(3, 'UTC')},
		       {checks:UInt32}, {incident:String}, {er:Float64}, {avg:Float64}, {requests:UInt64}, {version:UInt64}`,
		store.Named("subject", s.Subject), store.Named("scope", s.Scope), store.Named("endpoint", s.Endpoint), store.Named("method", s.Method),
		store.Named("status", s.Status), store.Named("since", s.Since), store.Named("checks", uint32(s.DegradedChecks)),
		store.Named("incident", s.IncidentID), store.Named("er", s.Values.ErrorRate), store.Named("avg", s.Values.AvgResponseTime),
		store.Named("requests", s.Values.Requests), store.Named("version", c.next()))
}

// LastSent implements AlertLog from the delivery log.
func (c *ClickHouse) LastSent(ctx context.Context, dedupKey string) (time.Time, error) {
	rows, err := c.DB.Query(ctx, `SELECT max(created_at), count() FROM alert_notifications
		WHERE dedup_key = {key:String} AND status IN ('queued', 'retrying', 'delivered')`, store.Named("key", dedupKey))
	if err != nil {
		return time.Time{}, err
	}
	defer rows.Close()
	var at time.Time
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&at, &n); err != nil {
			return at, err
		}
	}
	if n == 0 {
		return time.Time{}, rows.Err()
	}
	return at, rows.Err()
}
