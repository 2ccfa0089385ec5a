// Package producer is the client Go services use to send usage records to
// apimeter through Kafka: Track never blocks the caller; records are sent
// in batches in the background; while Kafka is unreachable they go to a
// bounded on-disk spool and are sent in order once it is back, also after
// a restart. Only a full spool drops records, and drops are counted and
// logged. The package also has the echo middleware that tracks every
// request (TrackUsage).
package producer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// Record is a usage record in the wire format of the product contract.
// Zero fields are left out; ID and Timestamp are filled by Track when
// empty.
type Record struct {
	ID             string    `json:"id,omitempty"`
	Type           string    `json:"type,omitempty"` // "api_call" (default) or "feature"
	Timestamp      time.Time `json:"-"`
	TenantID       string    `json:"tenantId,omitempty"`
	UserID         string    `json:"userId"`
	APIKeyID       string    `json:"apiKeyId,omitempty"`
	Endpoint       string    `json:"endpoint,omitempty"`
	Method         string    `json:"method,omitempty"`
	StatusCode     int       `json:"statusCode,omitempty"`
	ResponseTimeMs float64   `json:"responseTimeMs"`
	RequestBytes   int64     `json:"requestBytes,omitempty"`
	ResponseBytes  int64     `json:"responseBytes,omitempty"`
	Feature        string    `json:"feature,omitempty"`
	Quantity       float64   `json:"quantity,omitempty"`
	// Cost is what the call counts for against limits and quotas (e.g. a
	// GraphQL query's complexity); 0 leaves it out, and the call counts 1.
	Cost uint32 `json:"cost,omitempty"`
	// DecisionID names the limiter decision that counted the call
	// already, so that apimeter does not count it again; empty when no
	// decision did. TrackUsage fills it.
	DecisionID string            `json:"decisionId,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// MarshalJSON writes the record with its timestamp in RFC 3339 (ms), and
// without the HTTP fields for feature records.
func (r Record) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil) }

// Config configures a Producer. Zero fields take the defaults in their
// comments.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string
	// Topic receives the records. Default "api-usage".
	Topic string
	// SpoolDir keeps records while Kafka is unreachable. Empty keeps them
	// only in memory (Buffer records), and a restart loses them.
	SpoolDir string
	// SpoolMaxBytes bounds the spool. Default 256 MiB.
	SpoolMaxBytes int64
	// Buffer is how many records wait in memory for the sender. Default
	// 100,000.
	Buffer int
	// BatchSize and BatchTimeout shape the batches sent to Kafka.
	// Defaults 1,000 records and 50 ms.
	BatchSize    int
	BatchTimeout time.Duration
	// RetryEvery is how often a spooling producer tries Kafka again.
	// Default 1 s.
	RetryEvery time.Duration
	// Log receives warnings (drops, Kafka unreachable). Default: discard.
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Topic == "" {
		c.Topic = "api-usage"
	}
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = 256 << 20
	}
	if c.Buffer <= 0 {
		c.Buffer = 100_000
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = 50 * time.Millisecond
	}
	if c.RetryEvery <= 0 {
		c.RetryEvery = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Stats counts what a Producer did.
type Stats struct {
	Tracked uint64 // records given to Track
	Sent    uint64 // records Kafka acknowledged
	Spooled uint64 // records written to the spool
	Dropped uint64 // records lost: the spool (or the buffer, without one) was full
	Pending int    // records in the spool now
}

// Producer sends records to Kafka. It is safe for concurrent use.
type Producer struct {
	cfg    Config
	writer writer
	spool  *spool // nil without SpoolDir
	queue  chan []byte

	// spooling is set while Kafka is unreachable or the spool still holds
	// records: new records then go behind them, keeping the order.
	spooling atomic.Bool

	tracked, sent, spooled, dropped atomic.Uint64
	lastDropLog                     atomic.Int64

	stop     chan struct{}
	done     chan struct{}
	closeOne sync.Once
}

// writer is the part of kafka.Writer the producer uses.
type writer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// New starts a producer. With a SpoolDir it resumes sending whatever a
// previous run left in the spool.
func New(cfg Config) (*Producer, error) {
	cfg.setDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("producer: no Kafka brokers")
	}
	p := &Producer{
		cfg: cfg,
		writer: &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Balancer: &kafka.Hash{},
			RequiredAcks: kafka.RequireAll, BatchSize: cfg.BatchSize, BatchTimeout: time.Millisecond,
			MaxAttempts: 2, WriteBackoffMin: 50 * time.Millisecond, WriteBackoffMax: 200 * time.Millisecond,
			WriteTimeout: 5 * time.Second, AllowAutoTopicCreation: true,
		},
		queue: make(chan []byte, cfg.Buffer),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if cfg.SpoolDir != "" {
		s, err := openSpool(cfg.SpoolDir, cfg.SpoolMaxBytes)
		if err != nil {
			return nil, err
		}
		p.spool = s
		p.spooling.Store(s.Len() > 0)
	}
	go p.run()
	return p, nil
}

// Track queues a record; it never blocks. An empty ID gets a random one
// (the key that makes a resent record count once) and a zero Timestamp
// gets the current time.
func (p *Producer) Track(r Record) {
	p.tracked.Add(1)
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	data, err := r.AppendJSON(make([]byte, 0, 320))
	if err != nil {
		p.drop(1, fmt.Sprintf("encode: %v", err))
		return
	}
	p.enqueue(data)
}

// TrackCall records one API call, as the seed's trackUsage(userId,
// endpoint, method, statusCode, responseTime, {tenantId, metadata}).
func (p *Producer) TrackCall(tenantID, userID, endpoint, method string, status int, took time.Duration, metadata map[string]string) {
	p.Track(Record{TenantID: tenantID, UserID: userID, Endpoint: endpoint, Method: method, StatusCode: status,
		ResponseTimeMs: float64(took.Microseconds()) / 1000, Metadata: metadata})
}

// TrackFeature records a metered use of a feature.
func (p *Producer) TrackFeature(tenantID, userID, feature string, quantity float64, metadata map[string]string) {
	p.Track(Record{Type: "feature", TenantID: tenantID, UserID: userID, Feature: feature, Quantity: quantity, Metadata: metadata})
}

// TrackRaw queues an already encoded record (for forwarding records that
// were validated elsewhere).
func (p *Producer) TrackRaw(data []byte) {
	p.tracked.Add(1)
	p.enqueue(data)
}

func (p *Producer) enqueue(data []byte) {
	select {
	case p.queue <- data:
		return
	default:
	}
	// The buffer is full: the sender is behind (or spooling). Without
	// blocking the caller, put the record in the spool; it loses its place
	// in line only to records still in the buffer.
	if p.spool != nil {
		if _, err := p.spool.Append(data); err == nil {
			p.spooled.Add(1)
			p.spooling.Store(true)
			return
		}
	}
	p.drop(1, "buffer and spool full")
}

func (p *Producer) drop(n int, why string) {
	p.dropped.Add(uint64(n))
	// One log line a minute at most.
	now := time.Now().Unix()
	if last := p.lastDropLog.Load(); now-last >= 60 && p.lastDropLog.CompareAndSwap(last, now) {
		p.cfg.Log.Warn("usage records dropped", "count_total", p.dropped.Load(), "reason", why)
	}
}

// Stats reports the producer's counters.
func (p *Producer) Stats() Stats {
	s := Stats{Tracked: p.tracked.Load(), Sent: p.sent.Load(), Spooled: p.spooled.Load(), Dropped: p.dropped.Load()}
	if p.spool != nil {
		s.Pending = p.spool.Len()
	}
	return s
}

// run is the sender: it batches queued records to Kafka, and while Kafka
// is unreachable it moves them to the spool and drains the spool in order
// once Kafka answers again.
func (p *Producer) run() {
	defer close(p.done)
	batch := make([][]byte, 0, p.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	retry := time.NewTicker(p.cfg.RetryEvery)
	defer retry.Stop()
	for {
		batch = batch[:0]
		select {
		case data := <-p.queue:
			batch = append(batch, data)
		case <-retry.C:
			if p.spooling.Load() && p.spool != nil {
				p.drain()
			}
			continue
		case <-p.stop:
			return
		}
		// Fill the batch for up to BatchTimeout.
		timer.Reset(p.cfg.BatchTimeout)
	fill:
		for len(batch) < cap(batch) {
			select {
			case data := <-p.queue:
				batch = append(batch, data)
			case <-timer.C:
				break fill
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		p.dispatch(batch)
	}
}

// dispatch sends a batch, or spools it when spooling or when the send
// fails.
func (p *Producer) dispatch(batch [][]byte) {
	if !p.spooling.Load() {
		if err := p.send(batch); err == nil {
			return
		} else if p.spool == nil {
			p.drop(len(batch), fmt.Sprintf("kafka: %v", err))
			return
		} else {
			p.cfg.Log.Warn("kafka unreachable; spooling usage records", "err", err)
			p.spooling.Store(true)
		}
	}
	if p.spool == nil {
		// Without a spool, wait for Kafka with the batch in hand.
		for {
			if err := p.send(batch); err == nil {
				p.spooling.Store(false)
				return
			}
			select {
			case <-p.stop:
				p.drop(len(batch), "closed while kafka was unreachable")
				return
			case <-time.After(p.cfg.RetryEvery):
			}
		}
	}
	n, err := p.spool.Append(batch...)
	p.spooled.Add(uint64(n))
	if err != nil {
		p.drop(len(batch)-n, err.Error())
	}
}

// drain sends the spool's records in order until the spool is empty —
// then spooling ends and it reports true — or a send fails.
func (p *Producer) drain() bool {
	for {
		entries, pos, err := p.spool.Peek(p.cfg.BatchSize)
		if err != nil {
			p.cfg.Log.Error("read the usage spool", "err", err)
			return false
		}
		if len(entries) == 0 {
			p.spooling.Store(false)
			return true
		}
		if err := p.send(entries); err != nil {
			return false
		}
		if err := p.spool.Ack(pos, len(entries)); err != nil {
			p.cfg.Log.Error("advance the usage spool", "err", err)
			return false
		}
	}
}

func (p *Producer) send(batch [][]byte) error {
	msgs := make([]kafka.Message, len(batch))
	for i, data := range batch {
		msgs[i] = kafka.Message{Key: recordKey(data), Value: data}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.writer.WriteMessages(ctx, msgs...); err != nil {
		return err
	}
	p.sent.Add(uint64(len(batch)))
	return nil
}

// recordKey is the record's id: a resent record lands on the same
// partition, where the ingester drops it. Track writes the id first, so
// the usual case needs no parsing.
func recordKey(data []byte) []byte {
	const prefix = `{"id":"`
	if bytes.HasPrefix(data, []byte(prefix)) {
		rest := data[len(prefix):]
		if end := bytes.IndexAny(rest, `"\`); end > 0 && rest[end] == '"' {
			return rest[:end]
		}
	}
	var k struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &k) == nil && k.ID != "" {
		return []byte(k.ID)
	}
	return nil
}

// Close stops accepting records and sends what it can until ctx ends;
// what is left stays in the spool for the next run (without a spool, it
// is dropped and counted).
func (p *Producer) Close(ctx context.Context) error {
	var err error
	p.closeOne.Do(func() {
		close(p.stop)
		<-p.done
		// Hand the buffer to Kafka, or to the spool.
		var rest [][]byte
	collect:
		for {
			select {
			case data := <-p.queue:
				rest = append(rest, data)
			default:
				break collect
			}
		}
		for len(rest) > 0 && ctx.Err() == nil {
			n := min(len(rest), p.cfg.BatchSize)
			if p.spooling.Load() || p.send(rest[:n]) != nil {
				break
			}
			rest = rest[n:]
		}
		if len(rest) > 0 {
			if p.spool != nil {
				n, aerr := p.spool.Append(rest...)
				p.spooled.Add(uint64(n))
				if aerr != nil {
					p.drop(len(rest)-n, aerr.Error())
				}
				p.spooling.Store(true)
			} else {
				p.drop(len(rest), "closed")
			}
		}
		if p.spool != nil {
			for p.spooling.Load() && !p.drain() && wait(ctx, p.cfg.RetryEvery) {
			}
			err = p.spool.Close()
		}
		err = errors.Join(err, p.writer.Close())
	})
	return err
}

// wait sleeps for d; false when ctx ended first.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// NewID makes a random record id (UUID version 4 form).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
