package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/api"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
)

// benchQuery loads raw records through the bulk path and measures the
// analytics routes (in process, through their HTTP handlers) and exports
// against the engine's own output speed.
func benchQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.Int("rows", 10_000_000, "raw records to load")
	days := fs.Int("days", 30, "days of traffic, ending now")
	tenants := fs.Int("tenants", 10, "tenants")
	users := fs.Int("users", 500, "users per tenant")
	endpoints := fs.Int("endpoints", 50, "endpoints")
	iters := fs.Int("iterations", 200, "timed calls per route")
	exportRows := fs.Int("export-rows", 10_000_000, "rows per timed export (at most --rows)")
	formats := fs.String("formats", "arrow,csv,ndjson,json", "export formats to time")
	spool := fs.Bool("spool", true, "exports go through the spool as serve runs them; false streams them straight from the engine")
	dir := fs.String("data-dir", "", "engine data directory; kept and reused when it already holds --rows records (default: a temporary one)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	db, done, err := openBenchStore(ctx, dir, 4)
	if err != nil {
		return err
	}
	defer done()
	end := time.Now().UTC().Truncate(time.Minute)
	have, err := store.QueryUint64(ctx, db, "SELECT count() FROM usage_events")
	if err != nil {
		return err
	}
	if have != uint64(*rows) {
		if have > 0 {
			return fmt.Errorf("bench query: %s holds %d records, not %d: use another --data-dir", *dir, have, *rows)
		}
		g := ingest.GeneratorConfig{Seed: 5, Tenants: *tenants, Users: *users, Endpoints: *endpoints, Count: *rows,
			Start: end.Add(-time.Duration(*days) * 24 * time.Hour), Span: time.Duration(*days) * 24 * time.Hour}
		t0 := time.Now()
		if err := loadGenerated(ctx, db, g, stderr); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "loaded %d records in %.1f s (%.0f rows/s, with every rollup)\n", *rows, time.Since(t0).Seconds(), float64(*rows)/time.Since(t0).Seconds())
	} else {
		// Reused data ends where it was loaded.
		last, err := store.QueryUint64(ctx, db, "SELECT toUnixTimestamp(max(event_time)) FROM usage_events")
		if err != nil {
			return err
		}
		end = time.Unix(int64(last), 0).UTC().Truncate(time.Minute).Add(time.Minute)
	}
	// Health reads the five minutes before the clock: put the clock where
	// the data ends.
	clock := func() time.Time { return end.Add(30 * time.Second) }

	const adminKey = "bench-admin-key-0123456789"
	keys := auth.NewStore(db, adminKey)
	svc := query.New(db, query.Limits{})
	svc.SetClock(clock)
	svc.SetDimensions(benchDims)
	srv := api.New(api.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	var dl api.DownloadLimits
	if *spool {
		dl.SpoolDir = filepath.Join(*dir, "export-spool")
	}
	srv.MountAnalytics(&api.Analytics{Query: svc, Keys: keys, Now: clock, ExportMaxRows: uint64(*rows) + 1,
		Thresholds: query.Thresholds{Degraded: 10, Unhealthy: 25, Slow: 3 * time.Second},
		Downloads:  dl})
	h := srv.Echo()

	send := func(method, target, key string, body any) (int, []byte) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req := httptest.NewRequest(method, target, rd)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes()
	}
	// The busiest user of the first tenant, with a key of its own.
	monthAgo := end.AddDate(0, 0, -30)
	code, body := send("GET", api.BasePath+"/top-users?limit=1&tenantId=tenant-1&startDate="+monthAgo.Format("2006-01-02"), adminKey, nil)
	var top api.TopUsersResponse
	if err := json.Unmarshal(body, &top); err != nil || code != 200 || len(top.Users) == 0 {
		return fmt.Errorf("bench query: top users: %d %s", code, body)
	}
	user := top.Users[0]
	_, userKey, err := keys.Create(ctx, auth.NewKey{Tenant: user.Tenant, User: user.User, Role: auth.RoleUser})
	if err != nil {
		return err
	}
	_, tenantKey, err := keys.Create(ctx, auth.NewKey{Tenant: user.Tenant, User: "bench-admin", Role: auth.RoleAdmin})
	if err != nil {
		return err
	}
	topEndpoint := "/api/users"
	from, to := monthAgo.Format("2006-01-02"), end.Format("2006-01-02")
	cases := []struct {
		name, method, target, key string
		body                      any
	}{
		{"time-series, 30 days hourly, one user", "POST", "/time-series", userKey,
			map[string]any{"startDate": from, "endDate": to, "granularity": "hour", "metrics": []string{"requests", "errors", "averageResponseTime"}}},
		{"time-series, 30 days daily, a tenant by endpoint", "POST", "/time-series", tenantKey,
			map[string]any{"startDate": from, "endDate": to, "granularity": "day", "groupBy": "endpoint", "metrics": []string{"requests", "p95ResponseTime"}}},
		{"time-series, 30 days daily, a tenant by region (dimension_hourly)", "POST", "/time-series", tenantKey,
			map[string]any{"startDate": from, "endDate": to, "granularity": "day", "groupBy": "dimensions.region", "metrics": []string{"requests", "errors", "cost"}}},
		{"time-series, 30 days daily, a tenant by region and method (raw)", "POST", "/time-series", tenantKey,
			map[string]any{"startDate": from, "endDate": to, "granularity": "day", "groupBy": []string{"dimensions.region", "method"}, "metrics": []string{"requests", "errors", "cost"}}},
		{"time-series, 30 days hourly, one user by region (dimension_hourly)", "POST", "/time-series", userKey,
			map[string]any{"startDate": from, "endDate": to, "granularity": "hour", "groupBy": "dimensions.region", "metrics": []string{"requests"}}},
		{"stats, 30 days, one user (percentiles from raw)", "GET", "/stats?startDate=" + from + "&endDate=" + to, userKey, nil},
		{"stats, 30 days, a tenant", "GET", "/stats?startDate=" + from + "&endDate=" + to, tenantKey, nil},
		{"top-users, one month, every tenant", "GET", "/top-users?limit=10&startDate=" + from + "&endDate=" + to, adminKey, nil},
		{"top-users, one month, a tenant", "GET", "/top-users?limit=10&startDate=" + from + "&endDate=" + to, tenantKey, nil},
		{"endpoint analytics, 30 days, a tenant", "GET", "/endpoints/" + url.PathEscape(topEndpoint) + "/analytics?startDate=" + from + "&endDate=" + to, tenantKey, nil},
		{"endpoint analytics, 30 days, one user", "GET", "/endpoints/" + url.PathEscape(topEndpoint) + "/analytics?startDate=" + from + "&endDate=" + to, userKey, nil},
		{"health, every tenant", "GET", "/health", adminKey, nil},
		{"health, anonymous", "GET", "/health", "", nil},
	}
	fmt.Fprintf(stdout, "Query benchmark: %d raw records over %d days (%d tenants × %d users × %d endpoints), engine %s, %d CPUs, %d calls per route\n\n",
		*rows, *days, *tenants, *users, *endpoints, db.EngineVersion(), runtime.NumCPU(), *iters)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "p50 ms\tp99 ms\tmax ms\t\troute\t")
	for _, c := range cases {
		for range 5 { // warm up
			if code, body := send(c.method, api.BasePath+c.target, c.key, c.body); code != 200 {
				return fmt.Errorf("bench query: %s: %d %s", c.name, code, body)
			}
		}
		lat := make([]time.Duration, *iters)
		for i := range lat {
			t0 := time.Now()
			send(c.method, api.BasePath+c.target, c.key, c.body)
			lat[i] = time.Since(t0)
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Fprintf(tw, "%.2f\t%.2f\t%.2f\t\t%s\t\n", ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(lat[len(lat)-1]), c.name)
	}
	tw.Flush()

	// Exports: the most recent days holding about --export-rows rows.
	n := min(*exportRows, *rows)
	start, err := exportStart(ctx, db, n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nExports of the events since %s (%s), global admin, to a discarding client:\n\n", start.Format(time.RFC3339), "about "+strconv.Itoa(n)+" rows")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rows/s\tMB/s\tseconds\tengine rows/s\tratio\tpeak RSS growth\t\tformat\t")
	for _, f := range strings.Split(*formats, ",") {
		req := map[string]any{"format": f, "startDate": start.Format(time.RFC3339), "endDate": end.Add(time.Hour).Format(time.RFC3339)}
		runtime.GC()
		rssBefore := rss()
		var peak atomic.Uint64
		stop := sampleRSS(&peak)
		w := &discard{header: http.Header{}}
		raw, _ := json.Marshal(req)
		hreq := httptest.NewRequest("POST", api.BasePath+"/export", bytes.NewReader(raw))
		hreq.Header.Set("Authorization", "Bearer "+adminKey)
		hreq.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		h.ServeHTTP(w, hreq)
		elapsed := time.Since(t0)
		stop()
		if w.status != 200 {
			return fmt.Errorf("bench query: export %s: %d", f, w.status)
		}
		got, _ := strconv.Atoi(w.header.Get("X-Export-Rows"))

		// The bound: the engine writing the same query in the same format.
		p, err := svc.PrepareExport(ctx, query.ExportRequest{Range: query.Range{Start: start, End: end.Add(time.Hour), Loc: time.UTC},
			Dataset: query.DatasetEvents, Format: query.Format(f)})
		if err != nil {
			return err
		}
		eng := &discard{header: http.Header{}}
		t1 := time.Now()
		if err := p.WriteEngineOutput(ctx, eng); err != nil {
			return err
		}
		engElapsed := time.Since(t1)
		ours, bound := float64(got)/elapsed.Seconds(), float64(got)/engElapsed.Seconds()
		growth := int64(peak.Load()) - int64(rssBefore)
		fmt.Fprintf(tw, "%.0f\t%.0f\t%.2f\t%.0f\t%.2f\t%d MB\t\t%s\t\n", ours, float64(w.n)/elapsed.Seconds()/1e6, elapsed.Seconds(), bound, ours/bound, max(0, growth)>>20, f)
	}
	return tw.Flush()
}

