package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apimeter/apimeter/api"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/plans"
)

// benchDecide measures the decision API: POST /limits/check over
// loopback with keep-alive clients, p50/p99 and decisions a second, and
// the same decisions made in process (the limiter's own bound), with
// counters in memory or in Redis.
func benchDecide(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench decide", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clients := fs.Int("clients", 16, "concurrent clients")
	dur := fs.Duration("duration", 10*time.Second, "how long each measurement runs")
	users := fs.Int("users", 10_000, "distinct users the calls are spread over")
	redisURL := fs.String("redis", "", "count in this Redis (redis://…) instead of in memory")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the loopback run to this file")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	// Limits no call reaches, so every call is counted and allowed: the
	// hourly window, the quota and one endpoint window, as a real plan.
	benchPlans, err := plans.ParsePlans([]byte(`defaultPlan: bench
plans:
  - name: bench
    hourlyRequests: 1000000000
    monthlyRequests: 1000000000000
    endpoints:
      - {path: /api/orders/:id, limit: 1000000000, window: 1m}
`))
	if err != nil {
		return err
	}
	backend := limits.Backend(limits.NewMemory(0))
	where := "memory"
	if *redisURL != "" {
		rc, err := limits.DialRedis(ctx, *redisURL)
		if err != nil {
			return err
		}
		defer rc.Close()
		backend, where = limits.NewRedis(rc, "apimeter-bench:"), "redis"
	}
	secret, _ := limits.NewDecisions(limits.NewSecret())
	lim := limits.New(limits.Config{Backend: backend, Plans: benchPlans, Decisions: secret})

	// In process: the limiter's bound.
	inProc := runClients(ctx, *clients, *dur, func(i int, n uint64) error {
		d, err := lim.Check(ctx, limits.Request{Tenant: "bench", User: "user-" + strconv.Itoa(int(n)%*users), Method: "GET", Route: "/api/orders/:id", Cost: 1})
		if err == nil && !d.Allowed {
			err = fmt.Errorf("refused")
		}
		return err
	})

	// Over loopback: the decision API as a service calls it.
	const key = "am_bench-decide-admin-key"
	srv := api.New(api.Config{Addr: "127.0.0.1:0"}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), nil)
	srv.MountDecisions(&api.DecisionsAPI{Limits: lim, Keys: auth.NewStore(nil, key)})
	if err := srv.Listen(); err != nil {
		return err
	}
	go srv.Serve()
	defer srv.Shutdown()
	url := "http://" + srv.Addr() + api.BasePath + "/limits/check"
	tr := &http.Transport{MaxIdleConnsPerHost: *clients, DialContext: (&net.Dialer{}).DialContext}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	overHTTP := runClients(ctx, *clients, *dur, func(i int, n uint64) error {
		body := `{"tenantId":"bench","userId":"user-` + strconv.Itoa(int(n)%*users) + `","endpoint":"/api/orders/` + strconv.Itoa(int(n)%997) + `","method":"GET"}`
		req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
	if *cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Fprintf(stdout, "decisions (%s counters, %d clients, %d users, %s each)\n", where, *clients, *users, *dur)
	fmt.Fprintf(stdout, "  %-28s %12s %10s %10s %8s\n", "", "decisions/s", "p50", "p99", "errors")
	for _, r := range []struct {
		name string
		res  clientRun
	}{{"in process (limiter bound)", inProc}, {"POST /limits/check", overHTTP}} {
		fmt.Fprintf(stdout, "  %-28s %12.0f %10s %10s %8d\n", r.name, r.res.rate, r.res.p50.Round(time.Microsecond), r.res.p99.Round(time.Microsecond), r.res.errors)
	}
	if inProc.rate > 0 {
		fmt.Fprintf(stdout, "  over loopback / in process: %.2f\n", overHTTP.rate/inProc.rate)
	}
	if overHTTP.errors > 0 {
		return fmt.Errorf("bench decide: %d calls failed: %v", overHTTP.errors, overHTTP.firstErr)
	}
	return nil
}

type clientRun struct {
	rate     float64
	p50, p99 time.Duration
	errors   uint64
	firstErr error
}

// runClients runs call from n goroutines for d, timing each call.
func runClients(ctx context.Context, n int, d time.Duration, call func(client int, seq uint64) error) clientRun {
	var seq, errs atomic.Uint64
	var mu sync.Mutex
	var firstErr error
	lat := make([][]time.Duration, n)
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(stop) {
				t := time.Now()
				if err := call(c, seq.Add(1)); err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					continue
				}
				lat[c] = append(lat[c], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := clientRun{errors: errs.Load(), firstErr: firstErr}
	if len(all) > 0 {
		r.rate = float64(len(all)) / elapsed.Seconds()
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}
