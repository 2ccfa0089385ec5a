package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/store"
)

// Config configures the ingester. Zero fields take the defaults in their
// comments.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string
	// Topic carries the usage records. Default "api-usage".
	Topic string
	// DeadLetterTopic receives rejected records. Default Topic + "-dlq".
	DeadLetterTopic string
	// Group is the consumer group. Default "apimeter-ingest".
	Group string
	// GroupSecret is what the ingester presents when it joins Group on
	// the embedded broker, which admits no member without it
	// (LoadGroupSecret). Empty for any other broker.
	GroupSecret string
	// InsertSettings go with every insert of a batch, besides its token:
	// on a ClickHouse cluster, forwarding to the shards before the insert
	// returns and a quorum of replicas (schema.Layout.InsertSettings).
	// Default none (one server).
	InsertSettings []store.Setting
	// GroupCheckInterval is how often the group is described to find
	// members that are not apimeter ingesters. Default 15 seconds.
	GroupCheckInterval time.Duration
	// Partitions is the partition count used when the ingester creates the
	// topic. Default 4.
	Partitions int
	// MaxBatchRecords, MaxBatchBytes and MaxBatchWait close a partition's
	// batch: whichever comes first. Defaults 100,000 records, 32 MiB of
	// messages, 1 second after the batch's first message.
	MaxBatchRecords int
	MaxBatchBytes   int
	MaxBatchWait    time.Duration
	// DedupWindow is how far apart, in Kafka time, two records with the
	// same id may be for the later one to be dropped as a producer retry,
	// whichever of the ingester's partitions each is on. Default 15
	// minutes; a negative value turns it off.
	DedupWindow time.Duration
	// DedupMaxIDs caps the ids each assigned partition keeps in the
	// ingester's shared window (about 75 bytes each), so the window holds
	// at most this many times the partitions assigned. Default 1,000,000.
	DedupMaxIDs int
	// Retention is how old a record may be (API_USAGE_RETENTION_DAYS).
	// Default 90 days.
	Retention time.Duration
	// Dimensions folds declared custom dimensions (nil: none). Run seeds
	// it from the store before consuming.
	Dimensions *dims.Folder
	// Decided says whether a record's decisionId names a decision that
	// already counted the call for that tenant and user (nil: none did).
	// Records it refuses, and records without decisionId, are the batch's
	// reported calls (LoadedBatch.Calls). Called from every partition's
	// goroutine as its batch is assembled, once per API call that has a
	// decisionId and is not a 429, and again if the batch is replayed.
	Decided func(tenant, user, decisionID string) bool
	// Route maps an api_call record's endpoint to its route template
	// before it is stored (nil: stored as sent). Called once per record.
	// See Policy.Route.
	Route func(endpoint string) string
	// RetryMin and RetryMax bound the backoff between failed loads.
	// Defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// OnLoaded is called after each batch is stored and committed (from
	// the partition's goroutine; it must not block for long): what
	// api.usage.tracked reports, a batch at a time.
	OnLoaded func(LoadedBatch)
	// Loads is how many batches (of any partitions) load at once. More
	// concurrent inserts than the store has cores to run them make each
	// slower and the batches smaller; waiting partitions keep filling
	// theirs. Default GOMAXPROCS, at least 2 and at most 8.
	Loads int
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = "api-usage"
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + "-dlq"
	}
	if c.Group == "" {
		c.Group = "apimeter-ingest"
	}
	if c.Partitions <= 0 {
		c.Partitions = 4
	}
	if c.MaxBatchRecords <= 0 {
		c.MaxBatchRecords = 100_000
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 32 << 20
	}
	if c.MaxBatchWait <= 0 {
		c.MaxBatchWait = time.Second
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = 15 * time.Minute
	}
	if c.DedupMaxIDs <= 0 {
		c.DedupMaxIDs = 1_000_000
	}
	if c.Retention <= 0 {
		c.Retention = 90 * 24 * time.Hour
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Second
	}
	if c.Loads <= 0 {
		c.Loads = DefaultLoads()
	}
	if c.GroupCheckInterval <= 0 {
		c.GroupCheckInterval = 15 * time.Second
	}
}

