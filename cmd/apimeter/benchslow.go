package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/api"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
)

// benchSlowExports measures what slow export downloads do to everyone
// else: with K clients reading full exports at a trickle, another
// tenant's /stats and /readyz latency — with the store's connections
// shared first come, first served and exports streamed straight from the
// engine (the naive design), and with classes of work and the spool.
// Then a fast client's export speed against the engine's own.
func benchSlowExports(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench slow-exports", flag.ContinueOnError)
	fs.SetOutput(stderr)
	records := fs.Int("records", 450_000, "records to load (two tenants; the busier one is exported)")
	slowList := fs.String("slow", "8,30", "numbers of slow downloads to run, comma separated")
	rate := fs.Int("rate", 10<<10, "bytes per second each slow client reads")
	measure := fs.Duration("duration", 20*time.Second, "how long interactive latency is measured with the downloads running")
	timeout := fs.Duration("timeout", 30*time.Second, "a request taking longer counts as this long")
	format := fs.String("format", "ndjson", "export format of the slow downloads")
	dir := fs.String("data-dir", "", "engine data directory (default: a temporary one)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	var slow []int
	for _, s := range strings.Split(*slowList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bench slow-exports: --slow %q: want positive numbers", *slowList)
		}
		slow = append(slow, n)
	}
	// Two stores on the one engine: the classes of work, and the naive
	// pool of four connections every statement queues for.
	classed, done, err := openBenchStore(ctx, dir, store.DefaultConns)
	if err != nil {
		return err
	}
	defer done()
	naive, err := store.OpenEmbedded(store.EmbeddedConfig{Path: *dir, Conns: 4, Limits: store.ClassLimits{Unlimited: true}})
	if err != nil {
		return err
	}
	defer naive.Close()
	end := time.Now().UTC().Truncate(time.Hour)
	start := end.AddDate(0, 0, -7)
	if err := loadGenerated(ctx, classed, ingest.GeneratorConfig{Seed: 11, Tenants: 2, Users: 100, Endpoints: 30, Start: start,
		Span: end.Sub(start), Count: *records}, io.Discard); err != nil {
		return err
	}
	exported, err := store.QueryUint64(ctx, classed, "SELECT count() FROM usage_events WHERE tenant_id = 'tenant-1'")
	if err != nil {
		return err
	}
	const admin = "bench-admin-key-0123456789"
	keys := auth.NewStore(classed, admin)
	reader, err := newKey(ctx, keys, "tenant-2", "reader", auth.RoleUser)
	if err != nil {
		return err
	}
	analysts := make([]string, slices.Max(slow))
	for i := range analysts {
		if analysts[i], err = newKey(ctx, keys, "tenant-1", fmt.Sprintf("analyst-%d", i), auth.RoleAdmin); err != nil {
			return err
		}
	}
	exportBody := fmt.Sprintf(`{"format":%q,"startDate":%q,"endDate":%q}`, *format, start.Format(time.RFC3339), end.Format(time.RFC3339))

	fmt.Fprintf(stdout, "Slow exports: each of K clients downloads tenant-1's week (%d records, %s) at %d bytes/s; meanwhile tenant-2's /stats (30 days) and /readyz are called one after another for %s. Engine %s, %d CPUs.\n\n",
		exported, *format, *rate, *measure, classed.EngineVersion(), runtime.NumCPU())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "K\t/stats p50 ms\t/stats p99 ms\t/stats max ms\tslow or failed\t/readyz p99 ms\t/readyz failed\tdownloads 429\t\tdesign\t")
	designs := []struct {
		name string
		db   *store.Embedded
		dl   func() api.DownloadLimits
	}{
		{"shared pool, straight from the engine", naive, func() api.DownloadLimits { return api.DownloadLimits{Max: 1000, PerCaller: 1000} }},
		{"classes of work, spool", classed, func() api.DownloadLimits {
			return api.DownloadLimits{SpoolDir: filepath.Join(*dir, "export-spool")}
		}},
	}
	for _, k := range slow {
		for _, d := range designs {
			res, err := runSlowExports(ctx, d.db, keys, d.dl(), k, analysts, reader, exportBody, *rate, *measure, *timeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%.1f\t%d of %d\t%.1f\t%d of %d\t%d\t\t%s\t\n", k,
				ms(res.stats.p(50)), ms(res.stats.p(99)), ms(res.stats.max()), res.stats.failed, len(res.stats.lat),
				ms(res.ready.p(99)), res.ready.failed, len(res.ready.lat), res.refused, d.name)
		}
	}
	tw.Flush()

	// A fast client: the export's speed against the engine writing the
	// same query in the same format.
	fmt.Fprintf(stdout, "\nA fast client downloading the same export over loopback, against the engine's own output (best of three each):\n\n")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows/s\tengine rows/s\tratio\t\tdesign\t")
	for _, d := range designs {
		// The best of three of each, taken in turns: one run is at the
		// mercy of whatever else the machine does.
		var ours, engine time.Duration
		for range 3 {
			o, e, err := fastExport(ctx, d.db, keys, d.dl(), analysts[0], exportBody, *format, start, end)
			if err != nil {
				return err
			}
			if ours == 0 || o < ours {
				ours = o
			}
			if engine == 0 || e < engine {
				engine = e
			}
		}
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.2f\t\t%s\t\n", float64(exported)/ours.Seconds(), float64(exported)/engine.Seconds(), engine.Seconds()/ours.Seconds(), d.name)
	}
	return tw.Flush()
}

