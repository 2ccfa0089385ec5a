package ingest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// LoadGenConfig shapes `apimeter loadgen`: synthetic traffic sent to Kafka
// at a target rate. Zero fields take the defaults in their comments.
type LoadGenConfig struct {
	Brokers  []string // required
	Topic    string   // default "api-usage"
	Rate     int      // records per second, default 10,000
	Duration time.Duration
	// Count stops after this many records (0: only Duration stops).
	Count int
	// Traffic: tenants, users per tenant, endpoints; Zipf-distributed
	// users and endpoints, log-normal latencies, error bursts.
	Tenants, Users, Endpoints int
	FeatureShare              float64
	Seed                      uint64
	// Writers is the number of concurrent Kafka writers. Default 4.
	Writers int
	// Partitions is used when loadgen creates the topic. Default 4.
	Partitions int
}

// LoadGenProgress is what loadgen has sent so far.
type LoadGenProgress struct {
	Sent    uint64
	Errors  uint64
	Elapsed time.Duration
}

// Rate is the achieved rate.
func (p LoadGenProgress) Rate() float64 { return float64(p.Sent) / p.Elapsed.Seconds() }

// RunLoadGen sends generated records, timestamped as they are sent, at
// cfg.Rate per second until cfg.Duration, cfg.Count or ctx ends. report,
// if set, is called every second.
func RunLoadGen(ctx context.Context, cfg LoadGenConfig, report func(LoadGenProgress)) (LoadGenProgress, error) {
	if len(cfg.Brokers) == 0 {
		return LoadGenProgress{}, fmt.Errorf("loadgen: no brokers")
	}
	if cfg.Topic == "" {
		cfg.Topic = "api-usage"
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 10_000
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 4
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 4
	}
	if err := EnsureTopic(ctx, cfg.Brokers, cfg.Topic, cfg.Partitions); err != nil {
		return LoadGenProgress{}, fmt.Errorf("loadgen: %w", err)
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	count := cfg.Count
	if count <= 0 {
		count = 1 << 62
	}
	gen := NewGenerator(GeneratorConfig{
		Seed: cfg.Seed, Tenants: cfg.Tenants, Users: cfg.Users, Endpoints: cfg.Endpoints,
		FeatureShare: cfg.FeatureShare, Count: count, Bursts: true,
		Start: time.Now(), Span: time.Duration(float64(count) / float64(cfg.Rate) * float64(time.Second)),
	})
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Balancer: &kafka.Hash{}, AllowAutoTopicCreation: true,
		BatchSize: 2000, BatchBytes: 1 << 20, BatchTimeout: 10 * time.Millisecond, RequiredAcks: kafka.RequireOne,
	}
	defer w.Close()

	batches := make(chan []kafka.Message, cfg.Writers*2)
	var sent, failed atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < cfg.Writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				// A batch that fails is tried again a few times: a broker
				// that hiccups should not show as lost traffic.
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					if err = w.WriteMessages(context.WithoutCancel(ctx), b...); err == nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil {
					failed.Add(uint64(len(b)))
					continue
				}
				sent.Add(uint64(len(b)))
			}
		}()
	}

	start := time.Now()
	progress := func() LoadGenProgress {
		return LoadGenProgress{Sent: sent.Load(), Errors: failed.Load(), Elapsed: time.Since(start)}
	}
	// Pace in 10 ms steps: each step sends what the rate allows by then.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastReport := start
	queued := 0
	var r Record
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			due := int(float64(cfg.Rate) * now.Sub(start).Seconds())
			if due > count {
				due = count
			}
			var b []kafka.Message
			for queued < due && gen.Next(&r) {
				r.EventTimeMs = now.UnixMilli()
				b = append(b, kafka.Message{Key: []byte(r.ID), Value: r.AppendJSON(nil)})
				queued++
				if len(b) == 2000 {
					batches <- b
					b = nil
				}
			}
			if len(b) > 0 {
				batches <- b
			}
			if queued >= count {
				break loop
			}
			if report != nil && now.Sub(lastReport) >= time.Second {
				lastReport = now
				report(progress())
			}
		}
	}
	close(batches)
	wg.Wait()
	return progress(), nil
}