// DefaultLoads is Config.Loads' default: GOMAXPROCS, at least 2 and at
// most 8.
func DefaultLoads() int { return min(max(runtime.GOMAXPROCS(0), 2), 8) }

// Store is what the ingester needs of a store.
type Store interface {
	Insert(ctx context.Context, table string, b *store.Block, opts store.InsertOptions) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// Ingester consumes usage records from Kafka and loads them into
// ClickHouse, each record exactly once (see DESIGN.md for the argument).
// Per assigned partition it runs two stages: consume → decode → batch in
// one goroutine, load → commit in another, with one batch in between, so
// decoding overlaps loading and a slow store stops fetching.
type Ingester struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	metrics *metrics
	offsets offsetStore
	client  *kafka.Client
	// Connections: the client's and the dead letters' (transport), the
	// consumer group's and the readers' (dialer).
	transport *kafka.Transport
	dialer    *kafka.Dialer
	dlq       *kafka.Writer
	loads     chan struct{} // slots for concurrent loads

	// window holds the ids all partitions accepted recently; it lives as
	// long as the ingester, across generations.
	window *idWindow

	groupMu     sync.Mutex
	lastForeign []foreignMember // what the last group check found

	// newReader opens a partition's message source; tests replace it.
	newReader func(partition int, offset int64) messageSource
}

// messageSource is one partition's stream of messages.
type messageSource interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	Lag() int64
	Close() error
}

// New builds an ingester; log may be nil (discard); reg receives its
// metrics (nil for none).
func New(cfg Config, st Store, log *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("ingest: no Kafka brokers")
	}
	// Every connection carries ClientID: the group check tells
	// ingesters by it.
	transport := &kafka.Transport{ClientID: ClientID}
	dialer := &kafka.Dialer{ClientID: ClientID, Timeout: 10 * time.Second, DualStack: true}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: transport}
	in := &Ingester{
		cfg:       cfg,
		store:     st,
		log:       log,
		metrics:   newMetrics(reg),
		client:    client,
		transport: transport,
		dialer:    dialer,
		offsets:   &groupOffsets{client: client, group: cfg.Group, topic: cfg.Topic},
		loads:     make(chan struct{}, cfg.Loads),
		window:    newIDWindow(cfg.DedupWindow.Milliseconds(), cfg.DedupMaxIDs),
		dlq: &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.DeadLetterTopic, Balancer: &kafka.Hash{}, Transport: transport,
			RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true,
		},
	}
	in.newReader = func(partition int, offset int64) messageSource {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: cfg.Brokers, Topic: cfg.Topic, Partition: partition, Dialer: dialer,
			MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond, QueueCapacity: 10_000,
			ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: time.Second,
			ErrorLogger: kafkaLogger(log, slog.LevelDebug),
		})
		r.SetOffset(offset)
		return r
	}
	return in, nil
}

// Stats is a snapshot of the ingester's progress.
func (in *Ingester) Stats() Stats { return in.metrics.snapshot(time.Now()) }

// Close releases the ingester's Kafka writers and connections.
func (in *Ingester) Close() error {
	err := in.dlq.Close()
	in.transport.CloseIdleConnections()
	return err
}

func kafkaLogger(log *slog.Logger, level slog.Level) kafka.LoggerFunc {
	return func(msg string, args ...any) {
		log.Log(context.Background(), level, "kafka: "+fmt.Sprintf(msg, args...))
	}
}