func newKey(ctx context.Context, keys *auth.Store, tenant, user, role string) (string, error) {
	_, k, err := keys.Create(ctx, auth.NewKey{Tenant: tenant, User: user, Role: role})
	return k, err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// latencies are one probe's timings; failed counts answers that were not
// 200 or took longer than the timeout.
type latencies struct {
	lat    []time.Duration
	failed int
}

func (l *latencies) p(q int) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	s := slices.Clone(l.lat)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)]
}

func (l *latencies) max() time.Duration { return l.p(100) }

type slowResult struct {
	stats, ready latencies
	refused      int
}

// benchServer serves the API over db on a loopback port.
func benchServer(db *store.Embedded, keys *auth.Store, dl api.DownloadLimits) (*api.Server, error) {
	srv := api.New(api.Config{Addr: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(),
		map[string]api.Check{"store": db.Ping})
	srv.MountAnalytics(&api.Analytics{Query: query.New(db, query.Limits{}), Keys: keys, Downloads: dl,
		ExportMaxRows: 100_000_000, Thresholds: query.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second}})
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	go srv.Serve()
	return srv, nil
}

func runSlowExports(ctx context.Context, db *store.Embedded, keys *auth.Store, dl api.DownloadLimits, k int, analysts []string,
	reader, exportBody string, rate int, measure, timeout time.Duration) (slowResult, error) {
	var res slowResult
	srv, err := benchServer(db, keys, dl)
	if err != nil {
		return res, err
	}
	defer srv.Shutdown()
	addr := srv.Addr()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i := range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if slowDownload(addr, analysts[i], exportBody, rate, stop) == http.StatusTooManyRequests {
				refused.Add(1)
			}
		}()
	}
	time.Sleep(3 * time.Second) // the downloads get going
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	probe := func(l *latencies, url, key string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		t0 := time.Now()
		r, err := client.Do(req)
		d := time.Since(t0)
		if err == nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		if err != nil || r.StatusCode != http.StatusOK {
			l.failed++
			d = max(d, timeout)
		}
		l.lat = append(l.lat, d)
	}
	for deadline := time.Now().Add(measure); time.Now().Before(deadline); {
		probe(&res.stats, "http://"+addr+api.BasePath+"/stats", reader)
		probe(&res.ready, "http://"+addr+"/readyz", "")
	}
	close(stop)
	wg.Wait()
	res.refused = int(refused.Load())
	return res, nil
}

// slowDownload posts an export and reads its answer at rate bytes a
// second until stop; it returns the status.
func slowDownload(addr, key, body string, rate int, stop <-chan struct{}) int {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(16 << 10) // a small window, as on a slow link
	}
	fmt.Fprintf(conn, "POST %s/export HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		api.BasePath, key, len(body), body)
	res, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		return 0
	}
	if res.StatusCode != http.StatusOK {
		return res.StatusCode
	}
	buf := make([]byte, 1024)
	tick := time.NewTicker(time.Second * time.Duration(len(buf)) / time.Duration(rate))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return res.StatusCode
		case <-tick.C:
		}
		if _, err := res.Body.Read(buf); err != nil {
			return res.StatusCode
		}
	}
}

// fastExport times one export read as fast as loopback allows, and the
// engine writing the same rows in the same format.
func fastExport(ctx context.Context, db *store.Embedded, keys *auth.Store, dl api.DownloadLimits, key, body, format string, start, end time.Time) (ours, engine time.Duration, err error) {
	srv, err := benchServer(db, keys, dl)
	if err != nil {
		return 0, 0, err
	}
	defer srv.Shutdown()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.Addr()+api.BasePath+"/export", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	// Uncompressed, as the engine writes it (Go's client would ask for
	// gzip on its own).
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t0 := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	ours = time.Since(t0)
	if err != nil || res.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("bench slow-exports: fast export: %d %v", res.StatusCode, err)
	}
	svc := query.New(db, query.Limits{})
	e, err := svc.PrepareExport(ctx, query.ExportRequest{Scope: query.Scope{Tenant: "tenant-1"},
		Range: query.Range{Start: start, End: end, Loc: time.UTC}, Dataset: query.DatasetEvents, Format: query.Format(format)})
	if err != nil {
		return 0, 0, err
	}
	t1 := time.Now()
	if err := e.WriteEngineOutput(ctx, io.Discard); err != nil {
		return 0, 0, err
	}
	return ours, time.Since(t1), nil
}
