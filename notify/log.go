package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Delivery statuses, as the log keeps them.
const (
	// StatusQueued: Send accepted the message for a channel.
	StatusQueued = "queued"
	// StatusRetrying: an attempt failed and another one will follow.
	StatusRetrying = "retrying"
	// StatusDelivered: the channel accepted the message.
	StatusDelivered = "delivered"
	// StatusFailed: the receiver refused the message for good.
	StatusFailed = "failed"
	// StatusAbandoned: every attempt failed.
	StatusAbandoned = "abandoned"
)

// Delivery is one row of the delivery log: a step of delivering one
// message on one channel.
type Delivery struct {
	IdempotencyKey string
	DedupKey       string
	Type           string
	Severity       string
	Channel        string
	Tenant         string
	User           string
	Status         string
	// Attempt is the attempt's number, from 1; 0 for queued.
	Attempt int
	// Error is why the attempt failed, for retrying, failed and abandoned.
	Error string
	// Payload is the Message as JSON.
	Payload string
	At      time.Time
}

// Pending is a delivery a process left unfinished: its latest status is
// queued or retrying, and the channel never delivered the message.
type Pending struct {
	Message Message
	Channel string
	// Attempts is the number of attempts already made.
	Attempts int
}

// DeliveryLog records deliveries and finds the unfinished ones.
type DeliveryLog interface {
	// Record appends one row.
	Record(ctx context.Context, d Delivery) error
	// Delivered reports whether channel ever delivered the message with
	// this idempotency key.
	Delivered(ctx context.Context, idempotencyKey, channel string) (bool, error)
	// Pending returns the deliveries recorded since since whose latest
	// status is queued or retrying and that were never delivered, oldest
	// first.
	Pending(ctx context.Context, since time.Time) ([]Pending, error)
}

// statusRank orders the rows of one delivery that share a timestamp and
// an attempt number: a final status comes after retrying, which comes
// after queued.
func statusRank(status string) int {
	switch status {
	case StatusQueued:
		return 0
	case StatusRetrying:
		return 1
	default:
		return 2
	}
}

// unfinished reports whether a delivery whose latest status is status
// still has to be made.
func unfinished(status string) bool { return status == StatusQueued || status == StatusRetrying }

// MemoryLog is a DeliveryLog in memory, for tests and for running without
// a store (nothing survives the process).
type MemoryLog struct {
	mu   sync.Mutex
	rows []Delivery
}

// NewMemoryLog returns an empty log.
func NewMemoryLog() *MemoryLog { return &MemoryLog{} }

// Record implements DeliveryLog.
func (l *MemoryLog) Record(_ context.Context, d Delivery) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rows = append(l.rows, d)
	return nil
}

// Delivered implements DeliveryLog.
func (l *MemoryLog) Delivered(_ context.Context, key, channel string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.rows {
		if d.IdempotencyKey == key && d.Channel == channel && d.Status == StatusDelivered {
			return true, nil
		}
	}
	return false, nil
}

// Pending implements DeliveryLog: rows count in the order recorded, and
// deliveries come in the order of their first row.
func (l *MemoryLog) Pending(_ context.Context, since time.Time) ([]Pending, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	type id struct{ key, channel string }
	type state struct {
		last      Delivery
		delivered bool
	}
	states := map[id]*state{}
	var order []id
	for _, d := range l.rows {
		k := id{d.IdempotencyKey, d.Channel}
		s := states[k]
		if s == nil {
			s = &state{}
			states[k] = s
			order = append(order, k)
		}
		if d.Status == StatusDelivered {
			s.delivered = true
		}
		if !d.At.Before(since) {
			s.last = d
		}
	}
	var out []Pending
	var errs []error
	for _, k := range order {
		s := states[k]
		if s.delivered || s.last.Status == "" || !unfinished(s.last.Status) {
			continue
		}
		m, err := decodePayload(s.last.Payload)
		if err != nil {
			errs = append(errs, fmt.Errorf("notify: pending %s on %s: payload: %w", k.key, k.channel, err))
			continue
		}
		out = append(out, Pending{Message: m, Channel: k.channel, Attempts: s.last.Attempt})
	}
	return out, errors.Join(errs...)
}

// Deliveries returns a copy of every row, in the order recorded.
func (l *MemoryLog) Deliveries() []Delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.rows)
}
