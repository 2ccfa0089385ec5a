package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
)

// generate loads generated usage records straight into the store, for
// demos and trials. Running it twice with the same flags loads nothing new:
// each batch carries a deduplication token derived from the flags.
func generate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var g ingest.GeneratorConfig
	fs.IntVar(&g.Count, "records", 100_000, "records to load")
	days := fs.Int("days", 7, "days of traffic, ending at --end")
	end := fs.String("end", "", "end of the traffic, RFC 3339 (default: now, to the minute)")
	fs.IntVar(&g.Tenants, "tenants", 3, "tenants")
	fs.IntVar(&g.Users, "users", 50, "users per tenant")
	fs.IntVar(&g.Endpoints, "endpoints", 20, "endpoints")
	fs.Uint64Var(&g.Seed, "seed", 1, "random seed")
	fs.Float64Var(&g.FeatureShare, "feature-share", 0.02, "share of feature-use records")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	stop := time.Now().UTC().Truncate(time.Minute)
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			fmt.Fprintln(stderr, "generate: --end must be an RFC 3339 time")
			return exitCode(2)
		}
		stop = t
	}
	g.Span = time.Duration(*days) * 24 * time.Hour
	g.Start = stop.Add(-g.Span)
	switch {
	case !schema.InDateSpan(stop):
		fmt.Fprintf(stderr, "generate: --end %s: out of range: the store holds %s\n", stop.Format(time.RFC3339), schema.DateSpan)
		return exitCode(2)
	case !schema.InDateSpan(g.Start):
		fmt.Fprintf(stderr, "generate: --days %d before --end starts on %s: out of range: the store holds %s\n",
			*days, g.Start.Format(time.DateOnly), schema.DateSpan)
		return exitCode(2)
	}

	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	db, err := store.Open(ctx, cfg.Store())
	if err != nil {
		return err
	}
	defer db.Close()
	layout := schema.Layout{Cluster: cfg.ClickHouseCluster}
	m, err := schema.NewMigrator(db, layout, nil)
	if err != nil {
		return err
	}
	if _, err := m.Apply(ctx); err != nil {
		return err
	}

	// Declared dimensions are folded as the ingester folds them, after
	// the values already stored.
	folder := dims.NewFolder(cfg.Dimensions, nil)
	if err := ingest.SeedDimensions(ctx, db, folder, cfg.RetentionDays+1); err != nil {
		return err
	}
	gen := ingest.NewGenerator(g)
	const batch = 50_000
	var usage ingest.UsageColumns
	var features ingest.FeatureColumns
	var r ingest.Record
	n, k := 0, 0
	flush := func() error {
		tok := fmt.Sprintf("generate:%d:%d:%d:%d", g.Seed, stop.Unix(), g.Count, k)
		if usage.Len() > 0 {
			if err := db.Insert(ctx, "usage_events", usage.Block(), store.InsertOptions{DedupToken: tok, Settings: layout.InsertSettings()}); err != nil {
				return err
			}
		}
		if features.Len() > 0 {
			if err := db.Insert(ctx, "feature_usage", features.Block(), store.InsertOptions{DedupToken: tok, Settings: layout.InsertSettings()}); err != nil {
				return err
			}
		}
		usage.Reset()
		features.Reset()
		k++
		return nil
	}
	for gen.Next(&r) {
		if r.Type == ingest.TypeFeature {
			features.Append(&r)
		} else {
			r.Dimensions = folder.Fold(r.TenantID, r.Metadata)
			usage.Append(&r)
		}
		if n++; n%batch == 0 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "loaded %d records from %s to %s\n", n, g.Start.Format(time.RFC3339), stop.Format(time.RFC3339))
	return nil
}
