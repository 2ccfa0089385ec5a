package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Dispatcher defaults.
const (
	DefaultMaxAttempts    = 8
	DefaultQueueSize      = 1000
	DefaultConcurrency    = 4
	DefaultAttemptTimeout = 30 * time.Second
	// MaxBackoff caps the wait between attempts (before jitter), and a
	// receiver's Retry-After.
	MaxBackoff = 5 * time.Minute
)

// ErrQueueFull is returned by Send when QueueSize deliveries are already
// waiting or running; the message is recorded as queued, so a later Send
// of it or a Resume picks it up.
var ErrQueueFull = errors.New("notify: the delivery queue is full")

// DispatcherConfig configures a Dispatcher. Zero fields take the defaults
// in their comments.
type DispatcherConfig struct {
	// Channels receive every message. Their names must differ.
	Channels []Channel
	// Deliveries records every step of every delivery. Default: a
	// MemoryLog (nothing survives a restart).
	Deliveries DeliveryLog
	// MaxAttempts is the number of attempts per message and channel before
	// the delivery is abandoned. Default 8.
	MaxAttempts int
	// Backoff is the wait after failed attempt n (from 1). Default
	// DefaultBackoff: 1 s · 2^(n-1), capped at 5 minutes, ±20 %.
	Backoff func(attempt int) time.Duration
	// Sleep waits between attempts; it returns early with an error when
	// ctx ends. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now stamps the log's rows and messages without a time. Default:
	// time.Now.
	Now func() time.Time
	// QueueSize bounds the deliveries accepted and not finished (a message
	// sent to two channels is two). Default 1000.
	QueueSize int
	// Concurrency is the number of attempts running at once per channel.
	// Default 4.
	Concurrency int
	// AttemptTimeout bounds one attempt. Default 30 s.
	AttemptTimeout time.Duration
	// Registerer receives the metrics. Default: none.
	Registerer prometheus.Registerer
	// Log is the logger. Default: slog.Default().
	Log *slog.Logger
}

// DefaultBackoff is the wait after failed attempt n: 1 s · 2^(n-1),
// capped at MaxBackoff, then spread by ±20 % so that receivers coming back
// are not hit by every sender at once.
func DefaultBackoff(attempt int) time.Duration {
	d := MaxBackoff
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 20 {
		d = min(time.Second<<(attempt-1), MaxBackoff)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func sleepTimer(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// deliveryID names one delivery: a message on a channel.
type deliveryID struct{ key, channel string }

type job struct {
	msg      Message
	payload  string
	ch       Channel
	attempts int // attempts already made
}

// Dispatcher sends messages on every channel in the background, with
// retries, and records each step in its DeliveryLog so that deliveries
// survive restarts (see the package documentation).
type Dispatcher struct {
	cfg      DispatcherConfig
	channels []Channel
	byName   map[string]Channel
	slots    map[string]chan struct{} // per channel, Concurrency tokens
	queue    chan job
	log      *slog.Logger

	mu      sync.Mutex
	active  map[deliveryID]struct{} // queued or running
	idle    chan struct{}           // closed while active is empty
	running bool

	total     *prometheus.CounterVec
	seconds   *prometheus.HistogramVec
	logErrors prometheus.Counter
}

// NewDispatcher checks cfg and builds a dispatcher; Run starts its
// deliveries.
func NewDispatcher(cfg DispatcherConfig) (*Dispatcher, error) {
	if len(cfg.Channels) == 0 {
		return nil, errors.New("notify: a dispatcher needs at least one channel")
	}
	if cfg.Deliveries == nil {
		cfg.Deliveries = NewMemoryLog()
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepTimer
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	d := &Dispatcher{
		cfg: cfg, byName: map[string]Channel{}, slots: map[string]chan struct{}{},
		queue: make(chan job, cfg.QueueSize), log: cfg.Log,
		active: map[deliveryID]struct{}{}, idle: make(chan struct{}),
	}
	close(d.idle)
	for _, ch := range cfg.Channels {
		if ch == nil {
			return nil, errors.New("notify: a nil channel")
		}
		name := ch.Name()
		if name == "" {
			return nil, errors.New("notify: a channel without a name")
		}
		if _, dup := d.byName[name]; dup {
			return nil, fmt.Errorf("notify: two channels are named %q", name)
		}
		d.byName[name] = ch
		d.channels = append(d.channels, ch)
		d.slots[name] = make(chan struct{}, cfg.Concurrency)
	}
	if err := d.metrics(cfg.Registerer); err != nil {
		return nil, err
	}
	return d, nil
}

// Outcomes counted by apimeter_notifications_total.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeFailed    = "failed"
	outcomeAbandoned = "abandoned"
)

func (d *Dispatcher) metrics(reg prometheus.Registerer) error {
	d.total = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apimeter_notifications_total",
		Help: "Notification delivery attempts, by channel and outcome (delivered, retry, failed, abandoned).",
	}, []string{"channel", "outcome"})
	d.seconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apimeter_notification_delivery_seconds",
		Help:    "Duration of one notification delivery attempt, by channel.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 13),
	}, []string{"channel"})
	d.logErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "apimeter_notification_log_errors_total",
		Help: "Failed reads and writes of the notification delivery log (deliveries go on without it).",
	})
	var err error
	if d.total, err = register(reg, d.total); err != nil {
		return err
	}
	if d.seconds, err = register(reg, d.seconds); err != nil {
		return err
	}
	if d.logErrors, err = register(reg, d.logErrors); err != nil {
		return err
	}
	for _, ch := range d.channels {
		for _, o := range []string{outcomeDelivered, outcomeRetry, outcomeFailed, outcomeAbandoned} {
			d.total.WithLabelValues(ch.Name(), o)
		}
	}
	return nil
}

