package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// receiver is a webhook endpoint that checks every request the way a
// receiver would and answers with the statuses it is given, then 200.
type receiver struct {
	t       *testing.T
	secret  []byte
	answers []int

	mu       sync.Mutex
	requests []*http.Request
	bodies   [][]byte
	verified []error
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	n := len(rc.requests)
	rc.requests = append(rc.requests, r)
	rc.bodies = append(rc.bodies, body)
	rc.verified = append(rc.verified, VerifySignature(rc.secret, r.Header, body, t0, time.Minute))
	rc.mu.Unlock()
	if n < len(rc.answers) {
		w.WriteHeader(rc.answers[n])
		io.WriteString(w, "try later")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.requests)
}

// hmacHex is the signature the contract describes, computed here
// independently of Sign.
func hmacHex(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "." + string(body)))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookDeliveredOnThirdAttempt(t *testing.T) {
	secret := []byte("whsec-test-0123456789")
	rc := &receiver{t: t, secret: secret, answers: []int{503, 503}}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	reg := prometheus.NewRegistry()
	log := NewMemoryLog()
	sl := &sleeper{}
	d, err := NewDispatcher(DispatcherConfig{
		Channels:   []Channel{&Webhook{URL: srv.URL + "/hooks/alerts", Secret: secret, Now: fixedNow}},
		Deliveries: log, Sleep: sl.Sleep, Now: fixedNow, Registerer: reg, Log: quietLogger(),
	})
	require.NoError(t, err)
	start(t, d)

	m := alert("alert-error-rate-1")
	require.NoError(t, d.Send(context.Background(), m))
	flush(t, d)

	require.Equal(t, 3, rc.count(), "two 503s, then the 200")
	waits := sl.Waits()
	require.Len(t, waits, 2)
	require.InDelta(t, float64(time.Second), float64(waits[0]), float64(200*time.Millisecond), "1 s ± 20 percent")
	require.InDelta(t, float64(2*time.Second), float64(waits[1]), float64(400*time.Millisecond), "2 s ± 20 percent")

	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, r := range rc.requests {
		require.NoError(t, rc.verified[i], "request %d verifies", i)
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/hooks/alerts", r.URL.Path)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.Equal(t, "alert-error-rate-1", r.Header.Get("X-Apimeter-Idempotency-Key"), "the same key on every attempt")
		require.Equal(t, strconv.FormatInt(t0.Unix(), 10), r.Header.Get("X-Apimeter-Timestamp"))
		require.Equal(t, hmacHex(secret, r.Header.Get("X-Apimeter-Timestamp"), rc.bodies[i]), r.Header.Get("X-Apimeter-Signature"))
	}
	var body map[string]any
	require.NoError(t, json.Unmarshal(rc.bodies[2], &body))
	require.Equal(t, map[string]any{
		"idempotencyKey": "alert-error-rate-1",
		"dedupKey":       "error_rate:acme:/api/users/:id",
		"type":           "alert.error_rate",
		"severity":       "critical",
		"subject":        "Error rate 12.5% on /api/users/:id",
		"text":           "The error rate of /api/users/:id was 12.5% over the last 30 minutes (threshold 10%).",
		"tenantId":       "acme",
		"userId":         "u-42",
		"data":           map[string]any{"endpoint": "/api/users/:id", "errorRate": 12.5},
		"createdAt":      "2026-11-27T09:59:00Z",
	}, body)

	require.Equal(t, []string{"queued/0", "retrying/1", "retrying/2", "delivered/3"},
		statuses(log.Deliveries(), "alert-error-rate-1", "webhook"))
	for _, row := range log.Deliveries() {
		if row.Status == StatusRetrying {
			require.Contains(t, row.Error, "HTTP 503")
		}
		require.Equal(t, "error_rate:acme:/api/users/:id", row.DedupKey)
		require.Equal(t, "alert.error_rate", row.Type)
		require.Equal(t, "critical", row.Severity)
		require.Equal(t, "acme", row.Tenant)
		require.Equal(t, "u-42", row.User)
		require.Equal(t, t0, row.At)
		var stored Message
		require.NoError(t, json.Unmarshal([]byte(row.Payload), &stored), "the payload is the message as JSON")
		require.Equal(t, "alert-error-rate-1", stored.IdempotencyKey)
	}
	require.Equal(t, 1.0, counter(t, reg, "webhook", "delivered"))
	require.Equal(t, 2.0, counter(t, reg, "webhook", "retry"))
	require.Equal(t, 0.0, counter(t, reg, "webhook", "failed"))
	require.Equal(t, uint64(3), observations(t, reg, "webhook"))
}

