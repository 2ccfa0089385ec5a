package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/events"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/notify"
	"github.com/apimeter/apimeter/schema"
)

// hook is a webhook receiver that checks every signature.
type hook struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    []notify.WebhookBody
	srv    *httptest.Server
}

func newHook(t *testing.T, secret string) *hook {
	h := &hook{t: t, secret: []byte(secret)}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifySignature(h.secret, r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var b notify.WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.got = append(h.got, b)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) bodies() []notify.WebhookBody {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notify.WebhookBody(nil), h.got...)
}

// inbox is a local SMTP server keeping what it receives.
type inbox struct {
	mu    sync.Mutex
	mails [][]byte
	addr  string
}

func newInbox(t *testing.T) *inbox {
	in := &inbox{}
	srv := smtp.NewServer(in)
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	in.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return in
}

func (in *inbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &inboxSession{in: in}, nil }

func (in *inbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.mails)
}

type inboxSession struct{ in *inbox }

func (s *inboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *inboxSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *inboxSession) Reset()                               {}
func (s *inboxSession) Logout() error                        { return nil }
func (s *inboxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.in.mu.Lock()
	s.in.mails = append(s.in.mails, b)
	s.in.mu.Unlock()
	return err
}

// traffic sends n records through Kafka, failing ones with status 500,
// with event times spread over [from, to).
func traffic(t *testing.T, brokers []string, topic string, n, failing int, from, to time.Time, seq *int) {
	t.Helper()
	msgs := make([]kafka.Message, 0, n)
	span := to.Sub(from)
	for i := range n {
		*seq++
		r := ingest.Record{ID: fmt.Sprintf("e2e-%d", *seq), Type: ingest.TypeAPICall, TenantID: "acme", UserID: fmt.Sprintf("u%d", i%20),
			Endpoint: "/api/orders", Method: "GET", StatusCode: 200, ResponseTimeUs: 40_000,
			EventTimeMs: from.Add(time.Duration(i) * span / time.Duration(n)).UnixMilli()}
		if i < failing {
			r.StatusCode = 500
		}
		msgs = append(msgs, kafka.Message{Key: []byte(r.ID), Value: r.AppendJSON(nil)})
	}
	produceAll(t, brokers, topic, msgs)
}

// sendRaw sends one message as it is.
func sendRaw(t *testing.T, brokers []string, topic, value string) {
	t.Helper()
	produceAll(t, brokers, topic, []kafka.Message{{Value: []byte(value)}})
}

// admin calls the admin API of s.
func admin(t *testing.T, s *server, key, method, path string, out any) int {
	t.Helper()
	status, raw := send(t, s, key, method, path, nil)
	if out != nil && status < 300 {
		require.NoError(t, json.Unmarshal(raw, out), "%s", raw)
	}
	return status
}

func healthCheck(t *testing.T, s *server, key string) {
	t.Helper()
	var r struct {
		OK  bool `json:"ok"`
		Run any  `json:"run"`
	}
	require.Equal(t, http.StatusOK, admin(t, s, key, "POST", "/admin/jobs/health-check/run", &r))
	require.True(t, r.OK, "%v", r.Run)
}

type incidentList struct {
	Incidents []struct {
		ID       string `json:"id"`
		Severity string `json:"severity"`
		Status   string `json:"status"`
	} `json:"incidents"`
}

// storedCount is how many records the process has stored (its /metrics).
func storedCount(t *testing.T, s *server) float64 {
	return metricValue(t, s.addr, `apimeter_ingest_records_total{outcome="stored"}`)
}

