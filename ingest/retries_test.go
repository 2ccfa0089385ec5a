package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/store"
)

// retryTraffic is what a producer without keys sends: ids sent twice, each
// copy pinned to another partition (as a retry landing wherever the
// producer's balancer puts it), between records sent once.
type retryTraffic struct {
	first, second []message // the copies of the retried ids
	once          []message // records sent once
	apiCalls      uint64    // distinct API calls: what must be stored
	features      uint64
	retried       int // ids sent twice
}

// newRetryTraffic makes `pairs` retried ids (every sixth a feature use)
// and `singles` records sent once, over `partitions` partitions, with ids
// that start with prefix.
func newRetryTraffic(prefix string, pairs, singles, partitions int, now time.Time) *retryTraffic {
	rt := &retryTraffic{retried: pairs}
	g := NewGenerator(GeneratorConfig{Count: pairs + singles, Start: now.Add(-time.Hour), Span: time.Hour, Users: 50, Seed: uint64(len(prefix)) + 7})
	var r Record
	for i := 0; g.Next(&r); i++ {
		r.ID = fmt.Sprintf("%s-%d", prefix, i)
		r.Type = TypeAPICall
		if i%6 == 0 {
			r.Type, r.Feature, r.Quantity = TypeFeature, "export", 2
		}
		v := r.AppendJSON(nil)
		if r.Type == TypeFeature {
			rt.features++
		} else {
			rt.apiCalls++
		}
		if i >= pairs {
			rt.once = append(rt.once, message{value: v, pinned: true, partition: i % partitions})
			continue
		}
		a := i % partitions
		b := (a + 1 + i%(partitions-1)) % partitions // never a
		rt.first = append(rt.first, message{value: v, pinned: true, partition: a})
		rt.second = append(rt.second, message{value: v, pinned: true, partition: b})
	}
	return rt
}

func (rt *retryTraffic) workload() *workload {
	return &workload{apiCalls: rt.apiCalls, features: rt.features}
}

func sumDuplicates(t testing.TB, db store.Driver, topic string) uint64 {
	return queryUint(t, db, "SELECT sum(duplicates) FROM ingest_batches WHERE kafka_topic = {topic:String}", store.Named("topic", topic))
}

// TestUnkeyedRetriesAcrossPartitionsCountOnce sends 100 API calls and 20
// feature uses twice without a key, each copy on another partition, among
// 400 records sent once, and checks every id is stored once in the raw
// tables and the rollups.
func TestUnkeyedRetriesAcrossPartitionsCountOnce(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	rt := newRetryTraffic("unkeyed", 120, 400, cfg.Partitions, time.Now())
	var msgs []message
	for i := range rt.first {
		msgs = append(msgs, rt.first[i])
		if i < 100 {
			msgs = append(msgs, rt.once[4*i:4*i+2]...)
		}
		msgs = append(msgs, rt.second[i])
		if i < 100 {
			msgs = append(msgs, rt.once[4*i+2:4*i+4]...)
		}
	}
	produce(t, cfg, msgs)

	runIngester(t, cfg, db)
	waitFor(t, 2*time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) == uint64(len(msgs))
	})
	rt.workload().checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(rt.retried), sumDuplicates(t, db, cfg.Topic))
}

// TestRetryAfterRestartOnAnotherPartition stores the first copies, stops
// the ingester, and sends the second copies to other partitions for the
// next ingester: the window it starts with holds what the first stored.
func TestRetryAfterRestartOnAnotherPartition(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	rt := newRetryTraffic("restart", 100, 100, cfg.Partitions, time.Now())
	before := append(append([]message{}, rt.first...), rt.once[:50]...)
	produce(t, cfg, before)
	stop := runIngester(t, cfg, db)
	waitFor(t, time.Minute, "the first copies loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) == uint64(len(before))
	})
	stop()

	runIngester(t, cfg, db)
	after := append(append([]message{}, rt.second...), rt.once[50:]...)
	produce(t, cfg, after)
	waitFor(t, time.Minute, "the second copies loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) == uint64(len(before)+len(after))
	})
	rt.workload().checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(rt.retried), sumDuplicates(t, db, cfg.Topic))
}