func TestWebhookBadRequestIsPermanent(t *testing.T) {
	rc := &receiver{t: t, secret: []byte("k"), answers: []int{400}}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	reg := prometheus.NewRegistry()
	log := NewMemoryLog()
	sl := &sleeper{}
	d, err := NewDispatcher(DispatcherConfig{
		Channels:   []Channel{&Webhook{URL: srv.URL, Secret: []byte("k"), Now: fixedNow}},
		Deliveries: log, Sleep: sl.Sleep, Now: fixedNow, Registerer: reg, Log: quietLogger(),
	})
	require.NoError(t, err)
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-400")))
	flush(t, d)

	require.Equal(t, 1, rc.count(), "no retry after a 400")
	require.Empty(t, sl.Waits())
	require.Equal(t, []string{"queued/0", "failed/1"}, statuses(log.Deliveries(), "k-400", "webhook"))
	rows := log.Deliveries()
	require.Contains(t, rows[len(rows)-1].Error, "HTTP 400: try later")
	require.Equal(t, 1.0, counter(t, reg, "webhook", "failed"))
	require.Equal(t, 0.0, counter(t, reg, "webhook", "retry"))

	pending, err := log.Pending(context.Background(), time.Time{})
	require.NoError(t, err)
	require.Empty(t, pending, "a refused message is finished")
}

func TestWebhookStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{200, false}, {202, false}, {204, false},
		{408, false}, {429, false}, {500, false}, {502, false}, {503, false}, {504, false},
		{400, true}, {401, true}, {403, true}, {404, true}, {410, true}, {422, true}, {301, true},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status == 301 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			err := (&Webhook{URL: srv.URL}).Deliver(context.Background(), alert("k"))
			if tc.status < 300 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.Equal(t, tc.permanent, IsPermanent(err), "%v", err)
		})
	}
}

func TestWebhookUnsignedWithoutSecret(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	require.NoError(t, (&Webhook{URL: srv.URL, Now: fixedNow}).Deliver(context.Background(), alert("k-unsigned")))
	require.Empty(t, got.Get("X-Apimeter-Signature"))
	require.Equal(t, "k-unsigned", got.Get("X-Apimeter-Idempotency-Key"))
	require.Equal(t, strconv.FormatInt(t0.Unix(), 10), got.Get("X-Apimeter-Timestamp"))
}

func TestWebhookRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "90")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	log := NewMemoryLog()
	sl := &sleeper{}
	d, err := NewDispatcher(DispatcherConfig{
		Channels:   []Channel{&Webhook{URL: srv.URL, Now: fixedNow}},
		Deliveries: log, Sleep: sl.Sleep, Now: fixedNow, MaxAttempts: 2, Log: quietLogger(),
	})
	require.NoError(t, err)
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-429")))
	flush(t, d)
	require.Equal(t, []time.Duration{90 * time.Second}, sl.Waits(), "the receiver's Retry-After beats a 1 s backoff")
	require.Equal(t, []string{"queued/0", "retrying/1", "abandoned/2"}, statuses(log.Deliveries(), "k-429", "webhook"))
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("whsec-verify")
	var h http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	require.NoError(t, (&Webhook{URL: srv.URL, Secret: secret, Now: fixedNow}).Deliver(context.Background(), alert("k-verify")))

	require.NoError(t, VerifySignature(secret, h, body, t0, time.Minute))
	require.NoError(t, VerifySignature(secret, h, body, t0.Add(59*time.Second), time.Minute))
	require.NoError(t, VerifySignature(secret, h, body, t0.Add(-59*time.Second), time.Minute), "a receiver's clock may be behind")

	tampered := []byte(strings.Replace(string(body), `"critical"`, `"info"`, 1))
	require.NotEqual(t, body, tampered)
	require.ErrorIs(t, VerifySignature(secret, h, tampered, t0, time.Minute), ErrBadSignature)
	require.ErrorIs(t, VerifySignature([]byte("another secret"), h, body, t0, time.Minute), ErrBadSignature)
	require.ErrorIs(t, VerifySignature(secret, h, body, t0.Add(10*time.Minute), time.Minute), ErrStaleTimestamp)
	require.ErrorIs(t, VerifySignature(secret, h, body, t0.Add(6*time.Minute), 0), ErrStaleTimestamp, "the default tolerance is 5 minutes")
	require.NoError(t, VerifySignature(secret, h, body, t0.Add(4*time.Minute), 0))

	// A replayed body under a fresh timestamp does not match the old
	// signature.
	moved := h.Clone()
	moved.Set("X-Apimeter-Timestamp", strconv.FormatInt(t0.Add(10*time.Minute).Unix(), 10))
	require.ErrorIs(t, VerifySignature(secret, moved, body, t0.Add(10*time.Minute), time.Minute), ErrBadSignature)

	bad := h.Clone()
	bad.Set("X-Apimeter-Timestamp", "yesterday")
	require.ErrorIs(t, VerifySignature(secret, bad, body, t0, time.Minute), ErrBadSignature)
	none := h.Clone()
	none.Del("X-Apimeter-Signature")
	require.ErrorIs(t, VerifySignature(secret, none, body, t0, time.Minute), ErrNoSignature)

	// Secret rotation: one of several signatures matching is enough.
	rotated := h.Clone()
	rotated.Set("X-Apimeter-Signature", hmacHex([]byte("old"), h.Get("X-Apimeter-Timestamp"), body)+", "+h.Get("X-Apimeter-Signature"))
	require.NoError(t, VerifySignature(secret, rotated, body, t0, time.Minute))
	require.Error(t, VerifySignature(nil, h, body, t0, time.Minute))
}

func TestWebhookNeverShowsSecrets(t *testing.T) {
	// Nothing listens on port 1 of the loopback address.
	raw := "http://hookuser:hookpass@127.0.0.1:1/services/T0KEN-IN-PATH?token=SECRET-IN-QUERY"
	w := &Webhook{URL: raw, Secret: []byte("SIGNING-SECRET")}
	err := w.Deliver(context.Background(), alert("k-redact"))
	require.Error(t, err)
	require.False(t, IsPermanent(err), "a refused connection is retried")
	for _, s := range []string{"hookpass", "T0KEN", "SECRET-IN-QUERY", "SIGNING-SECRET"} {
		require.NotContains(t, err.Error(), s)
		require.NotContains(t, w.String(), s)
	}
	require.Contains(t, err.Error(), "http://127.0.0.1:1/…")

	var out syncBuffer
	d, err := NewDispatcher(DispatcherConfig{
		Channels: []Channel{w}, Sleep: (&sleeper{}).Sleep, MaxAttempts: 2, Now: fixedNow,
		Log: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	require.NoError(t, err)
	start(t, d)
	require.NoError(t, d.Send(context.Background(), alert("k-redact")))
	flush(t, d)
	slog.New(slog.NewTextHandler(&out, nil)).Info("channel", "webhook", w)
	logs := out.String()
	require.Contains(t, logs, "notification abandoned")
	require.Contains(t, logs, "127.0.0.1:1")
	for _, s := range []string{"hookpass", "T0KEN", "SECRET-IN-QUERY", "SIGNING-SECRET"} {
		require.NotContains(t, logs, s)
	}
}

func TestNewWebhook(t *testing.T) {
	w, err := NewWebhook("https://hooks.example.com/alerts", nil)
	require.NoError(t, err)
	require.Equal(t, "webhook", w.Name())
	for _, raw := range []string{"ftp://example.com/x", "https:///nohost", "://bad", "hooks.example.com/alerts"} {
		_, err := NewWebhook(raw, nil)
		require.Error(t, err, raw)
	}
	_, err = NewWebhook("ftp://user:topsecret@example.com/x", nil)
	require.NotContains(t, err.Error(), "topsecret")
	require.Equal(t, "https://hooks.example.com", RedactWebhookURL("https://hooks.example.com"))
	require.Equal(t, "https://hooks.example.com/…", RedactWebhookURL("https://u:p@hooks.example.com/x?y=z"))
}

func TestWebhookContextCancelled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := (&Webhook{URL: srv.URL}).Deliver(ctx, alert("k"))
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
}