// Run consumes until ctx is cancelled. It joins the consumer group and, in
// every generation, runs one consumer per assigned partition; a rebalance
// ends them all (kafka-go waits for them before joining the next
// generation).
func (in *Ingester) Run(ctx context.Context) error {
	for in.cfg.Dimensions != nil {
		err := SeedDimensions(ctx, in.store, in.cfg.Dimensions, int(in.cfg.Retention/(24*time.Hour))+1)
		if err == nil {
			break
		}
		in.log.Warn("dimension values not read; retrying", "err", err)
		if !sleep(ctx, 2*time.Second) {
			return nil
		}
	}
	for {
		err := ensureTopics(ctx, in.client, in.cfg)
		if err == nil {
			break
		}
		in.log.Warn("kafka topics not ready; retrying", "err", err)
		if !sleep(ctx, 2*time.Second) {
			return nil
		}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: in.cfg.Group, Brokers: in.cfg.Brokers, Topics: []string{in.cfg.Topic}, Dialer: in.dialer,
		GroupBalancers:    []kafka.GroupBalancer{ingesterBalancer{secret: in.cfg.GroupSecret}},
		StartOffset:       kafka.FirstOffset,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second, RebalanceTimeout: 30 * time.Second,
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true, PartitionWatchInterval: 5 * time.Second,
		Logger: kafkaLogger(in.log, slog.LevelDebug),
		// A failed join is worth a warning: it is how an ingester the
		// broker refuses (another process on the embedded broker, a
		// group held by a consumer speaking another protocol) shows.
		ErrorLogger: kafkaLogger(in.log, slog.LevelWarn),
	})
	if err != nil {
		return fmt.Errorf("ingest: consumer group: %w", err)
	}
	defer group.Close()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go in.watchGroup(wctx)
	in.log.Info("ingester started", "topic", in.cfg.Topic, "group", in.cfg.Group, "brokers", in.cfg.Brokers)
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			in.log.Warn("consumer group: waiting for the next generation", "err", err)
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		parts := gen.Assignments[in.cfg.Topic]
		in.log.Info("partitions assigned", "generation", gen.ID, "count", len(parts))
		a := newAssignment(parts)
		for _, p := range parts {
			gen.Start(func(ctx context.Context) { in.consume(ctx, gen, a, p.ID) })
		}
	}
}

// consume runs one partition until its generation ends or its ledger
// commits are refused.
func (in *Ingester) consume(ctx context.Context, gen *kafka.Generation, a *assignment, partition int) {
	in.metrics.addPartition()
	defer in.metrics.dropPartition(partition)

	r, ok := a.start(ctx, in, partition)
	if !ok {
		return
	}
	start := r.committed
	if start < 0 {
		start = kafka.FirstOffset
	}
	src := in.newReader(partition, start)
	defer src.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Unbuffered: a batch closes when its loader takes it (see fill).
	batches := make(chan *Batch)
	// Loaded batches come back to be filled again, keeping their columns'
	// memory: at most three exist (loading, waiting, filling).
	free := make(chan *Batch, 3)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(batches)
		in.fetch(ctx, src, partition, a, r, batches, free)
	}()
	in.load(ctx, gen, partition, batches, free)
	cancel()
	wg.Wait()
}

