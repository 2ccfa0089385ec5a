package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

// The Free plan of the contract: 1,000 requests a month, 100 an hour;
// warnings at 80, 90 and 95 %.
const (
	freeMonthly = 1000
	freeHourly  = 100
)

// limitsServer is a serve process with an admin key, for the limits
// tests.
type limitsServer struct {
	*server
	key     string
	brokers []string
	topic   string
}

func startLimitsServer(t *testing.T) *limitsServer {
	t.Helper()
	bin := buildBinary(t)
	kenv, brokers := kafkaEnv(t)
	const key = "test-admin-key-0123456789"
	s := startServe(t, bin, append([]string{"APIMETER_DATA_DIR=" + t.TempDir(), "CLICKHOUSE_URL=", "APIMETER_ADMIN_KEY=" + key,
		"APIMETER_INGEST_BATCH_WAIT_MS=100"}, kenv...))
	s.waitReady(t, 60*time.Second)
	topic := ""
	for _, e := range kenv {
		if v, ok := strings.CutPrefix(e, "KAFKA_TOPIC="); ok {
			topic = v
		}
	}
	return &limitsServer{server: s, key: key, brokers: brokers, topic: topic}
}

// do sends a request with the admin key (or key) and decodes the JSON
// answer.
func (s *limitsServer) do(t *testing.T, method, path, key string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	if key == "" {
		key = s.key
	}
	status, header, raw := sendHeaders(t, s.server, key, method, path, body)
	var out map[string]any
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
	} else if len(raw) > 0 && raw[0] == '[' {
		var arr []map[string]any
		require.NoError(t, json.Unmarshal(raw, &arr), "%s", raw)
		out = map[string]any{"items": arr}
	}
	return status, header, out
}

// usageOf reads a user's quota used and hourly remaining.
func (s *limitsServer) usageOf(t *testing.T, tenant, user string) (quotaUsed, hourlyUsed float64) {
	t.Helper()
	code, _, q := s.do(t, "GET", "/quota?tenantId="+tenant+"&userId="+user, "", nil)
	require.Equal(t, http.StatusOK, code, "%v", q)
	code, _, rl := s.do(t, "GET", "/rate-limit?tenantId="+tenant+"&userId="+user, "", nil)
	require.Equal(t, http.StatusOK, code, "%v", rl)
	return q["items"].([]map[string]any)[0]["used"].(float64), rl["hourly"].(map[string]any)["used"].(float64)
}

func usageRecord(id, tenant, user, decision string, at time.Time) []byte {
	r := map[string]any{"id": id, "tenantId": tenant, "userId": user, "endpoint": "/api/things", "method": "GET",
		"statusCode": 200, "responseTimeMs": 3, "timestamp": at.UTC().Format(time.RFC3339Nano)}
	if decision != "" {
		r["decisionId"] = decision
	}
	b, _ := json.Marshal(r)
	return b
}

