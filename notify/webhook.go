package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request.
const (
	HeaderIdempotencyKey = "X-Apimeter-Idempotency-Key"
	HeaderTimestamp      = "X-Apimeter-Timestamp"
	HeaderSignature      = "X-Apimeter-Signature"
)

// DefaultSignatureTolerance is how far a webhook's timestamp may be from
// the receiver's clock when VerifySignature is given no tolerance.
const DefaultSignatureTolerance = 5 * time.Minute

// Webhook posts messages as JSON (WebhookBody) to a URL
// (ALERT_WEBHOOK_URL). A 2xx answer is a delivery; 408, 429, 5xx and
// network errors are retried (a Retry-After header is honoured); any other
// answer, redirects included, is a permanent failure.
//
// With a Secret, every request is signed: X-Apimeter-Signature is
// "sha256=" and the hex HMAC-SHA256, keyed with the secret, of the
// X-Apimeter-Timestamp value (unix seconds), a ".", and the body.
// Receivers check it with VerifySignature.
//
// Logs and errors name the webhook by scheme and host only: a URL's
// credentials, query and path (chat services put their tokens in the
// path) are never shown.
type Webhook struct {
	URL    string
	Secret []byte
	// Client sends the requests. Default: a client that does not follow
	// redirects, with a 30 s timeout.
	Client *http.Client
	// Now stamps the requests. Default: time.Now.
	Now func() time.Time
	// Label is the channel's name. Default: "webhook".
	Label string
}

// NewWebhook checks an http(s) URL and returns its channel; secret may be
// nil (requests are then not signed).
func NewWebhook(rawURL string, secret []byte) (*Webhook, error) {
	if err := checkWebhookURL(rawURL); err != nil {
		return nil, err
	}
	return &Webhook{URL: rawURL, Secret: secret}, nil
}

func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the URL, secrets included.
		return errors.New("notify: webhook URL is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("notify: webhook URL %s: scheme %q, want http or https", RedactWebhookURL(raw), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("notify: webhook URL %s: no host", RedactWebhookURL(raw))
	}
	return nil
}

// RedactWebhookURL is the form of a webhook URL fit for logs: scheme and
// host, and "/…" when the URL has more.
func RedactWebhookURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		s += "/…"
	}
	return s
}

// Name implements Channel.
func (w *Webhook) Name() string {
	if w.Label != "" {
		return w.Label
	}
	return "webhook"
}

// String describes the channel without secrets.
func (w *Webhook) String() string { return w.Name() + " " + RedactWebhookURL(w.URL) }

// LogValue keeps the URL's secrets and the signing secret out of logs.
func (w *Webhook) LogValue() slog.Value {
	return slog.GroupValue(slog.String("channel", w.Name()), slog.String("url", RedactWebhookURL(w.URL)), slog.Bool("signed", len(w.Secret) > 0))
}

// WebhookBody is the JSON a webhook receives.
type WebhookBody struct {
	IdempotencyKey string         `json:"idempotencyKey"`
	DedupKey       string         `json:"dedupKey,omitempty"`
	Type           string         `json:"type"`
	Severity       string         `json:"severity"`
	Subject        string         `json:"subject"`
	Text           string         `json:"text"`
	Tenant         string         `json:"tenantId"`
	User           string         `json:"userId"`
	Data           map[string]any `json:"data"`
	CreatedAt      time.Time      `json:"createdAt"`
}

func webhookBody(m Message) WebhookBody {
	data := m.Data
	if data == nil {
		data = map[string]any{}
	}
	return WebhookBody{
		IdempotencyKey: m.IdempotencyKey, DedupKey: m.DedupKey, Type: m.Type, Severity: m.Severity,
		Subject: m.Subject, Text: m.Text, Tenant: m.Tenant, User: m.User, Data: data,
		CreatedAt: m.CreatedAt.UTC(),
	}
}

var defaultWebhookClient = &http.Client{
	Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Deliver implements Channel: one POST.
func (w *Webhook) Deliver(ctx context.Context, m Message) error {
	where := "webhook " + RedactWebhookURL(w.URL)
	if err := checkWebhookURL(w.URL); err != nil {
		return Permanent(err)
	}
	body, err := json.Marshal(webhookBody(m))
	if err != nil {
		return Permanent(fmt.Errorf("%s: encode the message: %w", where, err))
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("%s: cannot build the request", where))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "apimeter-notify")
	req.Header.Set(HeaderIdempotencyKey, m.IdempotencyKey)
	req.Header.Set(HeaderTimestamp, ts)
	if len(w.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.Secret, ts, body))
	}
	client := w.Client
	if client == nil {
		client = defaultWebhookClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", where, ctx.Err())
		}
		return fmt.Errorf("%s: %w", where, withoutURL(err))
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err = fmt.Errorf("%s: HTTP %d%s", where, code, snippet(head))
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return RetryAfter(err, parseRetryAfter(resp.Header.Get("Retry-After"), now()))
	default:
		return Permanent(err)
	}
}

// withoutURL drops the URL net/http puts in its errors (it may carry
// credentials or tokens).
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// snippet is the start of a response body for an error message, one line.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return ""
	}
	return ": " + oneLine(strings.ToValidUTF8(truncate(s, 200), "?"))
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > 86400 {
			n = 86400
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sign is the X-Apimeter-Signature value of a body sent at timestamp (the
// X-Apimeter-Timestamp value): "sha256=" and the hex HMAC-SHA256 of
// timestamp + "." + body.
func Sign(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of VerifySignature.
var (
	ErrNoSignature    = errors.New("notify: the request carries no signature or timestamp")
	ErrBadSignature   = errors.New("notify: the signature does not match")
	ErrStaleTimestamp = errors.New("notify: the request's timestamp is outside the tolerance")
)

// VerifySignature checks a webhook request as a receiver: the signature
// must be the HMAC of the timestamp header and body under secret
// (compared in constant time), and the timestamp within tolerance of now
// in either direction (DefaultSignatureTolerance when tolerance ≤ 0), so a
// captured request cannot be replayed later. The signature header may list
// several comma-separated signatures (one per secret while secrets
// rotate); one match is enough.
func VerifySignature(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errors.New("notify: no secret to verify the signature with")
	}
	ts, sigs := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sigs == "" {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrBadSignature, ts)
	}
	if tolerance <= 0 {
		tolerance = DefaultSignatureTolerance
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s apart", ErrStaleTimestamp, d.Round(time.Second))
	}
	want := []byte(Sign(secret, ts, body))
	for _, sig := range strings.Split(sigs, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(sig)), want) {
			return nil
		}
	}
	return ErrBadSignature
}
