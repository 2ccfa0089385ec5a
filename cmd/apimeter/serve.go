package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/api"
	"github.com/apimeter/apimeter/config"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noMigrate := fs.Bool("no-migrate", false, "do not apply migrations at start (readiness waits for them)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)

	db, err := store.Open(ctx, cfg.Store())
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("store open", "driver", db.Kind(), "url", store.RedactURL(cfg.ClickHouseURL), "data_dir", cfg.DataDir)

	layout := schema.Layout{Cluster: cfg.ClickHouseCluster}
	mig, err := schema.NewMigrator(db, layout, log)
	if err != nil {
		return err
	}
	if !*noMigrate {
		if _, err := mig.Apply(ctx); err != nil {
			return err
		}
		changed, err := schema.EnsureRetention(ctx, db, layout, cfg.RetentionDays)
		if err != nil {
			return err
		}
		if len(changed) > 0 {
			log.Info("retention changed", "days", cfg.RetentionDays, "tables", changed)
		}
	}

	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{Addr: cfg.HTTPAddr}, log, reg, map[string]api.Check{
		"store": db.Ping,
		"schema": func(ctx context.Context) error {
			st, err := mig.Status(ctx)
			if err != nil {
				return err
			}
			if st.Problems != nil {
				return st.Problems
			}
			if n := len(st.Pending); n > 0 {
				return fmt.Errorf("%d migrations pending", n)
			}
			return nil
		},
	})
	if err := srv.Listen(); err != nil {
		return err
	}

	var g run.Group
	g.Add(srv.Serve, func(error) {
		if err := srv.Shutdown(); err != nil {
			log.Error("http shutdown", "err", err)
		}
	})
	g.Add(run.ContextHandler(ctx))
	err = g.Run()
	log.Info("stopped")
	if ctx.Err() != nil { // a signal: a clean stop
		return nil
	}
	return err
}