// fetch is the consume → decode → batch stage, from where r says.
func (in *Ingester) fetch(ctx context.Context, src messageSource, partition int, a *assignment, r *resume, out chan<- *Batch, free chan *Batch) {
	f := &fetcher{
		in: in, src: src, partition: partition, a: a, replay: r.replay, out: out,
		bt: &batcher{
			topic: in.cfg.Topic, partition: int32(partition),
			dec:    NewDecoder(Policy{Retention: in.cfg.Retention, Dimensions: in.cfg.Dimensions, Route: in.cfg.Route}),
			window: r.window, recorded: r.recorded, decided: in.cfg.Decided,
		},
	}
	next := r.committed
	for {
		b := in.newBatch(free, partition, next)
		sent, ok := f.fill(ctx, b)
		if !ok {
			return
		}
		f.report()
		next = b.Last + 1
		if !sent {
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
	}
}

// fetcher holds one partition's decode stage state between batches.
type fetcher struct {
	in        *Ingester
	src       messageSource
	partition int
	bt        *batcher
	a         *assignment
	replay    *intent        // a range to rebuild exactly, first
	carry     *kafka.Message // a message read past a replayed range
	open      bool           // past the assignment's gate
	read      bool           // a message was read
	out       chan<- *Batch
}

// pollEvery is how often a batch past its wait checks for a free load
// slot while it keeps filling.
const pollEvery = 5 * time.Millisecond

// fill adds messages to b until it is full, or until its wait is over and
// a load slot is free — then it hands b to the loader itself (sent) — or
// until a replayed range is complete. A batch that waited its time but
// finds every load slot busy keeps growing: under load, batches get as
// large as the limits allow, which the engine loads most cheaply. ok is
// false when ctx ended.
func (f *fetcher) fill(ctx context.Context, b *Batch) (sent, ok bool) {
	in := f.in
	// The fetch context: ctx until the first message, then ctx with the
	// batch's deadline, then short polls once the deadline passed.
	fctx := timeoutCtx{ctx: ctx}
	defer fctx.stop()
	waited := false
	for {
		if f.replay == nil {
			if b.Messages >= in.cfg.MaxBatchRecords || b.Bytes >= in.cfg.MaxBatchBytes {
				return false, true
			}
			if waited && in.slotFree() {
				select {
				case f.out <- b:
					return true, true
				default:
				}
			}
		}
		var m kafka.Message
		if f.carry != nil {
			m, f.carry = *f.carry, nil
		} else {
			if b.Messages == 0 && f.read && f.src.Lag() == 0 {
				// Everything there was is read: the partition waits for
				// new records, which hold the others' window back no more.
				f.bt.window.Idle()
			}
			var err error
			m, err = f.src.FetchMessage(fctx.ctx)
			if err != nil {
				if ctx.Err() != nil {
					return false, false
				}
				if errors.Is(err, context.DeadlineExceeded) {
					waited = true
					fctx.reset(ctx, pollEvery)
					continue
				}
				in.log.Warn("kafka fetch", "partition", f.partition, "err", err)
				if !sleep(ctx, 500*time.Millisecond) {
					return false, false
				}
				continue
			}
		}
		if f.replay != nil && m.Offset > f.replay.last {
			// Retention removed the end of the range: close it here and
			// keep the message for the next batch.
			f.carry = &m
			f.endReplay(b)
			return false, true
		}
		f.read = true
		if f.bt.recorded == nil && !f.open {
			// The first record decided by the window waits for the exact
			// replays' claims.
			if !f.a.wait(ctx) {
				return false, false
			}
			f.open = true
		}
		if b.First < 0 {
			b.First = m.Offset
		}
		if b.Messages == 0 {
			if f.replay == nil {
				fctx.reset(ctx, in.cfg.MaxBatchWait)
			}
			// A backlog tells how big this batch will get: size the
			// columns once instead of growing them.
			if lag := f.src.Lag(); lag > 0 {
				b.Usage.Grow(int(min(lag+1, int64(in.cfg.MaxBatchRecords))))
			}
		}
		f.bt.add(b, m)
		if f.replay != nil && m.Offset >= f.replay.last {
			f.endReplay(b)
			return false, true
		}
	}
}

// timeoutCtx is a context whose timeout is replaced as a batch moves on.
type timeoutCtx struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (t *timeoutCtx) reset(parent context.Context, d time.Duration) {
	t.stop()
	t.ctx, t.cancel = context.WithTimeout(parent, d)
}

func (t *timeoutCtx) stop() {
	if t.cancel != nil {
		t.cancel()
	}
}

func (f *fetcher) endReplay(b *Batch) {
	b.Replay, b.Last = true, f.replay.last
	f.replay = nil
	if f.bt.recorded != nil {
		f.bt.recorded = nil
		f.a.replayed()
	}
}

// report publishes the partition's window size and lag.
func (f *fetcher) report() {
	m := f.in.metrics
	m.windowIDs.WithLabelValues(strconv.Itoa(f.partition)).Set(float64(f.in.window.ClaimedBy(int32(f.partition))))
	if n := f.in.window.TakeTruncated(); n > 0 {
		m.truncated.Add(float64(n))
	}
	if lag := f.src.Lag(); lag >= 0 {
		m.setLag(f.partition, lag)
	}
}

// slotFree reports whether a load could start now.
func (in *Ingester) slotFree() bool { return len(in.loads) < cap(in.loads) }

// lastLoaded is the end of the last batch of the partition the store
// recorded in ingest_batches; ok is false when there is none.
func (in *Ingester) lastLoaded(ctx context.Context, partition int) (int64, bool) {
	for {
		rows, err := in.store.Query(ctx, `SELECT max(last_offset), count() FROM ingest_batches
			WHERE kafka_topic = {topic:String} AND kafka_partition = {partition:Int32}`,
			store.Named("topic", in.cfg.Topic), store.Named("partition", int32(partition)))
		if err == nil {
			var last int64
			var n uint64
			if rows.Next() {
				err = rows.Scan(&last, &n)
			}
			rows.Close()
			if err == nil {
				return last, n > 0
			}
		}
		in.log.Warn("read the ingest ledger; retrying", "partition", partition, "err", err)
		if !sleep(ctx, in.cfg.RetryMax) {
			return 0, false
		}
	}
}

// load is the load → commit stage. For every batch: commit the intent,
// load, send dead letters, commit the end. It returns when batches ends
// or a commit is refused (the partition has a new owner).
func (in *Ingester) load(ctx context.Context, gen *kafka.Generation, partition int, batches <-chan *Batch, free chan<- *Batch) {
	log := in.log.With("partition", partition)
	for b := range batches {
		if !b.Replay {
			if err := in.commit(ctx, gen, partition, b.First, pendingMeta(b.First, b.Last)); err != nil {
				log.Info("stopping: intent not committed", "err", err)
				return
			}
		}
		started := time.Now()
		select {
		case in.loads <- struct{}{}:
		case <-ctx.Done():
			return
		}
		err := in.loadBatch(ctx, b)
		<-in.loads
		if err != nil {
			return // the generation ended; the next owner replays the intent
		}
		if err := in.sendDeadLetters(ctx, b.Rejected); err != nil {
			return
		}
		// The batch is stored: commit its end even if the generation is
		// ending, to spare the next owner a replay.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = in.commit(cctx, gen, partition, b.Last+1, doneMeta(b.First, b.Last))
		cancel()
		in.metrics.loaded(b, time.Since(started), time.Now())
		if err != nil {
			log.Info("stopping: end of batch not committed", "err", err)
			return
		}
		if in.cfg.OnLoaded != nil {
			in.cfg.OnLoaded(summarize(b))
		}
		select {
		case free <- b:
		default:
		}
	}
}

// LoadedBatch tells of one stored batch: its place in the topic and its
// counts, per tenant too.
type LoadedBatch struct {
	Topic        string         `json:"topic"`
	Partition    int32          `json:"partition"`
	FirstOffset  int64          `json:"firstOffset"`
	LastOffset   int64          `json:"lastOffset"`
	Records      int            `json:"records"`
	Features     int            `json:"features"`
	Rejected     int            `json:"rejected"`
	Duplicates   int            `json:"duplicates"`
	ByTenant     map[string]int `json:"byTenant"`
	FirstEventAt time.Time      `json:"firstEventAt"`
	LastEventAt  time.Time      `json:"lastEventAt"`
	Replay       bool           `json:"replay"`
	// Calls are the batch's API calls no decision counted, for the
	// limiter to add (Call): records dropped as retries or rejected are
	// not among them. The slice is the receiver's to keep; its strings
	// share the batch's message bytes, so clone one kept for long.
	Calls []Call `json:"-"`
}

func summarize(b *Batch) LoadedBatch {
	l := LoadedBatch{Topic: b.Topic, Partition: b.Partition, FirstOffset: b.First, LastOffset: b.Last, Records: b.Usage.Len(),
		Features: b.Features.Len(), Rejected: len(b.Rejected), Duplicates: len(b.Duplicates), ByTenant: map[string]int{}, Replay: b.Replay,
		Calls: b.calls.list(&b.Usage)}
	for _, t := range b.Usage.tenant {
		l.ByTenant[t]++
	}
	if b.MaxEventMs > 0 {
		l.FirstEventAt, l.LastEventAt = time.UnixMilli(b.MinEventMs).UTC(), time.UnixMilli(b.MaxEventMs).UTC()
	}
	return l
}

// newBatch takes a loaded batch back, or makes one.
func (in *Ingester) newBatch(free chan *Batch, partition int, first int64) *Batch {
	select {
	case b := <-free:
		b.reset(first)
		return b
	default:
		return &Batch{Topic: in.cfg.Topic, Partition: int32(partition), First: first}
	}
}

// commit retries transient failures; a refusal (fenced) or ctx ends it.
func (in *Ingester) commit(ctx context.Context, gen *kafka.Generation, partition int, offset int64, meta string) error {
	backoff := in.cfg.RetryMin
	for {
		err := in.offsets.Commit(ctx, gen, partition, offset, meta)
		if err == nil || errors.Is(err, errFenced) || ctx.Err() != nil {
			return err
		}
		in.log.Warn("commit offset; retrying", "partition", partition, "err", err)
		if !sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, in.cfg.RetryMax)
	}
}

