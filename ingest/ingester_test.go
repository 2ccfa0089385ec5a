package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// The Kafka tests run against KAFKA_BROKERS when it is set (CI starts a
// real Apache Kafka), and otherwise against the embedded broker started in
// the test process. Each test uses topics and a group of its own.

func testBrokers(t testing.TB) []string {
	t.Helper()
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	br, err := StartBroker(BrokerConfig{Addr: "127.0.0.1:0", Partitions: 4})
	require.NoError(t, err)
	t.Cleanup(br.Close)
	return []string{br.Addr()}
}

func randomName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func testConfig(brokers []string) Config {
	return Config{
		Brokers: brokers, Topic: randomName("usage-"), Group: randomName("group-"), Partitions: 4,
		MaxBatchRecords: 5000, MaxBatchWait: 200 * time.Millisecond,
		RetryMin: 20 * time.Millisecond, RetryMax: 500 * time.Millisecond,
	}
}

func quietLog() *slog.Logger {
	if os.Getenv("APIMETER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func migratedStore(t testing.TB) store.Driver {
	t.Helper()
	db := storetest.Open(t)
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	return db
}

// message is what a test produces: the key decides the partition, unless
// pinned names one.
type message struct {
	key, value []byte
	pinned     bool
	partition  int
}

func produce(t testing.TB, cfg Config, msgs []message) {
	t.Helper()
	cfg.setDefaults()
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}
	// A broker that just (re)started may refuse for a moment; the
	// producing side is not what these tests are about.
	retry := func(what string, fn func() error) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := fn()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %.500v", what, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	retry("create topics", func() error { return ensureTopics(context.Background(), client, cfg) })
	byKey := &kafka.Hash{}
	balancer := kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
		if m.Partition >= 0 {
			return m.Partition
		}
		return byKey.Balance(m, partitions...)
	})
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Balancer: balancer,
		BatchSize: 5000, BatchBytes: 1 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll,
	}
	defer w.Close()
	const chunk = 20_000
	for start := 0; start < len(msgs); start += chunk {
		batch := make([]kafka.Message, 0, chunk)
		for _, m := range msgs[start:min(start+chunk, len(msgs))] {
			km := kafka.Message{Key: m.key, Value: m.value, Partition: -1}
			if m.pinned {
				km.Partition = m.partition
			}
			batch = append(batch, km)
		}
		retry("produce", func() error { return w.WriteMessages(context.Background(), batch...) })
	}
}

func queryUint(t testing.TB, db store.Driver, q string, params ...store.Param) uint64 {
	t.Helper()
	rows, err := db.Query(context.Background(), q, params...)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next(), q)
	var n uint64
	require.NoError(t, rows.Scan(&n))
	return n
}

func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// workload is generated traffic with its expected outcome.
type workload struct {
	msgs     []message
	apiCalls uint64 // distinct good API-call records
	features uint64
	bad      map[Reason]int
}

// newWorkload makes n good records (some of them sent twice, as producer
// retries do) and the rejection catalogue, interleaved.
func newWorkload(n int, now time.Time) *workload {
	g := NewGenerator(GeneratorConfig{Count: n, FeatureShare: 0.05, Start: now.Add(-2 * time.Hour), Span: 2 * time.Hour, Users: 200})
	w := &workload{bad: map[Reason]int{}}
	var r Record
	i := 0
	for g.Next(&r) {
		v := r.AppendJSON(nil)
		if i%100 == 7 { // unknown fields are ignored
			v = append(v[:len(v)-1], `,"client":{"sdk":"x","tags":[1,"a",null]},"retry":true}`...)
		}
		w.msgs = append(w.msgs, message{key: []byte(r.ID), value: v})
		if i%40 == 0 { // a producer retry: same id, same key, same partition
			w.msgs = append(w.msgs, message{key: []byte(r.ID), value: v})
		}
		if r.Type == TypeFeature {
			w.features++
		} else {
			w.apiCalls++
		}
		if i%500 == 0 {
			for _, b := range badRecords(now) {
				w.msgs = append(w.msgs, message{key: []byte(fmt.Sprint(i)), value: []byte(b.value)})
				w.bad[b.reason]++
			}
		}
		i++
	}
	return w
}

type badRecord struct {
	value  string
	reason Reason
}

