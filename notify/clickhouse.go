package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apimeter/apimeter/store"
)

// DB is what ClickHouseLog needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// ClickHouseLog is the DeliveryLog in the alert_notifications table, one
// row per Record.
//
// Rows of one delivery are ordered by (created_at, attempt, status rank):
// the table keeps milliseconds, and a queued row, the retrying rows and a
// final row of one delivery can share one.
type ClickHouseLog struct{ DB DB }

// maxErrorLen bounds the error text kept per row.
const maxErrorLen = 2000

// Record implements DeliveryLog.
func (c ClickHouseLog) Record(ctx context.Context, d Delivery) error {
	at := d.At
	if at.IsZero() {
		at = time.Now()
	}
	attempt := d.Attempt
	if attempt < 0 {
		attempt = 0
	} else if attempt > 65535 {
		attempt = 65535
	}
	return c.DB.Exec(ctx, `INSERT INTO alert_notifications
		(dedup_key, idempotency_key, alert_type, severity, channel, tenant_id, user_id, status, attempt, error, payload, created_at)
		SELECT {dedup:String}, {key:String}, {type:String}, {severity:String}, {channel:String}, {tenant:String}, {user:String},
		       {status:String}, {attempt:UInt16}, {error:String}, {payload:String}, {at:DateTime64(3, 'UTC')}`,
		store.Named("dedup", d.DedupKey), store.Named("key", d.IdempotencyKey), store.Named("type", d.Type),
		store.Named("severity", d.Severity), store.Named("channel", d.Channel), store.Named("tenant", d.Tenant),
		store.Named("user", d.User), store.Named("status", d.Status), store.Named("attempt", uint16(attempt)),
		store.Named("error", truncate(d.Error, maxErrorLen)), store.Named("payload", d.Payload), store.Named("at", at.UTC()))
}

// Delivered implements DeliveryLog.
func (c ClickHouseLog) Delivered(ctx context.Context, key, channel string) (bool, error) {
	n, err := store.QueryUint64(ctx, c.DB, `SELECT count() FROM alert_notifications
		WHERE idempotency_key = {key:String} AND channel = {channel:String} AND status = 'delivered'`,
		store.Named("key", key), store.Named("channel", channel))
	return n > 0, err
}

// Pending implements DeliveryLog.
func (c ClickHouseLog) Pending(ctx context.Context, since time.Time) ([]Pending, error) {
	rows, err := c.DB.Query(ctx, `SELECT idempotency_key, channel,
		       argMax(status, (created_at, attempt, multiIf(status = 'queued', 0, status = 'retrying', 1, 2))) AS last_status,
		       argMax(attempt, (created_at, attempt, multiIf(status = 'queued', 0, status = 'retrying', 1, 2))) AS last_attempt,
		       argMax(payload, (created_at, attempt, multiIf(status = 'queued', 0, status = 'retrying', 1, 2))) AS last_payload,
		       min(created_at) AS first_at
		FROM alert_notifications
		WHERE created_at >= {since:DateTime64(3, 'UTC')}
		GROUP BY idempotency_key, channel
		HAVING last_status IN ('queued', 'retrying')
		   AND (idempotency_key, channel) NOT IN (
		       SELECT idempotency_key, channel FROM alert_notifications WHERE status = 'delivered')
		ORDER BY first_at, idempotency_key, channel`,
		store.Named("since", since.UTC()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pending
	var errs []error
	for rows.Next() {
		var key, channel, status, payload string
		var attempt int
		var first time.Time
		if err := rows.Scan(&key, &channel, &status, &attempt, &payload, &first); err != nil {
			return nil, err
		}
		m, err := decodePayload(payload)
		if err != nil {
			errs = append(errs, fmt.Errorf("notify: pending %s on %s: payload: %w", key, channel, err))
			continue
		}
		out = append(out, Pending{Message: m, Channel: channel, Attempts: attempt})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, errors.Join(errs...)
}

// truncate cuts s to at most n bytes (and an ellipsis), dropping a
// character cut in two.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