// Records from any Kafka producer count toward limits: 850 records of a
// Free user (1,000 a month, 100 an hour) send one api.quota.warning at
// 80 % on api-usage-events, /quota says 850, the hourly limit is spent
// and a decision for that user is refused.
func TestQuotaNoticeFromKafkaRecords(t *testing.T) {
	s := startLimitsServer(t)
	// api-usage-events outlives a test on a shared broker: a user of its own.
	tenant, user := "acme", fmt.Sprintf("kafka-free-user-%d", time.Now().UnixNano())
	now := time.Now()
	var msgs []kafka.Message
	for i := range 850 {
		msgs = append(msgs, kafka.Message{Value: usageRecord(fmt.Sprintf("k-%d", i), tenant, user, "", now.Add(-time.Duration(i)*time.Second))})
	}
	produceAll(t, s.brokers, s.topic, msgs)
	sent := time.Now()

	// Fresh within 5 s of being stored.
	require.Eventually(t, func() bool {
		q, h := s.usageOf(t, tenant, user)
		return q == 850 && h == 850
	}, 60*time.Second, 100*time.Millisecond, "/quota and /rate-limit count the stored records\n%s", s.out)
	q, h := s.usageOf(t, tenant, user)
	require.Equal(t, 850.0, q)
	require.Equal(t, 850.0, h)
	code, hdr, body := s.do(t, "POST", "/limits/check", "", map[string]any{"tenantId": tenant, "userId": user, "endpoint": "/api/things", "method": "GET"})
	require.Equal(t, http.StatusTooManyRequests, code, "%v", body)
	require.Equal(t, "rate_limit_exceeded", body["error"].(map[string]any)["code"])
	require.NotEmpty(t, hdr.Get("Retry-After"))
	require.Equal(t, "150", hdr.Get("X-Quota-Remaining"))

	// One notice, at 80 %, within 60 s of the crossing record being
	// stored; then a few seconds more for a second one that must not come.
	warningsOf := func() []map[string]any {
		var out []map[string]any
		for _, m := range readEvents(t, s.brokers) {
			var e map[string]any
			require.NoError(t, json.Unmarshal(m.Value, &e))
			if e["userid"] != user {
				continue
			}
			require.NotEqual(t, "api.quota.exceeded", e["type"])
			if e["type"] == "api.quota.warning" {
				out = append(out, e)
			}
		}
		return out
	}
	waitUntil(t, 60*time.Second, "api.quota.warning on api-usage-events", func() bool { return len(warningsOf()) > 0 })
	time.Sleep(3 * time.Second)
	warnings := warningsOf()
	require.Len(t, warnings, 1, "one warning: the highest threshold crossed")
	data := warnings[0]["data"].(map[string]any)
	require.Equal(t, 80.0, data["threshold"])
	require.Equal(t, float64(freeMonthly), data["limit"])
	require.Equal(t, "starter", data["upgrade"].(map[string]any)["plan"])
	require.Less(t, time.Since(sent), 90*time.Second)
}

// A call decided by apimeter and then reported with its decision id
// counts once; a reported call without one counts once too.
func TestDecidedAndReportedCallsCountOnce(t *testing.T) {
	s := startLimitsServer(t)
	const tenant, user = "acme", "both-ways-user"
	var records [][]byte
	for i := range 30 {
		code, hdr, body := s.do(t, "POST", "/limits/check", "", map[string]any{"tenantId": tenant, "userId": user, "endpoint": "/api/things", "method": "GET"})
		require.Equal(t, http.StatusOK, code, "%v", body)
		id := body["decisionId"].(string)
		require.Equal(t, id, hdr.Get("X-Apimeter-Decision"))
		records = append(records, usageRecord(fmt.Sprintf("decided-%d", i), tenant, user, id, time.Now()))
	}
	for i := range 20 {
		records = append(records, usageRecord(fmt.Sprintf("reported-%d", i), tenant, user, "", time.Now()))
	}
	// A made-up id and another user's id count: only a decision for this
	// user was counted.
	_, _, other := s.do(t, "POST", "/limits/check", "", map[string]any{"tenantId": tenant, "userId": "someone-else", "endpoint": "/x", "method": "GET"})
	records = append(records,
		usageRecord("forged", tenant, user, "d_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", time.Now()),
		usageRecord("foreign", tenant, user, other["decisionId"].(string), time.Now()))
	// Half through POST /events, half through Kafka.
	var batch []json.RawMessage
	for _, r := range records[:26] {
		batch = append(batch, r)
	}
	code, _, body := s.do(t, "POST", "/events", "", batch)
	require.Equal(t, http.StatusAccepted, code, "%v", body)
	var msgs []kafka.Message
	for _, r := range records[26:] {
		msgs = append(msgs, kafka.Message{Value: r})
	}
	produceAll(t, s.brokers, s.topic, msgs)

	// 30 decided + 20 reported + 2 with ids that do not name this user's
	// decisions = 52, not 82.
	want := float64(30 + 20 + 2)
	stored := `apimeter_ingest_records_total{outcome="stored"}`
	require.Eventually(t, func() bool { return metricValue(t, s.addr, stored) >= float64(len(records)) }, 60*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool {
		q, h := s.usageOf(t, tenant, user)
		return q == want && h == want
	}, 10*time.Second, 100*time.Millisecond, "counted once each")
	// And stays there: nothing counts twice later (the quota's refresh
	// from the records lifts it to at most the records' count).
	time.Sleep(2 * time.Second)
	q, h := s.usageOf(t, tenant, user)
	require.Equal(t, want, q)
	require.Equal(t, want, h)
}
