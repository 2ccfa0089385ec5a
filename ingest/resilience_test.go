package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
)

// restartableBroker is a broker a test can restart with its data: a
// private Apache Kafka started by deploy/kafka/kafka.sh when
// APIMETER_KAFKA_SCRIPT names it (CI), else the embedded broker on a
// data directory.
type restartableBroker struct {
	t       *testing.T
	addr    string
	dir     string
	script  string
	env     []string
	broker  *Broker
	stopped bool
}

func freePort(t *testing.T) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		// kafka.sh also takes port+1 for its controller.
		if ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1)); err == nil {
			ln2.Close()
			return port
		}
	}
}

func newRestartableBroker(t *testing.T) *restartableBroker {
	b := &restartableBroker{t: t, dir: t.TempDir(), script: os.Getenv("APIMETER_KAFKA_SCRIPT")}
	port := freePort(t)
	b.addr = fmt.Sprintf("127.0.0.1:%d", port)
	b.env = append(os.Environ(), fmt.Sprintf("KAFKA_PORT=%d", port), "KAFKA_DIR="+b.dir)
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *restartableBroker) start() {
	b.t.Helper()
	if b.script != "" {
		cmd := exec.Command(b.script, "start")
		cmd.Env = b.env
		out, err := cmd.CombinedOutput()
		require.NoError(b.t, err, "%s", out)
	} else {
		var err error
		b.broker, err = StartBroker(BrokerConfig{Addr: b.addr, DataDir: b.dir, Partitions: 4})
		require.NoError(b.t, err)
	}
	b.stopped = false
}

func (b *restartableBroker) stop() {
	if b.stopped {
		return
	}
	b.stopped = true
	if b.script != "" {
		cmd := exec.Command(b.script, "stop")
		cmd.Env = b.env
		cmd.Run()
		return
	}
	b.broker.Close()
}

func TestBrokerRestartWhileIngesting(t *testing.T) {
	b := newRestartableBroker(t)
	db := migratedStore(t)
	cfg := testConfig([]string{b.addr})
	w := newWorkload(60_000, time.Now())
	half := len(w.msgs) / 2
	produce(t, cfg, w.msgs[:half])

	runIngester(t, cfg, db)
	waitFor(t, time.Minute, "the first batches", func() bool { return ledgerMessages(t, db, cfg.Topic) > 0 })

	b.stop()
	time.Sleep(2 * time.Second) // the ingester notices and retries
	b.start()
	produce(t, cfg, w.msgs[half:])

	waitFor(t, 3*time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs))
	})
	w.checkStoredOnce(t, db, cfg.Topic)
}

func TestRebalanceBetweenIngesters(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	cfg.MaxBatchRecords = 2000
	w := newWorkload(100_000, time.Now())
	produce(t, cfg, w.msgs)

	// A second member joins mid-stream, then the first one leaves.
	slow := &slowStore{Store: db, delay: 20 * time.Millisecond}
	stopA := runIngester(t, cfg, slow)
	waitFor(t, time.Minute, "member A loads", func() bool { return ledgerMessages(t, db, cfg.Topic) > 5000 })
	runIngester(t, cfg, slow)
	waitFor(t, time.Minute, "both members load", func() bool { return ledgerMessages(t, db, cfg.Topic) > 30000 })
	stopA()
	slow.delay = 0

	waitFor(t, 3*time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs))
	})
	w.checkStoredOnce(t, db, cfg.Topic)
	// Batches never overlap: each offset is covered by one loaded range.
	require.Equal(t, uint64(len(w.msgs)), ledgerMessages(t, db, cfg.Topic))
}

// slowStore delays inserts, so rebalances land mid-batch.
type slowStore struct {
	Store
	delay time.Duration
}

func (s *slowStore) Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error {
	time.Sleep(s.delay)
	return s.Store.Insert(ctx, table, b, opts)
}

// failingStore refuses inserts while down is set.
type failingStore struct {
	Store
	down     atomic.Bool
	refused  atomic.Int64
	accepted atomic.Int64
}

func (s *failingStore) Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error {
	if s.down.Load() {
		s.refused.Add(1)
		return errors.New("store unavailable")
	}
	s.accepted.Add(1)
	return s.Store.Insert(ctx, table, b, opts)
}

// countingSource counts the messages the ingester takes from Kafka.
type countingSource struct {
	messageSource
	n *atomic.Int64
}

func (c countingSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	m, err := c.messageSource.FetchMessage(ctx)
	if err == nil {
		c.n.Add(1)
	}
	return m, err
}