// TestOperationsEndToEnd: normal traffic, an error burst through Kafka,
// one health check later an unhealthy status, one incident, one webhook
// (signature checked) and one e-mail, the events on api-usage-events; a
// restart in the middle repeats nothing; recovery resolves the incident
// and says so once. /metrics is parsed along the way.
func TestOperationsEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	env, brokers := kafkaEnv(t)
	started := time.Now().Add(-time.Second)
	const key = "e2e-admin-key-0123456789"
	hk := newHook(t, "webhook-secret")
	mail := newInbox(t)
	dir := t.TempDir()
	topic := strings.TrimPrefix(env[0], "KAFKA_TOPIC=")
	env = append(env, "APIMETER_DATA_DIR="+dir, "APIMETER_ADMIN_KEY="+key,
		"ALERT_WEBHOOK_URL="+hk.srv.URL+"/hook", "ALERT_WEBHOOK_SECRET=webhook-secret",
		"SMTP_URL=smtp://"+mail.addr, "OPS_ALERT_EMAIL=ops@example.com", "APIMETER_SMTP_FROM=apimeter@example.com",
		"API_HEALTH_CHECK_INTERVAL=3600", "APIMETER_INGEST_BATCH_WAIT_MS=100", "API_USAGE_DEBUG=true")
	s := startServe(t, bin, env)
	s.waitReady(t, 90*time.Second)

	// Event times sit in the five complete minutes the health check reads.
	from, to := time.Now().Add(-210*time.Second), time.Now().Add(-120*time.Second)
	seq := 0
	traffic(t, brokers, topic, 2000, 0, from, to, &seq)
	waitUntil(t, 60*time.Second, "normal traffic stored", func() bool { return storedCount(t, s) >= 2000 })
	healthCheck(t, s, key)
	var list incidentList
	require.Equal(t, http.StatusOK, admin(t, s, key, "GET", "/admin/incidents?status=open", &list))
	require.Empty(t, list.Incidents)

	// An error burst: 1,500 of 3,500 requests fail (43 %).
	traffic(t, brokers, topic, 1500, 1500, from, to, &seq)
	waitUntil(t, 60*time.Second, "the burst stored", func() bool { return storedCount(t, s) >= 3500 })
	healthCheck(t, s, key)
	_, health := getJSON(t, "http://"+s.addr+"/api/api-usage/health")
	require.Equal(t, "unhealthy", health["status"])
	require.Equal(t, http.StatusOK, admin(t, s, key, "GET", "/admin/incidents?status=open", &list))
	require.Len(t, list.Incidents, 1, "one outage, one incident (the failing endpoint is in its timeline)")
	require.Equal(t, "critical", list.Incidents[0].Severity)
	waitUntil(t, 30*time.Second, "a webhook and a mail", func() bool { return len(hk.bodies()) == 1 && mail.count() == 1 })
	require.Equal(t, "incident.created", hk.bodies()[0].Type)
	require.Equal(t, "incident:"+list.Incidents[0].ID+":created", hk.bodies()[0].IdempotencyKey)
	require.Contains(t, string(mail.mails[0]), "Incident opened")

	// A restart in the middle of the incident.
	s.stop(t)
	s = startServe(t, bin, env)
	s.waitReady(t, 90*time.Second)
	healthCheck(t, s, key)
	require.Equal(t, http.StatusOK, admin(t, s, key, "GET", "/admin/incidents?status=open", &list))
	require.Len(t, list.Incidents, 1, "no second incident")
	// The restarted process resumes undelivered notifications at start
	// and has run a check: anything repeated would have gone out by now.
	time.Sleep(2 * time.Second)
	require.Len(t, hk.bodies(), 1, "no webhook repeated")
	require.Equal(t, 1, mail.count(), "no mail repeated")

	// Recovery: healthy traffic dilutes the burst under the margin.
	traffic(t, brokers, topic, 40000, 0, from, to, &seq)
	sendRaw(t, brokers, topic, `{"userId":"u1","method":"GET","statusCode":200,"responseTimeMs":5}`) // no endpoint: a dead letter
	waitUntil(t, 90*time.Second, "recovery traffic stored", func() bool { return storedCount(t, s) >= 40000 })
	healthCheck(t, s, key)
	require.Equal(t, http.StatusOK, admin(t, s, key, "GET", "/admin/incidents?status=open", &list))
	require.Empty(t, list.Incidents)
	waitUntil(t, 30*time.Second, "the resolution notice", func() bool { return len(hk.bodies()) == 2 && mail.count() == 2 })
	require.Equal(t, "incident.resolved", hk.bodies()[1].Type)
	healthCheck(t, s, key) // once more: nothing new

	// The events on api-usage-events.
	seen := map[string]int{}
	for _, m := range readEvents(t, brokers) {
		var e events.CloudEvent
		require.NoError(t, json.Unmarshal(m.Value, &e))
		require.Equal(t, "1.0", e.SpecVersion)
		if e.Time.After(started) { // a shared broker keeps other tests' events
			seen[e.Type]++
		}
	}
	require.Equal(t, 2, seen["api.health.unhealthy"], "the API and its endpoint")
	require.Equal(t, 1, seen["incident.created"])
	require.Equal(t, 1, seen["incident.resolved"])
	require.Equal(t, 2, seen["api.health.recovered"], "once per subject")
	require.Positive(t, seen["api.usage.tracked"])
	scrapeMetrics(t, s)
	s.stop(t)
	// Logging everything at debug level, the process never wrote a key.
	logged := s.out.String()
	require.Contains(t, logged, "usage tracked")
	require.Contains(t, logged, "usage batch stored")
	require.NotContains(t, logged, key)
	require.NotContains(t, logged, "Bearer")
	require.NotContains(t, logged, "webhook-secret")
}

