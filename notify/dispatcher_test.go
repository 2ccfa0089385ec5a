package notify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

var errUnavailable = errors.New("503 service unavailable")

func newDispatcher(t *testing.T, cfg DispatcherConfig) *Dispatcher {
	t.Helper()
	if cfg.Sleep == nil {
		cfg.Sleep = (&sleeper{}).Sleep
	}
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	if cfg.Log == nil {
		cfg.Log = quietLogger()
	}
	d, err := NewDispatcher(cfg)
	require.NoError(t, err)
	return d
}

func TestDispatcherEachChannelOnce(t *testing.T) {
	hook, mail := &fakeChannel{name: "webhook"}, &fakeChannel{name: "email"}
	log := NewMemoryLog()
	reg := prometheus.NewRegistry()
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{hook, mail}, Deliveries: log, Registerer: reg})
	start(t, d)

	m := alert("incident-42-created")
	require.NoError(t, d.Send(context.Background(), m))
	flush(t, d)
	for _, ch := range []*fakeChannel{hook, mail} {
		got := ch.Delivered()
		require.Len(t, got, 1, ch.name)
		require.Equal(t, "incident-42-created", got[0].IdempotencyKey)
		require.Equal(t, m.Subject, got[0].Subject)
		require.Equal(t, m.Data, got[0].Data)
		require.Equal(t, []string{"queued/0", "delivered/1"}, statuses(log.Deliveries(), m.IdempotencyKey, ch.name))
	}

	// The same idempotency key again, once delivered: nothing is sent or
	// queued.
	rows := len(log.Deliveries())
	require.NoError(t, d.Send(context.Background(), m))
	flush(t, d)
	require.Len(t, hook.Delivered(), 1)
	require.Len(t, mail.Delivered(), 1)
	require.Len(t, log.Deliveries(), rows)

	// A new key is a new notification.
	require.NoError(t, d.Send(context.Background(), alert("incident-42-resolved")))
	flush(t, d)
	require.Len(t, hook.Delivered(), 2)
	require.Len(t, mail.Delivered(), 2)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP apimeter_notifications_total Notification delivery attempts, by channel and outcome (delivered, retry, failed, abandoned).
