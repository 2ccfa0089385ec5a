package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/api"
	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/events"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/monitor"
	"github.com/apimeter/apimeter/notify"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/scheduler"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/sla"
	"github.com/apimeter/apimeter/store"
)

// newDispatcher builds the notification channels the configuration names
// (ALERT_WEBHOOK_URL, SMTP_URL to OPS_ALERT_EMAIL); nil when none is set.
func newDispatcher(cfg config.Config, db store.Driver, reg prometheus.Registerer, log *slog.Logger) (*notify.Dispatcher, error) {
	var channels []notify.Channel
	if cfg.AlertWebhookURL != "" {
		w, err := notify.NewWebhook(cfg.AlertWebhookURL, []byte(cfg.AlertWebhookSecret))
		if err != nil {
			return nil, fmt.Errorf("ALERT_WEBHOOK_URL: %w", err)
		}
		channels = append(channels, w)
	}
	if cfg.SMTPURL != "" {
		e, err := notify.NewEmail(cfg.SMTPURL, cfg.SMTPFrom, cfg.OpsAlertEmail)
		if err != nil {
			return nil, fmt.Errorf("SMTP_URL: %w", err)
		}
		channels = append(channels, e)
	}
	if len(channels) == 0 {
		return nil, nil
	}
	return notify.NewDispatcher(notify.DispatcherConfig{Channels: channels, Deliveries: notify.ClickHouseLog{DB: db}, Registerer: reg, Log: log})
}

// newMonitor builds the health monitor over the query service, with its
// incidents in ClickHouse, its events on the bus and its notifications
// through d (nil: none).
func newMonitor(cfg config.Config, db store.Driver, q *query.Service, d *notify.Dispatcher, bus *events.Bus, reg prometheus.Registerer, log *slog.Logger) *monitor.Monitor {
	th := query.Thresholds{Degraded: cfg.HealthDegradedThreshold, Unhealthy: cfg.HealthUnhealthyThreshold, Slow: cfg.SlowResponseThreshold}
	ch := &monitor.ClickHouse{DB: db}
	// Health and alerts judge the metered APIs, not apimeter's own.
	var every query.Scope
	if !cfg.HealthIncludesSelf {
		every.ExcludeTenant = api.OwnTenant
	}
	mc := monitor.Config{
		Health: func(ctx context.Context) (query.HealthReport, error) { return q.Health(ctx, every, th) },
		Totals: func(ctx context.Context, start, end time.Time) (monitor.Values, error) {
			a, err := q.Total(ctx, every, query.Range{Start: start, End: end, Loc: time.UTC}, query.Filters{}, false)
			if err != nil {
				return monitor.Values{}, err
			}
			return monitor.Values{Requests: a.Requests, ErrorRate: a.Value(query.ErrorRate), AvgResponseTime: a.Value(query.AvgResponseTime)}, nil
		},
		Thresholds: monitor.Thresholds{Degraded: th.Degraded, Unhealthy: th.Unhealthy, Slow: th.Slow},
		Alerts:     monitor.AlertConfig{ErrorRate: cfg.ErrorRateThreshold, Slow: cfg.SlowResponseThreshold},
		Store:      ch, AlertLog: ch, Registerer: reg, Log: log,
		Emit: func(e monitor.Event) { bus.Publish(e.ID, e.Type, e.Time, "", "", subjectOf(e), e.Data) },
	}
	if d != nil {
		mc.Notify = func(ctx context.Context, n monitor.Notification) error {
			return d.Send(ctx, notify.Message{IdempotencyKey: n.Key, DedupKey: n.DedupKey, Type: n.Type, Severity: n.Severity,
				Tenant: n.Tenant, User: n.User, Subject: n.Subject, Text: n.Text, Data: n.Data, CreatedAt: n.At})
		}
	}
	m := monitor.New(mc)
	// Quota notices (once per user, period and level already) become
	// operators' alerts too.
	bus.Subscribe(func(e events.CloudEvent) {
		if e.Type != "api.quota.warning" && e.Type != "api.quota.exceeded" {
			return
		}
		data, _ := e.Data.(map[string]any)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := m.QuotaAlert(ctx, e.ID, e.Type, e.TenantID, e.UserID, data); err != nil {
				log.Warn("quota alert", "id", e.ID, "err", err)
			}
		}()
	})
	return m
}