func TestStoreOutageBackpressure(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	cfg.MaxBatchRecords = 1000
	w := newWorkload(40_000, time.Now())
	produce(t, cfg, w.msgs)

	fs := &failingStore{Store: db}
	fs.down.Store(true)
	var fetched atomic.Int64
	in, err := New(cfg, fs, quietLog(), nil)
	require.NoError(t, err)
	real := in.newReader
	in.newReader = func(p int, off int64) messageSource { return countingSource{real(p, off), &fetched} }
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); in.Run(ctx) }()
	defer func() { cancel(); wg.Wait(); in.Close() }()

	waitFor(t, time.Minute, "loads to be refused", func() bool { return fs.refused.Load() > 10 })
	time.Sleep(time.Second)
	// While the store is down each partition holds at most three batches:
	// one being loaded, one waiting, one being filled.
	require.LessOrEqual(t, fetched.Load(), int64(3*cfg.MaxBatchRecords*cfg.Partitions))
	// Nothing is committed past what was stored.
	offsets := &groupOffsets{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, group: cfg.Group, topic: cfg.Topic}
	for p := 0; p < cfg.Partitions; p++ {
		_, meta, err := offsets.Fetch(context.Background(), p)
		require.NoError(t, err)
		if it, ok := parseIntent(meta); ok {
			require.True(t, it.pending, "partition %d: %s", p, meta)
		}
	}
	require.Zero(t, ledgerMessages(t, db, cfg.Topic))

	fs.down.Store(false)
	waitFor(t, 2*time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs))
	})
	w.checkStoredOnce(t, db, cfg.Topic)
	require.Positive(t, in.Stats().LoadRetries)
}

// TestReplayAfterCrashMidBatch loads a batch whose intent was committed
// but whose end was not — the state a crash leaves — and checks the next
// owner replays exactly that range and counts each record once.
func TestReplayAfterCrashMidBatch(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	cfg.Partitions = 1
	cfg.MaxBatchRecords = 700
	w := newWorkload(3000, time.Now())
	produce(t, cfg, w.msgs)

	// A first owner that crashes after its insert, before the commit:
	// it wrote the intent and the rows, nothing else.
	runUntilFirstInsert(t, cfg, db)

	offsets := &groupOffsets{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, group: cfg.Group, topic: cfg.Topic}
	_, meta, err := offsets.Fetch(context.Background(), 0)
	require.NoError(t, err)
	it, ok := parseIntent(meta)
	require.True(t, ok && it.pending, "the crash left a pending intent: %q", meta)

	runIngester(t, cfg, db)
	waitFor(t, time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs))
	})
	w.checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(1), queryUint(t, db, "SELECT count() FROM ingest_batches WHERE kafka_topic = {t:String} AND replay = 1", store.Named("t", cfg.Topic)))
	retries := uint64(len(w.msgs)) - w.apiCalls - w.features - uint64(w.badCount())
	require.Equal(t, retries, queryUint(t, db, "SELECT sum(duplicates) FROM ingest_batches WHERE kafka_topic = {t:String}", store.Named("t", cfg.Topic)),
		"the replayed range kept its stored records and dropped only retries")
}

// crashAfterInsert inserts raw records once, then fails everything, as a
// process killed right after its insert would.
// runUntilFirstInsert runs an ingester that "crashes" once its first
// insert of usage_events is done: it wrote the intent and the rows,
// nothing else.
func runUntilFirstInsert(t *testing.T, cfg Config, db Store) {
	t.Helper()
	crash := &crashAfterInsert{Store: db}
	in, err := New(cfg, crash, quietLog(), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	waitFor(t, time.Minute, "the first insert", func() bool { return crash.crashed.Load() })
	cancel()
	<-done
	in.Close()
}

type crashAfterInsert struct {
	Store
	crashed atomic.Bool
}

func (c *crashAfterInsert) Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error {
	if c.crashed.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	if strings.HasPrefix(table, "usage_events") {
		defer c.crashed.Store(true)
	}
	return c.Store.Insert(ctx, table, b, opts)
}

// TestLostGroupOffsetsResumeFromLedger deletes the group's commits, as
// Kafka does after a group has been empty past its offset retention, and
// checks a new ingester resumes after the stored ranges instead of
// loading the topic again.
func TestLostGroupOffsetsResumeFromLedger(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	w := newWorkload(10_000, time.Now())
	produce(t, cfg, w.msgs)
	stop := runIngester(t, cfg, db)
	waitFor(t, time.Minute, "every message loaded", func() bool { return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs)) })
	stop()

	cfg.Group = randomName("new-group-") // a group with no commits
	cfg.MaxBatchRecords = 1000           // other ranges, so reloading would not dedup
	runIngester(t, cfg, db)
	more := newWorkload(2000, time.Now())
	for i := range more.msgs { // other ids than the first workload's
		more.msgs[i].value = []byte(strings.Replace(string(more.msgs[i].value), `"id":"`, `"id":"more-`, 1))
	}
	produce(t, cfg, more.msgs)
	waitFor(t, time.Minute, "the new records loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs)+len(more.msgs))
	})
	time.Sleep(time.Second) // a reload of old ranges would show by now
	both := &workload{apiCalls: w.apiCalls + more.apiCalls, features: w.features + more.features}
	both.checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(len(w.msgs)+len(more.msgs)), ledgerMessages(t, db, cfg.Topic))
}