// loadBatch writes a batch's records, rejections and ledger row, each
// with a token derived from the batch's range.
func (in *Ingester) loadBatch(ctx context.Context, b *Batch) error {
	tok := b.Token()
	started := time.Now()
	// The duplicates first: a replay of this range finds them if any of
	// its records may be stored, and drops the same records.
	if len(b.Duplicates) > 0 {
		if err := in.insert(ctx, "ingest_duplicates", duplicatesBlock(b), tok+":d"); err != nil {
			return err
		}
	}
	if b.Usage.Len() > 0 {
		if err := in.insert(ctx, "usage_events", b.Usage.Block(), tok); err != nil {
			return err
		}
	}
	if b.Features.Len() > 0 {
		if err := in.insert(ctx, "feature_usage", b.Features.Block(), tok+":f"); err != nil {
			return err
		}
	}
	if len(b.Rejected) > 0 {
		if err := in.insert(ctx, "ingest_rejections", rejectionsBlock(b.Rejected), tok+":r"); err != nil {
			return err
		}
	}
	return in.insert(ctx, "ingest_batches", ledgerBlock(b, uint32(time.Since(started).Milliseconds())), tok+":b")
}

// insert retries with backoff until the store takes the block or ctx ends.
func (in *Ingester) insert(ctx context.Context, table string, blk *store.Block, tok string) error {
	backoff := in.cfg.RetryMin
	for {
		err := in.store.Insert(ctx, table, blk, store.InsertOptions{DedupToken: tok, Settings: in.cfg.InsertSettings})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in.metrics.retried()
		in.log.Warn("load batch; retrying", "table", table, "token", tok, "backoff", backoff, "err", err)
		if !sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, in.cfg.RetryMax)
	}
}