func subjectOf(e monitor.Event) string {
	if s, ok := e.Data["subject"].(string); ok {
		return s
	}
	if s, ok := e.Data["id"].(string); ok {
		return s
	}
	return ""
}

// jobs are apimeter's background jobs (the product contract's schedules).
func jobs(cfg config.Config, db store.Driver, layout schema.Layout, mon *monitor.Monitor, lim *limits.Limiter, reg prometheus.Registerer, log *slog.Logger) []scheduler.Job {
	repairs := prometheus.NewCounter(prometheus.CounterOpts{Name: "apimeter_rollup_repairs_total", Help: "Rollup days rebuilt because they disagreed with the raw records."})
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "apimeter_rollup_mismatches_pending", Help: "Recent days whose rollups disagree with the raw records, waiting to be complete before a rebuild."})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "apimeter_cleanup_partitions_dropped_total", Help: "Raw-record partitions dropped past the retention."})
	reg.MustRegister(repairs, pending, dropped)
	return []scheduler.Job{
		{Name: "health-check", Schedule: scheduler.Every(cfg.HealthCheckInterval), Run: func(ctx context.Context) error {
			res, err := mon.Check(ctx)
			if err == nil {
				log.Debug("health checked", "status", res.Status, "transitions", len(res.Transitions), "opened", len(res.Opened), "resolved", len(res.Resolved))
			}
			return err
		}},
		{Name: "alert-check", Schedule: scheduler.Every(30 * time.Minute), Run: func(ctx context.Context) error {
			_, err := mon.AlertCheck(ctx)
			return err
		}},
		{Name: "sla-check", Schedule: scheduler.Every(5 * time.Minute), Run: func(ctx context.Context) error {
			// Multi-window burn rates of every objective and tenant (sla.DefaultRules).
			c := sla.Checker{DB: db, Objectives: cfg.Plans.Objectives(), Now: time.Now,
				Notify: func(ctx context.Context, a sla.Alert) (bool, error) {
					return mon.BurnRateAlert(ctx, a.Objective.Name, a.Tenant, string(a.SLI.Kind), a.Decision.Severity, a.Subject(), a.Text(), a.Data())
				}}
			fired, err := c.Check(ctx)
			if len(fired) > 0 {
				log.Info("objectives burn their error budgets", "alerts", len(fired))
			}
			return err
		}},
		{Name: "rollup-verify", Schedule: scheduler.Every(cfg.AggregationInterval), Run: func(ctx context.Context) error {
			rep, err := schema.VerifyAndRepair(ctx, db, layout, time.Now(), 26*time.Hour)
			repairs.Add(float64(len(rep.Rebuilt)))
			pending.Set(float64(len(rep.Pending)))
			if len(rep.Mismatches) > 0 {
				log.Warn("rollups disagreed with the raw records", "mismatches", len(rep.Mismatches), "rebuilt", rep.Rebuilt, "pending", rep.Pending)
			}
			return err
		}},
		{Name: "quota-rollover", Schedule: scheduler.DailyAt(0, 0), Run: func(ctx context.Context) error {
			anchors, err := anchorDays(ctx, db)
			if err != nil {
				return err
			}
			began := lim.Rollover(time.Now(), anchors)
			log.Info("quota periods rolled over", "accounts", began)
			return nil
		}},
		{Name: "data-cleanup", Schedule: scheduler.DailyAt(3, 0), Run: func(ctx context.Context) error {
			gone, err := schema.DropExpired(ctx, db, layout, cfg.RetentionDays, time.Now())
			dropped.Add(float64(len(gone)))
			if err != nil {
				return err
			}
			changed, err := schema.EnsureRetention(ctx, db, layout, cfg.RetentionDays)
			log.Info("data cleaned up", "partitions_dropped", len(gone), "ttl_fixed", changed, "retention_days", cfg.RetentionDays)
			return err
		}},
	}
}

// anchorDays counts the accounts per billing anchor day.
func anchorDays(ctx context.Context, db store.Driver) (map[int]int, error) {
	rows, err := db.Query(ctx, `SELECT billing_anchor_day, count() FROM accounts FINAL WHERE deleted = 0 GROUP BY billing_anchor_day`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var day uint8
		var n uint64
		if err := rows.Scan(&day, &n); err != nil {
			return nil, err
		}
		out[int(day)] = int(n)
	}
	return out, rows.Err()
}