// TestReplayWithUnkeyedRetriesAfterCrash crashes the ingester after its
// first insert (the other partitions' ranges stay unfinished, one partly
// stored) while retried ids sit on different partitions, and checks the
// next ingester's replays keep their own records and store every id once.
func TestReplayWithUnkeyedRetriesAfterCrash(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	cfg.MaxBatchRecords = 300
	rt := newRetryTraffic("replay", 300, 1200, cfg.Partitions, time.Now())
	var msgs []message
	for i := range rt.first {
		msgs = append(msgs, rt.first[i], rt.once[4*i], rt.once[4*i+1], rt.second[i], rt.once[4*i+2], rt.once[4*i+3])
	}
	produce(t, cfg, msgs)

	runUntilFirstInsert(t, cfg, db)
	require.Positive(t, queryUint(t, db, "SELECT count() FROM usage_events WHERE kafka_topic = {t:String}", store.Named("t", cfg.Topic)), "one range is partly stored")

	runIngester(t, cfg, db)
	waitFor(t, time.Minute, "every message loaded", func() bool {
		return ledgerMessages(t, db, cfg.Topic) >= uint64(len(msgs))
	})
	rt.workload().checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(len(msgs)), ledgerMessages(t, db, cfg.Topic))
	require.Equal(t, uint64(rt.retried), sumDuplicates(t, db, cfg.Topic), "the replayed range kept its stored records")
	require.Positive(t, queryUint(t, db, "SELECT count() FROM ingest_batches WHERE kafka_topic = {t:String} AND replay = 1", store.Named("t", cfg.Topic)))
}

// TestCrashWithBothCopiesUnfinished leaves both copies of a retried id in
// unfinished ranges at a crash: the first copy's range (partition 0) not
// stored at all, the second's (partition 1, where the copy was dropped)
// stored but not committed. The next ingester replays partition 1 first;
// the id must still be stored once, not lost and not twice.
func TestCrashWithBothCopiesUnfinished(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	// An API call sent twice (the second pair: the first is a feature
	// use), pinned to partitions 0 and 1, and a record sent once beside
	// each copy, so that partition 1's range stores a block of API calls
	// without the dropped copy.
	rt := newRetryTraffic("both", 2, 2, cfg.Partitions, time.Now())
	copy1, copy2, filler0, filler1 := rt.first[1], rt.second[1], rt.once[0], rt.once[1]
	copy1.partition, filler0.partition = 0, 0
	copy2.partition, filler1.partition = 1, 1
	want := &workload{apiCalls: 3}

	held := &holdingStore{Store: db, topic: cfg.Topic, seen: map[string]bool{}}
	in, err := New(cfg, held, quietLog(), nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()

	produce(t, cfg, []message{copy1, filler0})
	waitFor(t, time.Minute, "partition 0's insert", func() bool { return held.saw("0", "usage_events") })
	produce(t, cfg, []message{copy2, filler1})
	waitFor(t, time.Minute, "partition 1's ledger row", func() bool { return held.saw("1", "ingest_batches") })
	cancel()
	<-done
	in.Close()
	p := store.Named("t", cfg.Topic)
	require.Equal(t, uint64(1), queryUint(t, db, "SELECT count() FROM usage_events WHERE kafka_topic = {t:String}", p), "partition 1's range is stored: its filler")

	// The next ingester reads partition 0 late, so partition 1's replay
	// meets the second copy first.
	in, err = New(cfg, db, quietLog(), nil)
	require.NoError(t, err)
	real := in.newReader
	in.newReader = func(partition int, offset int64) messageSource {
		src := real(partition, offset)
		if partition == 0 {
			return &lateSource{messageSource: src, delay: 3 * time.Second}
		}
		return src
	}
	ctx, cancel = context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; in.Close() }()
	waitFor(t, time.Minute, "every message loaded", func() bool { return ledgerMessages(t, db, cfg.Topic) >= 4 })
	want.checkStoredOnce(t, db, cfg.Topic)
}

// holdingStore lets inserts of the test's topic through except partition
// 0's (held: never stored) and partition 1's ledger row (held: the range
// is stored but never finished), as a crash at that moment leaves them.
type holdingStore struct {
	Store
	topic string
	mu    sync.Mutex
	seen  map[string]bool // partition + " " + table
}

func (h *holdingStore) Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error {
	partition, _, _ := strings.Cut(strings.TrimPrefix(opts.DedupToken, h.topic+":"), ":")
	h.mu.Lock()
	h.seen[partition+" "+table] = true
	h.mu.Unlock()
	if partition == "0" || (partition == "1" && table == "ingest_batches") {
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Store.Insert(ctx, table, b, opts)
}

func (h *holdingStore) saw(partition, table string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[partition+" "+table]
}

// lateSource waits before its first message.
type lateSource struct {
	messageSource
	delay  time.Duration
	waited bool
}

func (l *lateSource) FetchMessage(ctx context.Context) (kafka.Message, error) {
	if !l.waited {
		l.waited = true
		if !sleep(ctx, l.delay) {
			return kafka.Message{}, ctx.Err()
		}
	}
	return l.messageSource.FetchMessage(ctx)
}
