package monitor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// AlertLog says when an alert with a dedup key last went out.
type AlertLog interface {
	LastSent(ctx context.Context, dedupKey string) (time.Time, error)
}

// MemoryAlertLog is an AlertLog fed by the notifications it is told of.
type MemoryAlertLog struct {
	mu   sync.Mutex
	sent map[string]time.Time
}

// NewMemoryAlertLog is an empty MemoryAlertLog.
func NewMemoryAlertLog() *MemoryAlertLog { return &MemoryAlertLog{sent: map[string]time.Time{}} }

// LastSent implements AlertLog.
func (l *MemoryAlertLog) LastSent(_ context.Context, key string) (time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent[key], nil
}

// Sent records a notification.
func (l *MemoryAlertLog) Sent(key string, at time.Time) {
	l.mu.Lock()
	l.sent[key] = at
	l.mu.Unlock()
}

// AlertCheck raises the alerts of the last Window: an error rate above
// the alert threshold and a slow average response time. One condition
// sends one alert per cooldown (its dedup key), and none while an
// incident about the same subject is open (the incident told already).
func (m *Monitor) AlertCheck(ctx context.Context) ([]Notification, error) {
	if m.cfg.Totals == nil {
		return nil, nil
	}
	now := m.cfg.Now()
	v, err := m.cfg.Totals(ctx, now.Add(-m.cfg.Alerts.Window), now)
	if err != nil {
		return nil, fmt.Errorf("monitor: alert totals: %w", err)
	}
	a := m.cfg.Alerts
	window := a.Window.String()
	var sent []Notification
	try := func(kind string, breached bool, severity, subject, text string, data map[string]any) error {
		if !breached {
			return nil
		}
		n := Notification{DedupKey: "alert:" + kind + ":global", Type: "alert." + kind, Severity: severity,
			Subject: subject, Text: text, Data: data, At: now}
		ok, err := m.alert(ctx, n, "global")
		if ok {
			sent = append(sent, n)
		}
		return err
	}
	data := map[string]any{"windowSeconds": int64(a.Window / time.Second), "metrics": v}
	if err := try("error_rate", v.Requests > 0 && v.ErrorRate > a.ErrorRate, "warning",
		fmt.Sprintf("Error rate %.1f %% over the last %s", v.ErrorRate, window),
		fmt.Sprintf("%.1f %% of %d requests failed with a 5xx over the last %s (alert threshold %.0f %%).", v.ErrorRate, v.Requests, window, a.ErrorRate),
		data); err != nil {
		return sent, err
	}
	err = try("slow_response", v.Requests > 0 && v.AvgResponseTime > float64(a.Slow.Milliseconds()), "warning",
		fmt.Sprintf("Average response time %.0f ms over the last %s", v.AvgResponseTime, window),
		fmt.Sprintf("Requests took %.0f ms on average over the last %s (alert threshold %d ms).", v.AvgResponseTime, window, a.Slow.Milliseconds()),
		data)
	return sent, err
}

// alert sends n unless its condition is cooling down or an incident
// about subject is open; the idempotency key names the cooldown period,
// so replicas and retries of one alert are one notification.
func (m *Monitor) alert(ctx context.Context, n Notification, subject string) (bool, error) {
	kind := strings.TrimPrefix(n.Type, "alert.")
	m.mu.Lock()
	st := m.states[subject]
	covered := st != nil && st.IncidentID != ""
	m.mu.Unlock()
	if covered {
		m.alerts.WithLabelValues(kind, "incident_open").Inc()
		return false, nil
	}
	last, err := m.cfg.AlertLog.LastSent(ctx, n.DedupKey)
	if err != nil {
		return false, fmt.Errorf("monitor: alert log: %w", err)
	}
	if !last.IsZero() && n.At.Sub(last) < m.cfg.Alerts.Cooldown {
		m.alerts.WithLabelValues(kind, "cooldown").Inc()
		return false, nil
	}
	n.Key = fmt.Sprintf("%s:%d", n.DedupKey, n.At.UnixNano()/int64(m.cfg.Alerts.Cooldown))
	if m.cfg.Notify != nil {
		if err := m.cfg.Notify(ctx, n); err != nil {
			return false, err
		}
	}
	if l, ok := m.cfg.AlertLog.(*MemoryAlertLog); ok {
		l.Sent(n.DedupKey, n.At)
	}
	m.alerts.WithLabelValues(kind, "sent").Inc()
	return true, nil
}

// QuotaAlert turns a quota notice (api.quota.warning or
// api.quota.exceeded, already once per user, period and level) into an
// operators' alert with the notice's id as its key.
func (m *Monitor) QuotaAlert(ctx context.Context, id, typ, tenant, user string, data map[string]any) error {
	if m.cfg.Notify == nil {
		return nil
	}
	severity := "info"
	if typ == "api.quota.exceeded" {
		severity = "warning"
	}
	subject := fmt.Sprintf("Quota %v %% used by %s/%s", data["threshold"], tenant, user)
	text := fmt.Sprintf("%s: %v of %v requests in the period starting %v (plan %v).", subject, data["used"], data["limit"], data["periodStart"], data["plan"])
	if msg, ok := data["message"].(string); ok {
		text += " " + msg // the forecast, when there is one
	}
	n := Notification{Key: id, DedupKey: id, Type: typ, Severity: severity, Tenant: tenant, User: user,
		Subject: subject, Text: text, Data: data, At: m.cfg.Now()}
	m.alerts.WithLabelValues("quota", "sent").Inc()
	return m.cfg.Notify(ctx, n)
}

// BurnRateAlert sends a service-level objective's burn-rate alert —
// severity critical (a page) or warning (a ticket) — as an
// alert.slo_burn_rate notification with the dedup key
// slo:<objective>:<tenant>:<sli>:<severity> and the alerts' cooldown.
// Like the other alerts it is held while an incident about the whole API
// is open: the incident told already, and a budget still burning after
// it is resolved alerts at the next check.
func (m *Monitor) BurnRateAlert(ctx context.Context, objective, tenant, sli, severity, subject, text string, data map[string]any) (bool, error) {
	n := Notification{DedupKey: "slo:" + objective + ":" + tenant + ":" + sli + ":" + severity, Type: "alert.slo_burn_rate",
		Severity: severity, Tenant: tenant, Subject: subject, Text: text, Data: data, At: m.cfg.Now()}
	return m.alert(ctx, n, "global")
}
