package notify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// t0 is the tests' clock.
var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0 }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// syncBuffer is a log sink goroutines can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sleeper records the waits asked of Sleep without waiting.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// fakeChannel records what it is given; fail decides attempt n's error
// (from 1).
type fakeChannel struct {
	name string
	fail func(n int) error

	mu  sync.Mutex
	got []Message
	n   int
}

func (c *fakeChannel) Name() string { return c.name }

func (c *fakeChannel) Deliver(ctx context.Context, m Message) error {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	if c.fail != nil {
		if err := c.fail(n); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.got = append(c.got, m)
	c.mu.Unlock()
	return nil
}

func (c *fakeChannel) Delivered() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Message(nil), c.got...)
}

func (c *fakeChannel) Attempts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// start runs d until the test ends.
func start(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

func flush(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, d.Flush(ctx))
}

// metric finds a series of a gathered metric family by its labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, channel, outcome string) float64 {
	t.Helper()
	m := metric(t, reg, "apimeter_notifications_total", map[string]string{"channel": channel, "outcome": outcome})
	if m == nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func observations(t *testing.T, reg *prometheus.Registry, channel string) uint64 {
	t.Helper()
	m := metric(t, reg, "apimeter_notification_delivery_seconds", map[string]string{"channel": channel})
	if m == nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

// statuses lists the log's rows of one delivery as "status/attempt".
func statuses(rows []Delivery, key, channel string) []string {
	var out []string
	for _, r := range rows {
		if r.IdempotencyKey == key && r.Channel == channel {
			out = append(out, r.Status+"/"+strconv.Itoa(r.Attempt))
		}
	}
	return out
}

func alert(key string) Message {
	return Message{
		IdempotencyKey: key,
		DedupKey:       "error_rate:acme:/api/users/:id",
		Type:           "alert.error_rate",
		Severity:       SeverityCritical,
		Tenant:         "acme",
		User:           "u-42",
		Subject:        "Error rate 12.5% on /api/users/:id",
		Text:           "The error rate of /api/users/:id was 12.5% over the last 30 minutes (threshold 10%).",
		Data:           map[string]any{"endpoint": "/api/users/:id", "errorRate": 12.5},
		CreatedAt:      t0.Add(-time.Minute),
	}
}