func TestEmbeddedBrokerKeepsTopicsWithRetention(t *testing.T) {
	dir := t.TempDir()
	br, err := StartBroker(BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir, Topics: []string{"a", "a-dlq"}, Partitions: 3, Retention: time.Hour})
	require.NoError(t, err)
	client := &kafka.Client{Addr: kafka.TCP(br.Addr())}
	resp, err := client.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: "a", ConfigNames: []string{"retention.ms"}}},
	})
	require.NoError(t, err)
	require.Equal(t, "3600000", resp.Resources[0].ConfigEntries[0].ConfigValue)
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{"a"}})
	require.NoError(t, err)
	require.Len(t, md.Topics[0].Partitions, 3)
	br.Close()

	// Restarted on the same directory, it still has the topic.
	br, err = StartBroker(BrokerConfig{Addr: "127.0.0.1:0", DataDir: dir, Topics: []string{"a", "a-dlq"}, Partitions: 3, Retention: time.Hour})
	require.NoError(t, err)
	defer br.Close()
	md, err = (&kafka.Client{Addr: kafka.TCP(br.Addr())}).Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{"a"}})
	require.NoError(t, err)
	require.Len(t, md.Topics[0].Partitions, 3)
}

func TestLoadGenSendsValidRecords(t *testing.T) {
	brokers := testBrokers(t)
	topic := randomName("loadgen-")
	p, err := RunLoadGen(context.Background(), LoadGenConfig{Brokers: brokers, Topic: topic, Rate: 50_000, Count: 5000, Endpoints: 10, Seed: 3}, nil)
	require.NoError(t, err)
	require.Equal(t, uint64(5000), p.Sent)
	require.Zero(t, p.Errors)
	msgs := readTopicAll(t, brokers, topic, 5000)
	dec := NewDecoder(Policy{})
	endpoints := map[string]int{}
	var r Record
	for _, m := range msgs {
		require.Nil(t, dec.Decode(m.Value, Source{Topic: topic, TimestampMs: m.Time.UnixMilli()}, &r), "%s", m.Value)
		require.InDelta(t, m.Time.UnixMilli(), r.EventTimeMs, 60_000, "timestamped as sent")
		endpoints[r.Endpoint]++
	}
	require.Greater(t, len(endpoints), 3)
}

// readTopicAll reads n messages from every partition of topic.
func readTopicAll(t *testing.T, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	md, err := client.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var out []kafka.Message
	var wg sync.WaitGroup
	for _, p := range md.Topics[0].Partitions {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 50 * time.Millisecond})
			defer r.Close()
			for {
				mu.Lock()
				done := len(out) >= n
				mu.Unlock()
				if done {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				m, err := r.ReadMessage(rctx)
				rcancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				mu.Lock()
				out = append(out, m)
				mu.Unlock()
			}
		}(p.ID)
	}
	wg.Wait()
	require.Len(t, out, n)
	return out
}

// recordingStore notes the options of every insert, per table.
type recordingStore struct {
	Store
	mu   sync.Mutex
	opts map[string][]store.InsertOptions
}

func (r *recordingStore) Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error {
	r.mu.Lock()
	r.opts[table] = append(r.opts[table], opts)
	r.mu.Unlock()
	return r.Store.Insert(ctx, table, b, opts)
}

// TestInsertsCarryTheLayoutsSettings: every insert the exactly-once
// argument covers — records, feature uses, rejections and the ledger —
// carries its token and the layout's insert settings (on a cluster:
// foreground forwarding and a quorum; the embedded engine takes the
// settings on its plain tables), and a single server's none.
func TestInsertsCarryTheLayoutsSettings(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	for _, layout := range []schema.Layout{{Cluster: "apimeter"}, schema.Single} {
		cfg := testConfig(brokers)
		cfg.InsertSettings = layout.InsertSettings()
		rec := &recordingStore{Store: db, opts: map[string][]store.InsertOptions{}}
		w := newWorkload(2000, time.Now())
		produce(t, cfg, w.msgs)
		stop := runIngester(t, cfg, rec)
		waitFor(t, time.Minute, "every message loaded", func() bool { return ledgerMessages(t, db, cfg.Topic) >= uint64(len(w.msgs)) })
		stop()
		w.checkStoredOnce(t, db, cfg.Topic)
		// The rollups are not kept per topic: empty them for the next run.
		for _, table := range []string{"usage_hourly", "usage_daily", "endpoint_hourly", "endpoint_daily", "feature_usage_daily"} {
			require.NoError(t, db.Exec(context.Background(), "TRUNCATE TABLE "+table))
		}

		rec.mu.Lock()
		for _, table := range []string{"usage_events", "feature_usage", "ingest_rejections", "ingest_batches"} {
			require.NotEmpty(t, rec.opts[table], "%s (cluster %q)", table, layout.Cluster)
			for _, o := range rec.opts[table] {
				require.NotEmpty(t, o.DedupToken, table)
				require.Equal(t, layout.InsertSettings(), o.Settings, "%s (cluster %q)", table, layout.Cluster)
			}
		}
		rec.mu.Unlock()
	}
	require.NotEmpty(t, schema.Layout{Cluster: "apimeter"}.InsertSettings())
}
