package ingest

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the ingester's Prometheus series; Stats is the same for the
// API's system metrics.
type metrics struct {
	records      *prometheus.CounterVec
	dlq          *prometheus.CounterVec
	batches      prometheus.Counter
	batchRecords prometheus.Histogram
	loadSeconds  prometheus.Histogram
	delay        prometheus.Histogram
	lag          *prometheus.GaugeVec
	retries      prometheus.Counter
	replays      prometheus.Counter
	windowIDs    *prometheus.GaugeVec
	truncated    prometheus.Counter
	owned        prometheus.Gauge
	foreign      prometheus.Gauge

	mu    sync.Mutex
	stats Stats
	rate  rateMeter
}

// Stats is a snapshot of the ingester's progress.
type Stats struct {
	Stored        uint64  `json:"stored"`
	Rejected      uint64  `json:"rejected"`
	Duplicates    uint64  `json:"duplicates"`
	Batches       uint64  `json:"batches"`
	Replays       uint64  `json:"replays"`
	LoadRetries   uint64  `json:"loadRetries"`
	RecordsPerSec float64 `json:"recordsPerSecond"`
	LastBatch     int     `json:"lastBatchRecords"`
	// LastLoadMs is how long the last batch took to load, in ms.
	LastLoadMs   float64           `json:"lastLoadMs"`
	Partitions   int               `json:"partitions"`
	Lag          map[string]int64  `json:"lagByPartition"`
	DLQ          map[Reason]uint64 `json:"deadLettersByReason"`
	LastLoadedAt time.Time         `json:"lastLoadedAt"`
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_ingest_records_total", Help: "Records read from Kafka, by outcome (stored, rejected, duplicate).",
		}, []string{"outcome"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apimeter_ingest_dead_letters_total", Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_ingest_batches_total", Help: "Batches loaded into ClickHouse.",
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apimeter_ingest_batch_records", Help: "Records per loaded batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apimeter_ingest_load_seconds", Help: "Time to load one batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "apimeter_ingest_delay_seconds", Help: "Stored time minus event time, per batch (its newest record).",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apimeter_ingest_lag_records", Help: "Messages behind the partition's end.",
		}, []string{"partition"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_ingest_load_retries_total", Help: "Failed load attempts that were retried.",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_ingest_replays_total", Help: "Batches replayed from an unfinished intent after a crash or rebalance.",
		}),
		windowIDs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "apimeter_ingest_dedup_window_ids", Help: "Record ids held to drop producer retries, by the partition that claimed them.",
		}, []string{"partition"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "apimeter_ingest_dedup_window_truncated_total", Help: "Ids dropped from the retry window early because their partition's claims were at APIMETER_DEDUP_MAX_IDS.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apimeter_ingest_partitions", Help: "Partitions this ingester consumes now.",
		}),
		foreign: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "apimeter_ingest_foreign_group_members", Help: "Members of the ingesters' consumer group that are not apimeter ingesters, at the last check.",
		}),
	}
	m.stats.Lag = map[string]int64{}
	m.stats.DLQ = map[Reason]uint64{}
	if reg != nil {
		reg.MustRegister(m.records, m.dlq, m.batches, m.batchRecords, m.loadSeconds, m.delay, m.lag, m.retries, m.replays, m.windowIDs, m.truncated, m.owned, m.foreign)
	}
	return m
}

func (m *metrics) loaded(b *Batch, took time.Duration, now time.Time) {
	stored := b.Accepted()
	m.records.WithLabelValues("stored").Add(float64(stored))
	m.records.WithLabelValues("rejected").Add(float64(len(b.Rejected)))
	m.records.WithLabelValues("duplicate").Add(float64(len(b.Duplicates)))
	for _, d := range b.Rejected {
		m.dlq.WithLabelValues(string(d.Rejection.Reason)).Inc()
	}
	m.batches.Inc()
	m.batchRecords.Observe(float64(stored))
	m.loadSeconds.Observe(took.Seconds())
	if stored > 0 {
		m.delay.Observe(now.Sub(time.UnixMilli(b.MaxEventMs)).Seconds())
	}
	if b.Replay {
		m.replays.Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.stats
	s.Stored += uint64(stored)
	s.Rejected += uint64(len(b.Rejected))
	s.Duplicates += uint64(len(b.Duplicates))
	s.Batches++
	if b.Replay {
		s.Replays++
	}
	s.LastBatch = stored
	s.LastLoadMs = float64(took) / float64(time.Millisecond)
	s.LastLoadedAt = now
	for _, d := range b.Rejected {
		s.DLQ[d.Rejection.Reason]++
	}
	m.rate.add(now, uint64(stored))
}

func (m *metrics) retried() {
	m.retries.Inc()
	m.mu.Lock()
	m.stats.LoadRetries++
	m.mu.Unlock()
}

func (m *metrics) setLag(partition int, lag int64) {
	p := strconv.Itoa(partition)
	m.lag.WithLabelValues(p).Set(float64(lag))
	m.mu.Lock()
	m.stats.Lag[p] = lag
	m.mu.Unlock()
}

func (m *metrics) addPartition() {
	m.owned.Inc()
	m.mu.Lock()
	m.stats.Partitions++
	m.mu.Unlock()
}

func (m *metrics) dropPartition(partition int) {
	m.owned.Dec()
	m.mu.Lock()
	m.stats.Partitions--
	m.mu.Unlock()
	p := strconv.Itoa(partition)
	m.lag.DeleteLabelValues(p)
	m.windowIDs.DeleteLabelValues(p)
	m.mu.Lock()
	delete(m.stats.Lag, p)
	m.mu.Unlock()
}

func (m *metrics) snapshot(now time.Time) Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Lag = make(map[string]int64, len(m.stats.Lag))
	for k, v := range m.stats.Lag {
		s.Lag[k] = v
	}
	s.DLQ = make(map[Reason]uint64, len(m.stats.DLQ))
	for k, v := range m.stats.DLQ {
		s.DLQ[k] = v
	}
	s.RecordsPerSec = m.rate.perSecond(now)
	return s
}

// rateMeter is records per second over the last ten seconds.
type rateMeter struct {
	slots [10]struct {
		sec   int64
		count uint64
	}
}

func (r *rateMeter) add(now time.Time, n uint64) {
	sec := now.Unix()
	s := &r.slots[sec%10]
	if s.sec != sec {
		s.sec, s.count = sec, 0
	}
	s.count += n
}

func (r *rateMeter) perSecond(now time.Time) float64 {
	var total uint64
	sec := now.Unix()
	for _, s := range r.slots {
		if s.sec > sec-10 && s.sec <= sec {
			total += s.count
		}
	}
	return float64(total) / 10
}