# TYPE apimeter_notifications_total counter
apimeter_notifications_total{channel="email",outcome="abandoned"} 0
apimeter_notifications_total{channel="email",outcome="delivered"} 2
apimeter_notifications_total{channel="email",outcome="failed"} 0
apimeter_notifications_total{channel="email",outcome="retry"} 0
apimeter_notifications_total{channel="webhook",outcome="abandoned"} 0
apimeter_notifications_total{channel="webhook",outcome="delivered"} 2
apimeter_notifications_total{channel="webhook",outcome="failed"} 0
apimeter_notifications_total{channel="webhook",outcome="retry"} 0
`), "apimeter_notifications_total"))
	require.Equal(t, uint64(2), observations(t, reg, "webhook"))
	require.Equal(t, uint64(2), observations(t, reg, "email"))
}

func TestDispatcherAbandonsAfterMaxAttempts(t *testing.T) {
	down := &fakeChannel{name: "webhook", fail: func(int) error { return errUnavailable }}
	up := &fakeChannel{name: "email"}
	log := NewMemoryLog()
	reg := prometheus.NewRegistry()
	sl := &sleeper{}
	var asked []int
	var mu sync.Mutex
	d := newDispatcher(t, DispatcherConfig{
		Channels: []Channel{down, up}, Deliveries: log, Registerer: reg, Sleep: sl.Sleep, MaxAttempts: 4,
		Backoff: func(n int) time.Duration {
			mu.Lock()
			asked = append(asked, n)
			mu.Unlock()
			return time.Duration(n) * time.Minute
		},
	})
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-down")))
	flush(t, d)

	require.Equal(t, 4, down.Attempts())
	require.Equal(t, []int{1, 2, 3}, asked, "a wait after each failed attempt but the last")
	require.Equal(t, []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute}, sl.Waits())
	require.Equal(t, []string{"queued/0", "retrying/1", "retrying/2", "retrying/3", "abandoned/4"}, statuses(log.Deliveries(), "k-down", "webhook"))
	for _, r := range log.Deliveries() {
		if r.Channel == "webhook" && r.Status != StatusQueued {
			require.Contains(t, r.Error, "503 service unavailable")
		}
	}
	require.Len(t, up.Delivered(), 1, "a failing channel does not hold the other back")

	require.Equal(t, 3.0, counter(t, reg, "webhook", "retry"))
	require.Equal(t, 1.0, counter(t, reg, "webhook", "abandoned"))
	require.Equal(t, 0.0, counter(t, reg, "webhook", "delivered"))
	require.Equal(t, 1.0, counter(t, reg, "email", "delivered"))
	require.Equal(t, uint64(4), observations(t, reg, "webhook"))

	pending, err := log.Pending(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Empty(t, pending, "an abandoned delivery is finished")
}

func TestDispatcherPermanentFailure(t *testing.T) {
	ch := &fakeChannel{name: "webhook", fail: func(int) error { return Permanent(errors.New("HTTP 410 gone")) }}
	log := NewMemoryLog()
	reg := prometheus.NewRegistry()
	sl := &sleeper{}
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}, Deliveries: log, Registerer: reg, Sleep: sl.Sleep})
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-gone")))
	flush(t, d)
	require.Equal(t, 1, ch.Attempts())
	require.Empty(t, sl.Waits())
	require.Equal(t, []string{"queued/0", "failed/1"}, statuses(log.Deliveries(), "k-gone", "webhook"))
	require.Equal(t, 1.0, counter(t, reg, "webhook", "failed"))
}

func TestDispatcherDefaultBackoffAndPanics(t *testing.T) {
	ch := &fakeChannel{name: "webhook", fail: func(n int) error {
		if n == 1 {
			panic("boom")
		}
		if n < 5 {
			return errUnavailable
		}
		return nil
	}}
	log := NewMemoryLog()
	sl := &sleeper{}
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}, Deliveries: log, Sleep: sl.Sleep})
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-backoff")))
	flush(t, d)
	require.Equal(t, []string{"queued/0", "retrying/1", "retrying/2", "retrying/3", "retrying/4", "delivered/5"}, statuses(log.Deliveries(), "k-backoff", "webhook"))
	require.Contains(t, log.Deliveries()[1].Error, "panicked: boom")
	waits := sl.Waits()
	require.Len(t, waits, 4)
	for i, base := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		require.GreaterOrEqual(t, waits[i], base*8/10, "wait %d", i+1)
		require.LessOrEqual(t, waits[i], base*12/10, "wait %d", i+1)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for n, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 9: 256 * time.Second, 10: 5 * time.Minute, 60: 5 * time.Minute} {
		for range 50 {
			d := DefaultBackoff(n)
			require.GreaterOrEqual(t, d, base*8/10, "attempt %d", n)
			require.LessOrEqual(t, d, base*12/10, "attempt %d", n)
		}
	}
}

// TestDispatcherResumesAfterRestart stops a dispatcher in the middle of
// its deliveries and starts another over the same log: each pending
// delivery is made once, the delivered one is not repeated.
func TestDispatcherResumesAfterRestart(t *testing.T) {
	log := NewMemoryLog()

	// The first process: its webhook fails once and the process stops
	// while waiting to retry; its e-mail delivers.
	sleeping := make(chan struct{})
	var once sync.Once
	first := newDispatcher(t, DispatcherConfig{
		Channels: []Channel{
			&fakeChannel{name: "webhook", fail: func(int) error { return errUnavailable }},
			&fakeChannel{name: "email"},
		},
		Deliveries: log,
		Sleep: func(ctx context.Context, _ time.Duration) error {
			once.Do(func() { close(sleeping) })
			<-ctx.Done()
			return ctx.Err()
		},
	})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- first.Run(ctx) }()
	require.NoError(t, first.Send(context.Background(), alert("k-restart")))
	<-sleeping
	require.Eventually(t, func() bool {
		return len(statuses(log.Deliveries(), "k-restart", "email")) == 2
	}, 5*time.Second, time.Millisecond)
	stop()
	require.NoError(t, <-ran)
	// And a message it accepted but never started (its Run had ended).
	require.NoError(t, first.Send(context.Background(), alert("k-never-started")))

	require.Equal(t, []string{"queued/0", "retrying/1"}, statuses(log.Deliveries(), "k-restart", "webhook"))
	require.Equal(t, []string{"queued/0", "delivered/1"}, statuses(log.Deliveries(), "k-restart", "email"))

	// The second process.
	hook, mail := &fakeChannel{name: "webhook"}, &fakeChannel{name: "email"}
	reg := prometheus.NewRegistry()
	second := newDispatcher(t, DispatcherConfig{Channels: []Channel{hook, mail}, Deliveries: log, Registerer: reg})
	start(t, second)
	n, err := second.Resume(context.Background(), t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, 3, n, "k-restart on the webhook, k-never-started on both")
	flush(t, second)

	keys := func(ms []Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.IdempotencyKey)
		}
		return out
	}
	require.ElementsMatch(t, []string{"k-restart", "k-never-started"}, keys(hook.Delivered()))
	require.Equal(t, []string{"k-never-started"}, keys(mail.Delivered()), "the e-mail of k-restart went out before the restart")
	require.Equal(t, []string{"queued/0", "retrying/1", "delivered/2"}, statuses(log.Deliveries(), "k-restart", "webhook"), "attempts count on")
	resumed := hook.Delivered()[0]
	if resumed.IdempotencyKey != "k-restart" {
		resumed = hook.Delivered()[1]
	}
	want := alert("k-restart")
	require.Equal(t, want.Subject, resumed.Subject)
	require.Equal(t, want.DedupKey, resumed.DedupKey)
	require.True(t, want.CreatedAt.Equal(resumed.CreatedAt))

	// Nothing is left, and a repeat of the message sends nothing.
	n, err = second.Resume(context.Background(), t0.Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, second.Send(context.Background(), alert("k-restart")))
	flush(t, second)
	require.Len(t, hook.Delivered(), 2)
	require.Len(t, mail.Delivered(), 1)
	require.Equal(t, 2.0, counter(t, reg, "webhook", "delivered"))
	require.Equal(t, 1.0, counter(t, reg, "email", "delivered"))
}

func TestDispatcherResumeCountsAttempts(t *testing.T) {
	log := NewMemoryLog()
	m := alert("k-worn")
	payload, err := encodePayload(m.normalize(t0))
	require.NoError(t, err)
	for i, status := range []string{StatusQueued, StatusRetrying, StatusRetrying} {
		require.NoError(t, log.Record(context.Background(), Delivery{IdempotencyKey: m.IdempotencyKey, Channel: "webhook", Status: status, Attempt: i, Payload: payload, At: t0}))
	}
	ch := &fakeChannel{name: "webhook", fail: func(int) error { return errUnavailable }}
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}, Deliveries: log, MaxAttempts: 3})
	start(t, d)
	n, err := d.Resume(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	flush(t, d)
	require.Equal(t, 1, ch.Attempts(), "two of three attempts were made before")
	require.Equal(t, []string{"queued/0", "retrying/1", "retrying/2", "abandoned/3"}, statuses(log.Deliveries(), "k-worn", "webhook"))
}

func TestDispatcherQueueFull(t *testing.T) {
	log := NewMemoryLog()
	ch := &fakeChannel{name: "webhook"}
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}, Deliveries: log, QueueSize: 1})
	require.NoError(t, d.Send(context.Background(), alert("k-1")))
	require.NoError(t, d.Send(context.Background(), alert("k-1")), "already queued: nothing to do")
	err := d.Send(context.Background(), alert("k-2"))
	require.ErrorIs(t, err, ErrQueueFull)
	require.Equal(t, []string{"queued/0"}, statuses(log.Deliveries(), "k-1", "webhook"))
	require.Equal(t, []string{"queued/0"}, statuses(log.Deliveries(), "k-2", "webhook"), "kept for a Resume")

	start(t, d)
	flush(t, d)
	n, err := d.Resume(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	flush(t, d)
	require.Len(t, ch.Delivered(), 2)
}

func TestDispatcherRejects(t *testing.T) {
	_, err := NewDispatcher(DispatcherConfig{})
	require.Error(t, err)
	_, err = NewDispatcher(DispatcherConfig{Channels: []Channel{&fakeChannel{name: "a"}, &fakeChannel{name: "a"}}})
	require.ErrorContains(t, err, `two channels are named "a"`)

	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{&fakeChannel{name: "a"}}})
	for _, m := range []Message{
		{Subject: "no key"},
		{IdempotencyKey: "k", Subject: "s", Severity: "urgent"},
		{IdempotencyKey: "k"},
		{IdempotencyKey: strings.Repeat("k", 201), Subject: "s"},
		{IdempotencyKey: "k\r\nBcc: x@example.com", Subject: "s"},
	} {
		require.Error(t, d.Send(context.Background(), m), "%+v", m)
	}

	start(t, d)
	require.Eventually(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.running
	}, 5*time.Second, time.Millisecond)
	require.Error(t, d.Run(context.Background()), "one Run at a time")
}

// failingLog fails every call, as a store that is down does.
type failingLog struct{}

func (failingLog) Record(context.Context, Delivery) error { return errors.New("store down") }
func (failingLog) Delivered(context.Context, string, string) (bool, error) {
	return false, errors.New("store down")
}
func (failingLog) Pending(context.Context, time.Time) ([]Pending, error) {
	return nil, errors.New("store down")
}

func TestDispatcherDeliversWithoutItsLog(t *testing.T) {
	ch := &fakeChannel{name: "webhook"}
	reg := prometheus.NewRegistry()
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}, Deliveries: failingLog{}, Registerer: reg})
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-no-log")))
	flush(t, d)
	require.Len(t, ch.Delivered(), 1, "an alert goes out while the store is down")
	require.Equal(t, 3.0, testutil.ToFloat64(d.logErrors), "Delivered, queued, delivered")
	_, err := d.Resume(context.Background(), time.Time{})
	require.Error(t, err)
}

func TestSendFillsDefaults(t *testing.T) {
	ch := &fakeChannel{name: "webhook"}
	d := newDispatcher(t, DispatcherConfig{Channels: []Channel{ch}})
	start(t, d)
	require.NoError(t, d.Send(context.Background(), Message{IdempotencyKey: "k-min", Subject: "line one\nline two"}))
	flush(t, d)
	got := ch.Delivered()
	require.Len(t, got, 1)
	require.Equal(t, "info", got[0].Severity)
	require.Equal(t, t0, got[0].CreatedAt)
	require.Equal(t, "line one line two", got[0].Subject)
}

func TestPermanentWrapping(t *testing.T) {
	base := errors.New("refused")
	p := Permanent(base)
	require.True(t, IsPermanent(p))
	require.ErrorIs(t, p, base)
	require.True(t, IsPermanent(errors.Join(errors.New("x"), p)))
	require.False(t, IsPermanent(base))
	require.Nil(t, Permanent(nil))
	r := RetryAfter(base, time.Minute)
	require.Equal(t, time.Minute, retryAfter(r))
	require.False(t, IsPermanent(r))
}
