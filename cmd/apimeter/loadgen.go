package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/ingest"
)

// loadgen sends synthetic traffic to Kafka at a target rate.
func loadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg ingest.LoadGenConfig
	brokers := fs.String("brokers", "", "Kafka brokers (default KAFKA_BROKERS, else the embedded broker's address)")
	fs.StringVar(&cfg.Topic, "topic", "", "topic (default KAFKA_TOPIC)")
	fs.IntVar(&cfg.Rate, "rate", 10_000, "records per second")
	fs.DurationVar(&cfg.Duration, "duration", time.Minute, "how long to send")
	fs.IntVar(&cfg.Count, "count", 0, "stop after this many records (0: by duration)")
	fs.IntVar(&cfg.Tenants, "tenants", 3, "tenants")
	fs.IntVar(&cfg.Users, "users", 200, "users per tenant (Zipf-distributed)")
	fs.IntVar(&cfg.Endpoints, "endpoints", 20, "endpoints (Zipf-distributed)")
	fs.Float64Var(&cfg.FeatureShare, "feature-share", 0.02, "share of feature-use records")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()), "random seed")
	fs.IntVar(&cfg.Writers, "writers", 4, "concurrent Kafka writers")
	fs.IntVar(&cfg.Partitions, "partitions", 0, "partitions if loadgen creates the topic (default KAFKA_PARTITIONS)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	env, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	switch {
	case *brokers != "":
		cfg.Brokers = strings.Split(*brokers, ",")
	case len(env.KafkaBrokers) > 0:
		cfg.Brokers = env.KafkaBrokers
	default:
		cfg.Brokers = []string{env.EmbeddedKafkaAddr}
	}
	if cfg.Topic == "" {
		cfg.Topic = env.KafkaTopic
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = env.KafkaPartitions
	}
	fmt.Fprintf(stdout, "sending %d records/s to %s on %s\n", cfg.Rate, cfg.Topic, strings.Join(cfg.Brokers, ","))
	p, err := ingest.RunLoadGen(ctx, cfg, func(p ingest.LoadGenProgress) {
		fmt.Fprintf(stdout, "%6.0fs  sent %d  (%.0f records/s)  errors %d\n", p.Elapsed.Seconds(), p.Sent, p.Rate(), p.Errors)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done: sent %d records in %.1fs, %.0f records/s (target %d), %d failed\n", p.Sent, p.Elapsed.Seconds(), p.Rate(), cfg.Rate, p.Errors)
	if p.Errors > 0 {
		return exitCode(1)
	}
	return nil
}