func badRecords(now time.Time) []badRecord {
	ok := `"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5`
	return []badRecord{
		{`{"userId":"u",`, ReasonMalformedJSON},
		{`{"userId":42,"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonWrongType},
		{`{"endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":5}`, ReasonMissingField},
		{`{` + ok + `,"pad":"` + strings.Repeat("x", MaxRecordBytes) + `"}`, ReasonTooLarge},
		{`{` + ok + `,"timestamp":"` + now.Add(24*time.Hour).UTC().Format(time.RFC3339) + `"}`, ReasonFutureTimestamp},
		{`{` + ok + `,"timestamp":"2020-01-01T00:00:00Z"}`, ReasonExpiredTimestamp},
		{"{\"userId\":\"\xff\",\"endpoint\":\"/x\"}", ReasonInvalidUTF8},
		{`{"userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":-3}`, ReasonInvalidValue},
		{`{"userId":"u","endpoint":"/x","method":"GET","statusCode":999,"responseTimeMs":3}`, ReasonInvalidValue},
	}
}

func (w *workload) badCount() int {
	n := 0
	for _, c := range w.bad {
		n += c
	}
	return n
}

// checkStoredOnce asserts every good record is stored once, in the raw
// tables and in the rollups.
func (w *workload) checkStoredOnce(t testing.TB, db store.Driver, topic string) {
	t.Helper()
	p := store.Named("topic", topic)
	require.Equal(t, w.apiCalls, queryUint(t, db, "SELECT count() FROM usage_events WHERE kafka_topic = {topic:String}", p))
	require.Equal(t, w.apiCalls, queryUint(t, db, "SELECT uniqExact(id) FROM usage_events WHERE kafka_topic = {topic:String}", p))
	require.Equal(t, w.features, queryUint(t, db, "SELECT count() FROM feature_usage WHERE kafka_topic = {topic:String}", p))
	for _, rollup := range []string{"usage_hourly", "usage_daily", "endpoint_hourly", "endpoint_daily"} {
		require.Equal(t, w.apiCalls, queryUint(t, db, "SELECT sum(requests) FROM "+rollup), rollup)
	}
	require.Equal(t, w.features, queryUint(t, db, "SELECT sum(events) FROM feature_usage_daily"))
}

// ledgerMessages is how many messages the loaded batches cover.
func ledgerMessages(t testing.TB, db store.Driver, topic string) uint64 {
	return queryUint(t, db, "SELECT sum(messages) FROM ingest_batches WHERE kafka_topic = {topic:String}", store.Named("topic", topic))
}

func runIngester(t testing.TB, cfg Config, db Store) (stop func()) {
	t.Helper()
	_, stop = startIngester(t, cfg, db, quietLog(), nil)
	return stop
}

// startIngester runs an ingester with a logger and a registry of the
// test's choosing.
func startIngester(t testing.TB, cfg Config, db Store, log *slog.Logger, reg prometheus.Registerer) (in *Ingester, stop func()) {
	t.Helper()
	in, err := New(cfg, db, log, reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(60 * time.Second):
			t.Fatal("ingester did not stop")
		}
		in.Close()
	}
	t.Cleanup(stop)
	return in, stop
}

func TestIngestStoresEveryRecordOnce(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	var mu sync.Mutex
	var loaded LoadedBatch // the sum of what OnLoaded told
	cfg.OnLoaded = func(b LoadedBatch) {
		mu.Lock()
		defer mu.Unlock()
		loaded.Records += b.Records
		loaded.Features += b.Features
		loaded.Rejected += b.Rejected
		loaded.Duplicates += b.Duplicates
	}
	now := time.Now()
	w := newWorkload(20_000, now)
	produce(t, cfg, w.msgs)

	stop := runIngester(t, cfg, db)
	waitFor(t, 2*time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) == uint64(len(w.msgs))
	})
	stop()
	mu.Lock()
	require.Equal(t, LoadedBatch{Records: int(w.apiCalls), Features: int(w.features), Rejected: w.badCount(),
		Duplicates: len(w.msgs) - int(w.apiCalls) - int(w.features) - w.badCount()}, loaded, "api.usage.tracked counts, summed over batches")
	mu.Unlock()

	w.checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(w.badCount()), queryUint(t, db, "SELECT count() FROM ingest_rejections WHERE kafka_topic = {topic:String}", store.Named("topic", cfg.Topic)))
	for reason, n := range w.bad {
		require.Equal(t, uint64(n), queryUint(t, db, "SELECT count() FROM ingest_rejections WHERE kafka_topic = {topic:String} AND reason = {reason:String}",
			store.Named("topic", cfg.Topic), store.Named("reason", string(reason))), reason)
	}
	retries := uint64(len(w.msgs)) - w.apiCalls - w.features - uint64(w.badCount())
	require.Equal(t, retries, queryUint(t, db, "SELECT sum(duplicates) FROM ingest_batches WHERE kafka_topic = {topic:String}", store.Named("topic", cfg.Topic)))

	// Every rejected record is in the dead-letter topic with its reason
	// and source.
	letters := readTopic(t, brokers, cfg.Topic+"-dlq", w.badCount())
	got := map[Reason]int{}
	for _, m := range letters {
		h := headers(m)
		got[Reason(h[HeaderReason])]++
		require.Equal(t, cfg.Topic, h[HeaderSourceTopic])
		require.NotEmpty(t, h[HeaderSourceOffset])
	}
	require.Equal(t, w.bad, got)

	// The group's commits say every partition is done.
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	offsets := &groupOffsets{client: client, group: cfg.Group, topic: cfg.Topic}
	var committed int64
	for p := 0; p < cfg.Partitions; p++ {
		off, meta, err := offsets.Fetch(context.Background(), p)
		require.NoError(t, err)
		it, ok := parseIntent(meta)
		require.True(t, ok, meta)
		require.False(t, it.pending, meta)
		committed += off
	}
	require.Equal(t, int64(len(w.msgs)), committed)
}

func readTopic(t testing.TB, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		require.NoError(t, err, "read %d of %d from %s", len(out), n, topic)
		out = append(out, m)
	}
	return out
}

func headers(m kafka.Message) map[string]string {
	h := map[string]string{}
	for _, x := range m.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

// TestIngestRoutesAndReportsCalls runs the ingester with Route and
// Decided: endpoints are stored as their templates, and the loaded
// batches hand the limiter exactly the calls no decision counted.
func TestIngestRoutesAndReportsCalls(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	templates := map[string]string{"/users/42": "/users/:id", "/users/43": "/users/:id", "/users/44": "/users/:id", "/orders/7/items": "/orders/:id/items"}
	cfg.Route = func(endpoint string) string {
		if tpl, ok := templates[endpoint]; ok {
			return tpl
		}
		return endpoint
	}
	cfg.Decided = func(tenant, user, id string) bool { return tenant == "t1" && user == "u1" && id == "dec-ok" }
	var mu sync.Mutex
	calls := map[Call]Call{} // by key, Count and Cost summed over batches
	cfg.OnLoaded = func(b LoadedBatch) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range b.Calls {
			k := Call{Tenant: c.Tenant, User: c.User, Method: c.Method, Endpoint: c.Endpoint, Second: c.Second}
			sum := calls[k]
			sum.Count += c.Count
			sum.Cost += c.Cost
			calls[k] = sum
		}
	}
	sec := time.Now().Add(-time.Minute).Unix()
	var msgs []message
	rec := func(id, user, endpoint string, status, cost int, extra string) {
		v := fmt.Sprintf(`{"id":%q,"tenantId":"t1","userId":%q,"endpoint":%q,"method":"GET","statusCode":%d,"responseTimeMs":2,"cost":%d,"timestamp":%d%s}`,
			id, user, endpoint, status, cost, sec*1000+int64(len(msgs))*10, extra)
		msgs = append(msgs, message{key: []byte(id), value: []byte(v)})
	}
	rec("r1", "u1", "/users/42", 200, 1, "")
	rec("r2", "u1", "/users/42", 404, 1, "")
	rec("r3", "u1", "/users/42", 200, 1, `,"decisionId":"dec-lost"`)
	rec("r4", "u1", "/users/43", 200, 2, "")
	rec("r5", "u1", "/users/43", 500, 3, "")
	rec("r6", "u1", "/orders/7/items", 200, 4, `,"decisionId":"dec-ok"`) // counted by its decision
	rec("r7", "u2", "/health", 200, 1, "")
	rec("r8", "u1", "/users/44", 429, 1, "") // refused
	msgs = append(msgs, message{key: []byte("f1"), value: []byte(`{"id":"f1","type":"feature","tenantId":"t1","userId":"u1","feature":"export","quantity":1,"endpoint":"/users/45"}`)})
	produce(t, cfg, msgs)

	stop := runIngester(t, cfg, db)
	waitFor(t, 2*time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) == uint64(len(msgs))
	})
	stop()

	rows, err := db.Query(context.Background(), `SELECT endpoint, count() FROM usage_events WHERE kafka_topic = {topic:String}
		GROUP BY endpoint ORDER BY endpoint`, store.Named("topic", cfg.Topic))
	require.NoError(t, err)
	stored := map[string]uint64{}
	for rows.Next() {
		var ep string
		var n uint64
		require.NoError(t, rows.Scan(&ep, &n))
		stored[ep] = n
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.Equal(t, map[string]uint64{"/users/:id": 6, "/orders/:id/items": 1, "/health": 1}, stored)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[Call]Call{
		{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/users/:id", Second: sec}: {Count: 5, Cost: 1 + 1 + 1 + 2 + 3}, // r1-r5
		{Tenant: "t1", User: "u2", Method: "GET", Endpoint: "/health", Second: sec}:    {Count: 1, Cost: 1},                 // r7
	}, calls)
}
