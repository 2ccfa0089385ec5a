package notify

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store/storetest"
)

func newClickHouseLog(t *testing.T) ClickHouseLog {
	t.Helper()
	db := storetest.Open(t)
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return ClickHouseLog{DB: db}
}

func TestClickHouseLogRoundTrip(t *testing.T) {
	ctx := context.Background()
	l := newClickHouseLog(t)

	msg := func(key string) (Message, string) {
		m := alert(key).normalize(t0)
		m.Text = "line one\nline two\twith a tab, a \\ backslash and 'quotes'"
		m.Data = map[string]any{"endpoint": "/api/users/:id", "errorRate": 12.5, "tags": []any{"a", "b"}}
		p, err := encodePayload(m)
		require.NoError(t, err)
		return m, p
	}
	rec := func(key, channel, status string, attempt int, at time.Time, errText string) {
		t.Helper()
		m, p := msg(key)
		require.NoError(t, l.Record(ctx, Delivery{
			IdempotencyKey: key, DedupKey: m.DedupKey, Type: m.Type, Severity: m.Severity, Channel: channel,
			Tenant: m.Tenant, User: m.User, Status: status, Attempt: attempt, Error: errText, Payload: p, At: at,
		}))
	}
	s := time.Second
	// Delivered after a retry.
	rec("k-done", "webhook", StatusQueued, 0, t0, "")
	rec("k-done", "webhook", StatusRetrying, 1, t0.Add(s), "HTTP 503")
	rec("k-done", "webhook", StatusDelivered, 2, t0.Add(2*s), "")
	// The same key still retrying on the other channel.
	rec("k-done", "email", StatusQueued, 0, t0, "")
	rec("k-done", "email", StatusRetrying, 1, t0.Add(s), "dial failed:\nconnection refused")
	// Refused, and abandoned: finished.
	rec("k-failed", "webhook", StatusQueued, 0, t0, "")
	rec("k-failed", "webhook", StatusFailed, 1, t0.Add(s), "HTTP 400")
	rec("k-abandoned", "webhook", StatusQueued, 0, t0, "")
	rec("k-abandoned", "webhook", StatusAbandoned, 1, t0.Add(s), "HTTP 500")
	// Queued only, a little later.
	rec("k-queued", "webhook", StatusQueued, 0, t0.Add(3*s), "")
	// Too old for the window asked.
	rec("k-old", "webhook", StatusQueued, 0, t0.Add(-2*time.Hour), "")
	// Rows sharing one millisecond: the order of statuses decides.
	rec("k-tie-done", "webhook", StatusQueued, 0, t0.Add(4*s), "")
	rec("k-tie-done", "webhook", StatusRetrying, 1, t0.Add(4*s), "x")
	rec("k-tie-done", "webhook", StatusDelivered, 2, t0.Add(4*s), "")
	rec("k-tie-open", "webhook", StatusQueued, 0, t0.Add(5*s), "")
	rec("k-tie-open", "webhook", StatusRetrying, 1, t0.Add(5*s), "x")

	for _, tc := range []struct {
		key, channel string
		want         bool
	}{
		{"k-done", "webhook", true}, {"k-done", "email", false}, {"k-failed", "webhook", false},
		{"k-tie-done", "webhook", true}, {"nope", "webhook", false},
	} {
		got, err := l.Delivered(ctx, tc.key, tc.channel)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%s on %s", tc.key, tc.channel)
	}

	pending, err := l.Pending(ctx, t0.Add(-time.Hour))
	require.NoError(t, err)
	type row struct {
		key, channel string
		attempts     int
	}
	var got []row
	for _, p := range pending {
		got = append(got, row{p.Message.IdempotencyKey, p.Channel, p.Attempts})
	}
	require.Equal(t, []row{
		{"k-done", "email", 1},
		{"k-queued", "webhook", 0},
		{"k-tie-open", "webhook", 1},
	}, got)
	want, _ := msg("k-done")
	require.Equal(t, want, pending[0].Message, "the payload round-trips, escapes included")

	// A wider window takes the old one too, first.
	pending, err = l.Pending(ctx, t0.Add(-3*time.Hour))
	require.NoError(t, err)
	require.Len(t, pending, 4)
	require.Equal(t, "k-old", pending[0].Message.IdempotencyKey)

	// What was stored, column by column.
	rows, err := l.DB.Query(ctx, `SELECT dedup_key, alert_type, severity, tenant_id, user_id, status, attempt, error, created_at
		FROM alert_notifications WHERE idempotency_key = 'k-done' AND channel = 'email' AND status = 'retrying'`)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var dedup, typ, sev, tenant, user, status, errText string
	var attempt uint16
	var at time.Time
	require.NoError(t, rows.Scan(&dedup, &typ, &sev, &tenant, &user, &status, &attempt, &errText, &at))
	require.Equal(t, []any{"error_rate:acme:/api/users/:id", "alert.error_rate", "critical", "acme", "u-42", "retrying", uint16(1), "dial failed:\nconnection refused"},
		[]any{dedup, typ, sev, tenant, user, status, attempt, errText})
	require.True(t, t0.Add(time.Second).Equal(at), "%v", at)
	require.False(t, rows.Next())
}

// TestClickHouseLogRestart runs the restart of the dispatcher tests on
// the table: a message accepted by a process that stopped is delivered
// once by the next.
func TestClickHouseLogRestart(t *testing.T) {
	ctx := context.Background()
	l := newClickHouseLog(t)
	first := newDispatcher(t, DispatcherConfig{Channels: []Channel{&fakeChannel{name: "webhook"}}, Deliveries: l})
	require.NoError(t, first.Send(ctx, alert("k-ch-restart"))) // never run

	ch := &fakeChannel{name: "webhook"}
	second := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}, Deliveries: l})
	start(t, second)
	n, err := second.Resume(ctx, t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	flush(t, second)
	require.Len(t, ch.Delivered(), 1)
	ok, err := l.Delivered(ctx, "k-ch-restart", "webhook")
	require.NoError(t, err)
	require.True(t, ok)

	require.NoError(t, second.Send(ctx, alert("k-ch-restart")))
	flush(t, second)
	n, err = second.Resume(ctx, t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	require.Len(t, ch.Delivered(), 1)
}