// scrapeMetrics parses /metrics with the Prometheus text parser and
// checks the operations series are there and have moved.
func scrapeMetrics(t *testing.T, s *server) {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	sum := func(name string, match map[string]string) float64 {
		f := families[name]
		require.NotNil(t, f, "series %s", name)
		total := 0.0
	next:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return total
	}
	require.GreaterOrEqual(t, sum("apimeter_ingest_records_total", map[string]string{"outcome": "stored"}), 40000.0)
	require.Positive(t, sum("apimeter_ingest_batches_total", nil))
	require.Positive(t, sum("apimeter_ingest_load_seconds", nil))
	require.Contains(t, families, "apimeter_ingest_lag_records")
	require.Equal(t, 1.0, sum("apimeter_ingest_dead_letters_total", nil))
	require.GreaterOrEqual(t, sum("apimeter_job_runs_total", map[string]string{"job": "health-check", "outcome": "ok"}), 3.0)
	require.Positive(t, sum("apimeter_http_request_duration_seconds", map[string]string{"route": "/api/api-usage/admin/jobs/:name/run"}))
	require.Positive(t, sum("apimeter_notifications_total", map[string]string{"outcome": "delivered"}))
	require.Contains(t, families, "apimeter_limit_decisions_total")
	require.Equal(t, 0.0, sum("apimeter_health_status", map[string]string{"subject": "global"}))
	require.Positive(t, sum("apimeter_health_transitions_total", map[string]string{"status": "healthy"}))
}

// readEvents reads every partition of api-usage-events to its end.
func readEvents(t *testing.T, brokers []string) []kafka.Message {
	t.Helper()
	conn, err := kafka.Dial("tcp", brokers[0])
	require.NoError(t, err)
	parts, err := conn.ReadPartitions(events.Topic)
	conn.Close()
	require.NoError(t, err)
	var out []kafka.Message
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, p := range parts {
		lc, err := kafka.DialLeader(ctx, "tcp", brokers[0], events.Topic, p.ID)
		require.NoError(t, err)
		first, last, err := lc.ReadOffsets()
		lc.Close()
		require.NoError(t, err)
		if last <= first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: events.Topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		require.NoError(t, r.SetOffset(first))
		for {
			m, err := r.ReadMessage(ctx)
			require.NoError(t, err)
			out = append(out, m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out
}

// waitUntil polls cond until it holds or within passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestJobsFollowTheContract: the schedules of PRODUCT.md, from the
// configuration's defaults and overrides.
func TestJobsFollowTheContract(t *testing.T) {
	schedules := func(env map[string]string) map[string]string {
		cfg, err := config.Parse(func(k string) string { return env[k] })
		require.NoError(t, err)
		out := map[string]string{}
		for _, j := range jobs(cfg, nil, schema.Single, nil, nil, prometheus.NewRegistry(), nil) {
			out[j.Name] = j.Schedule.String()
		}
		return out
	}
	require.Equal(t, map[string]string{
		"health-check":   "every 5m0s",
		"alert-check":    "every 30m0s",
		"sla-check":      "every 5m0s",
		"rollup-verify":  "every 1h0m0s",
		"quota-rollover": "daily at 00:00 UTC",
		"data-cleanup":   "daily at 03:00 UTC",
	}, schedules(nil))
	got := schedules(map[string]string{"API_HEALTH_CHECK_INTERVAL": "60", "API_USAGE_AGGREGATION_INTERVAL": "900"})
	require.Equal(t, "every 1m0s", got["health-check"])
	require.Equal(t, "every 15m0s", got["rollup-verify"])
}
