package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
)

// benchLoad measures the bulk-load path against the engine's own insert
// rate and a naive JSON baseline, in one run on a fresh embedded engine.
func benchLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg ingest.LoadBenchConfig
	fs.IntVar(&cfg.Rows, "rows", 1_000_000, "rows to load in each way")
	fs.IntVar(&cfg.BatchRows, "batch", 100_000, "rows per insert (each batch spans one minute of traffic)")
	fs.IntVar(&cfg.Tenants, "tenants", 5, "tenants")
	fs.IntVar(&cfg.Users, "users", 5000, "users per tenant")
	fs.IntVar(&cfg.Endpoints, "endpoints", 40, "endpoints")
	dir := fs.String("data-dir", "", "engine data directory (default: a new temporary one, removed after)")
	kafkaMode := fs.String("kafka", "embedded", "end-to-end run through Kafka: embedded (an in-process broker), a broker list (host:port,…), or none")
	fs.IntVar(&cfg.Partitions, "partitions", 4, "partitions of the end-to-end topic (KAFKA_PARTITIONS default)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	fs.BoolVar(&cfg.SkipLocal, "e2e-only", false, "run only the end-to-end way")
	memprofile := fs.String("memprofile", "", "write an allocation profile of the run to this file")
	dimensions := fs.String("dimensions", "", "declare custom dimensions as APIMETER_DIMENSIONS does (the generated records carry region in 30 % of them)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	specs, err := dims.Parse(*dimensions)
	if err != nil {
		fmt.Fprintln(stderr, "bench load: --dimensions:", err)
		return exitCode(2)
	}
	cfg.Dimensions = specs
	db, done, err := openBenchStore(ctx, dir, 1)
	if err != nil {
		return err
	}
	defer done()
	switch *kafkaMode {
	case "none":
	case "embedded":
		// As serve runs it: its log in files under the data directory.
		br, err := ingest.StartBroker(ingest.BrokerConfig{Addr: "127.0.0.1:0", Partitions: cfg.Partitions, DataDir: filepath.Join(*dir, "kafka")})
		if err != nil {
			return err
		}
		defer br.Close()
		cfg.Brokers = []string{br.Addr()}
	default:
		cfg.Brokers = strings.Split(*kafkaMode, ",")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		// Only the end-to-end window is profiled.
		cfg.Profile = func() func() {
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintln(stderr, "cpuprofile:", err)
				return func() {}
			}
			return pprof.StopCPUProfile
		}
	}
	if *memprofile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	results, err := ingest.RunLoadBench(ctx, db, cfg)
	if err != nil {
		return err
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	if cfg.SkipLocal {
		r := results[0]
		fmt.Fprintf(stdout, "%s: %.0f rows/s (%.2f s, %.2f µs CPU/row)\n", r.Name, r.RowsPerSecond(), r.Elapsed.Seconds(), float64(r.CPUPerRow().Nanoseconds())/1000)
		return nil
	}
	fmt.Fprintf(stdout, "Load benchmark: %d rows in batches of %d (%d tenants × %d users × %d endpoints), engine %s, %d CPUs\n\n",
		results[0].Rows, cfg.BatchRows, cfg.Tenants, cfg.Users, cfg.Endpoints, db.EngineVersion(), runtime.NumCPU())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows/s\tseconds\tCPU/row\tGo alloc/row\t\tway\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%.0f\t%.2f\t%.2f µs\t%d B\t\t%s\t\n", r.RowsPerSecond(), r.Elapsed.Seconds(),
			float64(r.CPUPerRow().Nanoseconds())/1000, r.AllocBytes/uint64(r.Rows), r.Name)
	}
	tw.Flush()
	bound, ours, naive := results[0].RowsPerSecond(), results[1].RowsPerSecond(), results[2].RowsPerSecond()
	fmt.Fprintf(stdout, "\nGo bulk path / engine bound: %.2f\nGo bulk path / naive JSON:   %.2f\n", ours/bound, ours/naive)
	if len(results) > 4 {
		fmt.Fprintf(stdout, "End to end / engine bound:   %.2f\n", results[4].RowsPerSecond()/bound)
	}
	return nil
}

// openBenchStore opens the embedded engine on *dir (a new temporary
// directory when empty, removed by done) with the schema applied.
func openBenchStore(ctx context.Context, dir *string, conns int) (db *store.Embedded, done func(), err error) {
	remove := func() {}
	if *dir == "" {
		d, err := os.MkdirTemp("", "apimeter-bench-")
		if err != nil {
			return nil, nil, err
		}
		remove = func() { os.RemoveAll(d) }
		*dir = d
	}
	db, err = store.OpenEmbedded(store.EmbeddedConfig{Path: *dir, Conns: conns})
	if err != nil {
		remove()
		return nil, nil, err
	}
	done = func() { db.Close(); remove() }
	m, err := schema.NewMigrator(db, schema.Single, nil)
	if err == nil {
		_, err = m.Apply(ctx)
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	return db, done, nil
}