// register registers c, or returns the collector already registered
// under its name (a second dispatcher on one registry shares it).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("notify: metrics: %w", err)
	}
	return c, nil
}

// Send accepts a message for every channel and returns without waiting
// for the deliveries, which Run makes. For each channel it skips the
// message when that channel already delivered its idempotency key (a
// repeat after a restart sends nothing) or is delivering it now, and
// otherwise records it as queued. Send fails on an invalid message, and
// with ErrQueueFull when too many deliveries are waiting; it does not
// fail when the log cannot be read or written: the message goes out
// anyway (without a durable record of it, which the log and a metric
// report).
func (d *Dispatcher) Send(ctx context.Context, m Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	m = m.normalize(d.cfg.Now())
	payload, err := encodePayload(m)
	if err != nil {
		return err
	}
	var errs []error
	for _, ch := range d.channels {
		name := ch.Name()
		id := deliveryID{m.IdempotencyKey, name}
		if d.isActive(id) {
			continue
		}
		done, err := d.cfg.Deliveries.Delivered(ctx, m.IdempotencyKey, name)
		if err != nil {
			d.logError("read the delivery log", err, m, name)
		} else if done {
			d.log.Debug("notification already delivered", "key", m.IdempotencyKey, "channel", name)
			continue
		}
		ok, err := d.admit(id)
		if err != nil {
			d.record(ctx, m, payload, name, StatusQueued, 0, nil)
			errs = append(errs, fmt.Errorf("%w: %s on %s waits for a Resume or another Send", err, m.IdempotencyKey, name))
			d.log.Warn("notification queue full", "key", m.IdempotencyKey, "type", m.Type, "channel", name)
			continue
		}
		if !ok {
			continue // another Send of it got there first
		}
		// Recorded before a worker can take it, so the queued row comes
		// first.
		d.record(ctx, m, payload, name, StatusQueued, 0, nil)
		d.queue <- job{msg: m, payload: payload, ch: ch}
	}
	return errors.Join(errs...)
}

// Resume queues again the deliveries the log holds as unfinished since
// since — those a stopped process left — and returns how many it queued.
// Deliveries of channels this dispatcher does not have are left alone.
// Attempts already made count towards MaxAttempts.
func (d *Dispatcher) Resume(ctx context.Context, since time.Time) (int, error) {
	pending, err := d.cfg.Deliveries.Pending(ctx, since)
	if err != nil && len(pending) == 0 {
		return 0, err
	}
	errs := []error{err}
	n := 0
	for _, p := range pending {
		ch, found := d.byName[p.Channel]
		if !found {
			d.log.Warn("pending notification for a channel that is not configured", "key", p.Message.IdempotencyKey, "channel", p.Channel)
			continue
		}
		payload, err := encodePayload(p.Message)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ok, err := d.admit(deliveryID{p.Message.IdempotencyKey, p.Channel})
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: resumed %d of %d pending deliveries", err, n, len(pending)))
			break
		}
		if ok {
			d.queue <- job{msg: p.Message, payload: payload, ch: ch, attempts: p.Attempts}
			n++
		}
	}
	if n > 0 {
		d.log.Info("resumed pending notifications", "count", n, "since", since)
	}
	return n, errors.Join(errs...)
}

// Run makes the queued deliveries until ctx ends, then waits for the
// attempts under way to stop and returns nil. Deliveries it did not
// finish stay queued or retrying in the log, for the next Resume.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return errors.New("notify: the dispatcher is already running")
	}
	d.running = true
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.running = false
		d.mu.Unlock()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-d.queue:
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.deliver(ctx, j)
			}()
		}
	}
}

// Flush waits until no delivery is queued or under way (retries
// included), or until ctx ends. It needs Run to be running.
func (d *Dispatcher) Flush(ctx context.Context) error {
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Dispatcher) isActive(id deliveryID) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.active[id]
	return ok
}