// benchDims is the dimension the loaded records carry: the generator's
// region (in 30 % of them).
var benchDims = []dims.Spec{{Name: "region", Type: dims.TypeString, Cap: 10}}

// loadGenerated bulk-loads generated records in batches of a million.
func loadGenerated(ctx context.Context, db store.Driver, g ingest.GeneratorConfig, progress io.Writer) error {
	gen := ingest.NewGenerator(g)
	folder := dims.NewFolder(benchDims, nil)
	const batch = 1_000_000
	var cols ingest.UsageColumns
	cols.Grow(batch)
	var r ingest.Record
	k := 0
	flush := func() error {
		if cols.Len() == 0 {
			return nil
		}
		err := db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{DedupToken: fmt.Sprintf("bench-query:%d", k)})
		cols.Reset()
		k++
		if k%10 == 0 {
			fmt.Fprintf(progress, "  %d M records loaded\n", k)
		}
		return err
	}
	for gen.Next(&r) {
		if r.Type != ingest.TypeAPICall {
			continue
		}
		r.Dimensions = folder.Fold(r.TenantID, r.Metadata)
		cols.Append(&r)
		if cols.Len() == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// exportStart finds the hour from which the newest records number about n.
func exportStart(ctx context.Context, db store.Driver, n int) (time.Time, error) {
	rows, err := db.Query(ctx, `SELECT toStartOfHour(event_time) AS h, count() FROM usage_events GROUP BY h ORDER BY h DESC`)
	if err != nil {
		return time.Time{}, err
	}
	defer rows.Close()
	total := 0
	var at time.Time
	for rows.Next() {
		var c int
		if err := rows.Scan(&at, &c); err != nil {
			return at, err
		}
		if total += c; total >= n {
			break
		}
	}
	return at.UTC(), rows.Err()
}

// discard is a ResponseWriter that counts and drops the body.
type discard struct {
	header http.Header
	status int
	n      int64
}

func (d *discard) Header() http.Header { return d.header }
func (d *discard) WriteHeader(s int) {
	if d.status == 0 {
		d.status = s
	}
}
func (d *discard) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.status = 200
	}
	d.n += int64(len(b))
	return len(b), nil
}

// rss is the process' resident set, in bytes.
func rss() uint64 {
	b, err := os.ReadFile(filepath.Join("/proc", "self", "statm"))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// sampleRSS records the peak RSS every 5 ms until stopped.
func sampleRSS(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if r := rss(); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}