// Dead-letter headers.
const (
	HeaderReason          = "apimeter-reason"
	HeaderField           = "apimeter-field"
	HeaderDetail          = "apimeter-detail"
	HeaderSourceTopic     = "apimeter-source-topic"
	HeaderSourcePartition = "apimeter-source-partition"
	HeaderSourceOffset    = "apimeter-source-offset"
	HeaderSourceTimestamp = "apimeter-source-timestamp"
)

// sendDeadLetters writes rejected records, with their original bytes and
// headers naming the reason and the source, to the dead-letter topic.
// Delivery is at least once: a replayed batch sends its letters again.
func (in *Ingester) sendDeadLetters(ctx context.Context, letters []DeadLetter) error {
	if len(letters) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(letters))
	for i, d := range letters {
		msgs[i] = kafka.Message{Key: d.Key, Value: d.Value, Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(d.Rejection.Reason)},
			{Key: HeaderField, Value: []byte(d.Rejection.Field)},
			{Key: HeaderDetail, Value: []byte(d.Rejection.Detail)},
			{Key: HeaderSourceTopic, Value: []byte(d.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(d.Partition)))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
			{Key: HeaderSourceTimestamp, Value: []byte(strconv.FormatInt(d.TimestampMs, 10))},
		}}
	}
	backoff := in.cfg.RetryMin
	for {
		err := in.dlq.WriteMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		in.log.Warn("write dead letters; retrying", "count", len(msgs), "err", err)
		if !sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(2*backoff, in.cfg.RetryMax)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// Ready checks the brokers answer, every partition of the topic has a
// leader, and no one but ingesters is in the consumer group.
func (in *Ingester) Ready(ctx context.Context) error {
	if err := topicReady(ctx, in.client, in.cfg.Topic); err != nil {
		return err
	}
	return in.checkGroup(ctx)
}
