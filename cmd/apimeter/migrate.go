package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
)

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cluster := fs.String("cluster", "", "render for this ClickHouse cluster: ON CLUSTER, Replicated* and Distributed tables (default CLICKHOUSE_CLUSTER)")
	print := fs.Bool("print", false, "print the DDL instead of applying it (needs no store)")
	status := fs.Bool("status", false, "list applied and pending migrations without applying")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	layout := schema.Layout{Cluster: cfg.ClickHouseCluster}
	if *cluster != "" {
		layout.Cluster = *cluster
	}
	if *print {
		ddl, err := schema.Render(layout)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, ddl)
		return nil
	}
	if layout.Cluster != "" && cfg.ClickHouseURL == "" {
		return fmt.Errorf("--cluster needs CLICKHOUSE_URL: the embedded engine is a single node (use --print to see the DDL)")
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	db, err := store.Open(ctx, cfg.Store())
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := schema.NewMigrator(db, layout, log)
	if err != nil {
		return err
	}
	if *status {
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, mg := range st.Applied {
			fmt.Fprintf(stdout, "applied  %04d_%s\n", mg.Version, mg.Name)
		}
		for _, mg := range st.Pending {
			fmt.Fprintf(stdout, "pending  %04d_%s\n", mg.Version, mg.Name)
		}
		if st.Problems != nil {
			return st.Problems
		}
		return nil
	}
	applied, err := m.Apply(ctx)
	if err != nil {
		return err
	}
	changed, err := schema.EnsureRetention(ctx, db, layout, cfg.RetentionDays)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d migrations applied; schema is current", len(applied))
	if len(changed) > 0 {
		fmt.Fprintf(stdout, "; retention set to %d days on %s", cfg.RetentionDays, strings.Join(changed, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}

func rebuildRollups(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rollups rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "start, RFC 3339 or YYYY-MM-DD (UTC), "+schema.DateSpan+"; widened to the start of its UTC day")
	to := fs.String("to", "", "end (exclusive), RFC 3339 or YYYY-MM-DD (UTC), "+schema.DateSpan+"; widened to the end of its UTC day")
	force := fs.Bool("force", false, "allow a range that reaches the last minutes (stop ingestion first)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	f, err1 := parseTime(*from)
	t, err2 := parseTime(*to)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(stderr, "rollups rebuild: --from and --to must be RFC 3339 times or YYYY-MM-DD dates")
		return exitCode(2)
	}
	for _, x := range []struct {
		flag string
		t    time.Time
	}{{"--from", f}, {"--to", t}} {
		if !schema.InDateSpan(x.t) {
			fmt.Fprintf(stderr, "rollups rebuild: %s %s: out of range: the rollups hold %s\n", x.flag, x.t.Format(time.RFC3339), schema.DateSpan)
			return exitCode(2)
		}
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
	start := time.Now()
	r, err := schema.Rebuild(ctx, db, layout, f, t, time.Now(), *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt %s for %s to %s in %s\n", strings.Join(schema.Rollups, ", "),
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), time.Since(start).Round(time.Millisecond))
	return nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse(time.DateOnly, s)
}