// admit reserves a place for a delivery: false when it is already queued
// or running, ErrQueueFull when QueueSize deliveries are. The queue's
// capacity is QueueSize, so sending to it after admit never blocks.
func (d *Dispatcher) admit(id deliveryID) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.active[id]; ok {
		return false, nil
	}
	if len(d.active) >= d.cfg.QueueSize {
		return false, ErrQueueFull
	}
	if len(d.active) == 0 {
		d.idle = make(chan struct{})
	}
	d.active[id] = struct{}{}
	return true, nil
}

func (d *Dispatcher) finish(id deliveryID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.active, id)
	if len(d.active) == 0 {
		close(d.idle)
	}
}

// deliver makes the attempts of one delivery.
func (d *Dispatcher) deliver(ctx context.Context, j job) {
	name := j.ch.Name()
	m := j.msg
	defer d.finish(deliveryID{m.IdempotencyKey, name})
	for attempts := j.attempts; ; {
		attempt := attempts + 1
		if attempt > d.cfg.MaxAttempts { // resumed with every attempt made
			d.total.WithLabelValues(name, outcomeAbandoned).Inc()
			d.record(ctx, m, j.payload, name, StatusAbandoned, attempts, errors.New("no attempt left after a restart"))
			d.log.Error("notification abandoned", "key", m.IdempotencyKey, "type", m.Type, "channel", name, "attempts", attempts)
			return
		}
		err := d.attempt(ctx, j.ch, m)
		if err != nil && ctx.Err() != nil {
			return // stopping: the delivery stays unfinished in the log
		}
		switch {
		case err == nil:
			d.total.WithLabelValues(name, outcomeDelivered).Inc()
			d.record(ctx, m, j.payload, name, StatusDelivered, attempt, nil)
			d.log.Info("notification delivered", "key", m.IdempotencyKey, "type", m.Type, "channel", name, "attempt", attempt)
			return
		case IsPermanent(err):
			d.total.WithLabelValues(name, outcomeFailed).Inc()
			d.record(ctx, m, j.payload, name, StatusFailed, attempt, err)
			d.log.Error("notification refused", "key", m.IdempotencyKey, "type", m.Type, "channel", name, "attempt", attempt, "err", err)
			return
		case attempt >= d.cfg.MaxAttempts:
			d.total.WithLabelValues(name, outcomeAbandoned).Inc()
			d.record(ctx, m, j.payload, name, StatusAbandoned, attempt, err)
			d.log.Error("notification abandoned", "key", m.IdempotencyKey, "type", m.Type, "channel", name, "attempts", attempt, "err", err)
			return
		}
		d.total.WithLabelValues(name, outcomeRetry).Inc()
		d.record(ctx, m, j.payload, name, StatusRetrying, attempt, err)
		wait := d.cfg.Backoff(attempt)
		if ra := retryAfter(err); ra > wait {
			wait = min(ra, MaxBackoff)
		}
		d.log.Warn("notification attempt failed", "key", m.IdempotencyKey, "type", m.Type, "channel", name, "attempt", attempt, "retryIn", wait, "err", err)
		if d.cfg.Sleep(ctx, wait) != nil {
			return
		}
		attempts = attempt
	}
}

// attempt runs one Deliver in one of the channel's slots, timed, with a
// panic turned into an error.
func (d *Dispatcher) attempt(ctx context.Context, ch Channel, m Message) (err error) {
	name := ch.Name()
	slots := d.slots[name]
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-slots }()
	actx, cancel := context.WithTimeout(ctx, d.cfg.AttemptTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		d.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if p := recover(); p != nil {
			err = fmt.Errorf("notify: channel %s panicked: %v", name, p)
		}
	}()
	return ch.Deliver(actx, m)
}

// record writes a row of the log. A final row is written even while ctx
// ends (shutdown), within a few seconds; a failed write is logged and
// counted, and the delivery goes on.
func (d *Dispatcher) record(ctx context.Context, m Message, payload, channel, status string, attempt int, cause error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	row := Delivery{
		IdempotencyKey: m.IdempotencyKey, DedupKey: m.DedupKey, Type: m.Type, Severity: m.Severity,
		Channel: channel, Tenant: m.Tenant, User: m.User, Status: status, Attempt: attempt,
		Payload: payload, At: d.cfg.Now().UTC(),
	}
	if cause != nil {
		row.Error = cause.Error()
	}
	if err := d.cfg.Deliveries.Record(rctx, row); err != nil {
		d.logError("write the delivery log", err, m, channel)
	}
}

func (d *Dispatcher) logError(what string, err error, m Message, channel string) {
	d.logErrors.Inc()
	d.log.Warn("notify: cannot "+what+"; delivering without it", "key", m.IdempotencyKey, "channel", channel, "err", err)
}
