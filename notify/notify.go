// Package notify sends alert notifications by webhook and by e-mail, at
// least once.
//
// A notification is a Message with an idempotency key. The Dispatcher
// records every step of every delivery in a DeliveryLog (in production
// the alert_notifications table): "queued" when Send accepts the message,
// then one row per attempt — "retrying", "delivered", "failed" (the
// receiver refused it for good) or "abandoned" (the attempts were used
// up). A process that stops before a delivery ended leaves its latest row
// at queued or retrying; the next process's Resume sends it again. So a
// message may reach a receiver more than once (a crash between the
// receiver's answer and the log's row), never zero times while attempts
// remain: receivers drop repeats by the idempotency key, which is the
// same on every attempt and every channel (the X-Apimeter-Idempotency-Key
// header of a webhook, the Message-ID of a mail).
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Severities, from the least to the most urgent.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityMajor    = "major"
	SeverityCritical = "critical"
)

// Message is one notification.
type Message struct {
	// IdempotencyKey is the same on every attempt and channel of one
	// notification; receivers drop repeats by it. Required, at most 200
	// bytes.
	IdempotencyKey string `json:"idempotencyKey"`
	// DedupKey names the condition that caused the notification (one
	// condition sends one alert per cooldown; the caller decides).
	DedupKey string `json:"dedupKey,omitempty"`
	// Type is the notification's kind, e.g. "alert.error_rate",
	// "incident.created", "api.quota.warning".
	Type string `json:"type"`
	// Severity is info, warning, major or critical; empty means info.
	Severity string `json:"severity"`
	// Tenant and User are whom the notification concerns; may be empty.
	Tenant string `json:"tenantId,omitempty"`
	User   string `json:"userId,omitempty"`
	// Subject is one line; line breaks are replaced by spaces.
	Subject string `json:"subject"`
	// Text is the plain-text body.
	Text string         `json:"text"`
	Data map[string]any `json:"data,omitempty"`
	// CreatedAt is when the notification was raised; zero means when Send
	// was called.
	CreatedAt time.Time `json:"createdAt"`
}

// maxKeyLen bounds idempotency keys: they travel in headers and
// Message-IDs.
const maxKeyLen = 200

// Validate checks what Send needs of a message.
func (m Message) Validate() error {
	var errs []error
	switch {
	case m.IdempotencyKey == "":
		errs = append(errs, errors.New("notify: the message has no idempotency key"))
	case len(m.IdempotencyKey) > maxKeyLen:
		errs = append(errs, fmt.Errorf("notify: idempotency key of %d bytes: at most %d", len(m.IdempotencyKey), maxKeyLen))
	case strings.ContainsAny(m.IdempotencyKey, "\r\n\x00"):
		errs = append(errs, errors.New("notify: the idempotency key contains a line break or NUL"))
	}
	switch m.Severity {
	case "", SeverityInfo, SeverityWarning, SeverityMajor, SeverityCritical:
	default:
		errs = append(errs, fmt.Errorf("notify: severity %q: want info, warning, major or critical", m.Severity))
	}
	if strings.TrimSpace(m.Subject) == "" {
		errs = append(errs, errors.New("notify: the message has no subject"))
	}
	return errors.Join(errs...)
}

// normalize fills the defaults Send applies: severity info, CreatedAt now
// (UTC, milliseconds, as the log keeps it), a one-line subject.
func (m Message) normalize(now time.Time) Message {
	if m.Severity == "" {
		m.Severity = SeverityInfo
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Millisecond)
	m.Subject = oneLine(m.Subject)
	return m
}

// oneLine replaces line breaks (which would end a header) with spaces.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " "))
}

// encodePayload is the message as the log keeps it.
func encodePayload(m Message) (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("notify: encode message %s: %w", m.IdempotencyKey, err)
	}
	return string(b), nil
}

func decodePayload(s string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Channel delivers messages to one destination.
type Channel interface {
	// Name identifies the channel in the delivery log and in metrics; the
	// channels of one Dispatcher have distinct names.
	Name() string
	// Deliver makes one attempt. An error wrapped with Permanent stops the
	// retries; any other error is retried.
	Deliver(ctx context.Context, m Message) error
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks a delivery error as final: retrying cannot help (the
// receiver refused the message, the configuration is wrong).
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks a retryable delivery error with the receiver's wish
// (a Retry-After header): the next attempt waits at least d, capped at
// the Dispatcher's longest backoff.
func RetryAfter(err error, d time.Duration) error {
	if err == nil || d <= 0 {
		return err
	}
	return &retryAfterError{err: err, after: d}
}

// retryAfter is the wait an error asks for, 0 for none.
func retryAfter(err error) time.Duration {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after
	}
	return 0
}
