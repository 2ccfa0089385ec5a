package limits

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/apimeter/apimeter/ingest/producer"
	"github.com/apimeter/apimeter/plans"
)

// The limits benchmarks: `make bench` runs them; BENCHMARKS.md has the
// numbers.

const benchKeys = 100_000

func benchUsers() []string {
	users := make([]string, benchKeys)
	for i := range users {
		users[i] = fmt.Sprintf("user-%06d", i)
	}
	return users
}

// BenchmarkMemoryDecision is one in-memory decision (an hourly window) on
// one of 100,000 keys, from every core at once.
func BenchmarkMemoryDecision(b *testing.B) {
	m := NewMemory(0)
	users := benchUsers()
	now := time.Now()
	for _, u := range users { // every key in use before the clock starts
		st := make([]State, 1)
		_, _ = m.Take(context.Background(), now, []Check{{Key: Key{Policy: "hourly", Tenant: "acme", User: u}, Limit: 1 << 40, Window: time.Hour}}, 1, st)
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		checks := [1]Check{{Key: Key{Policy: "hourly", Tenant: "acme"}, Limit: 1 << 40, Window: time.Hour}}
		var states [1]State
		for pb.Next() {
			checks[0].Key.User = users[r.IntN(benchKeys)]
			if _, err := m.Take(context.Background(), now, checks[:], 1, states[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMemoryDecisionWithQuota is a decision of the hourly window
// and the quota together, as the middleware's Enforce takes them.
func BenchmarkMemoryDecisionWithQuota(b *testing.B) {
	m := NewMemory(0)
	users := benchUsers()
	now := time.Now()
	start, end := plans.BillingPeriod(now, 1)
	for _, u := range users {
		_ = m.Raise(context.Background(), Key{Policy: "quota", Tenant: "acme", User: u}, start, end, 0)
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		checks := [2]Check{
			{Key: Key{Policy: "hourly", Tenant: "acme"}, Limit: 1 << 40, Window: time.Hour},
			{Key: Key{Policy: "quota", Tenant: "acme"}, Limit: 1 << 40, PeriodStart: start, PeriodEnd: end},
		}
		var states [2]State
		for pb.Next() {
			u := users[r.IntN(benchKeys)]
			checks[0].Key.User, checks[1].Key.User = u, u
			if _, err := m.Take(context.Background(), now, checks[:], 1, states[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkNaiveDecision is the baseline: a token bucket per key
// (golang.org/x/time/rate) in one map behind one lock.
func BenchmarkNaiveDecision(b *testing.B) {
	var mu sync.Mutex
	buckets := map[string]*rate.Limiter{}
	users := benchUsers()
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 7))
		for pb.Next() {
			k := "acme|hourly|" + users[r.IntN(benchKeys)]
			mu.Lock()
			l := buckets[k]
			if l == nil {
				l = rate.NewLimiter(rate.Limit(1<<30), 1<<30)
				buckets[k] = l
			}
			mu.Unlock()
			l.Allow()
		}
	})
}

// benchApp is an echo app with one route answering a small JSON body,
// bare or behind tracking and limits.
func benchApp(b *testing.B, track producer.Tracker, lim *Limiter) *echo.Echo {
	e := echo.New()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc { // what an auth middleware does
		return func(c echo.Context) error {
			c.Set("tenantId", "acme")
			c.Set("userId", c.Request().Header.Get("X-User"))
			return next(c)
		}
	})
	if track != nil {
		e.Use(producer.TrackUsage(track, producer.MiddlewareConfig{}))
	}
	var mws []echo.MiddlewareFunc
	if lim != nil {
		mws = append(mws, lim.Middleware(MiddlewareConfig{}).Enforce())
	}
	e.GET("/api/things/:id", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, []byte(`{"id":"42","name":"thing"}`))
	}, mws...)
	return e
}

func benchLimiter() *Limiter {
	ps, err := plans.ParsePlans([]byte("defaultPlan: big\nplans:\n  - name: big\n    hourlyRequests: 1000000000\n    monthlyRequests: 1000000000\n"))
	if err != nil {
		panic(err)
	}
	return New(Config{Plans: ps})
}

// queueTracker does what Producer.Track does on a request's path — an
// id, the JSON encoding, a queue send — and drops the queue's content
// in the background: the Kafka client's batching and sending run beside
// requests, on a broker elsewhere, and are not what this measures.
type queueTracker struct{ q chan []byte }

func newQueueTracker(b *testing.B) *queueTracker {
	t := &queueTracker{q: make(chan []byte, 4096)}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.q:
			case <-done:
				return
			}
		}
	}()
	b.Cleanup(func() { close(done) })
	return t
}

func (t *queueTracker) Track(r producer.Record) {
	r.ID = producer.NewID()
	if r.Timestamp.IsZero() {
		r.Timestamp = time.Now()
	}
	data, err := r.AppendJSON(make([]byte, 0, 320))
	if err == nil {
		t.q <- data
	}
}

// BenchmarkMiddleware serves requests in process (no network): a bare
// handler, then with the limits, then with tracking and the limits.
// The differences are what the middleware costs a request.
func BenchmarkMiddleware(b *testing.B) {
	users := benchUsers()
	for _, v := range []struct {
		name  string
		track bool
		lim   bool
	}{{"bare", false, false}, {"limits", false, true}, {"track+limits", true, true}} {
		b.Run(v.name, func(b *testing.B) {
			var tr producer.Tracker
			if v.track {
				tr = newQueueTracker(b)
			}
			var lim *Limiter
			if v.lim {
				lim = benchLimiter()
			}
			e := benchApp(b, tr, lim)
			if lim != nil { // every request below must be admitted
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, httptest.NewRequest("GET", "/api/things/42", nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
			reqs := make([]*http.Request, 1024)
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", "/api/things/42", nil)
				reqs[i].Header.Set("X-User", users[i*97%benchKeys])
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				clear(w.h)
				e.ServeHTTP(w, reqs[i%len(reqs)])
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

const loopUsers = 10_000

// BenchmarkMiddlewareLoopback measures throughput over HTTP on loopback
// with keep-alive clients, bare and with tracking and limits, in
// alternating rounds; it reports both rates and the loss.
func BenchmarkMiddlewareLoopback(b *testing.B) {
	users := benchUsers()
	serve := func(h http.Handler) (string, func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		s := &http.Server{Handler: h}
		go s.Serve(ln)
		return "http://" + ln.Addr().String(), func() { s.Close() }
	}
	bareURL, stopBare := serve(benchApp(b, nil, nil))
	defer stopBare()
	limURL, stopLim := serve(benchApp(b, nil, benchLimiter()))
	defer stopLim()
	// The same headers written by a handler with no limiter: what the
	// contract's ten header lines cost a server and a client.
	hdrApp := benchApp(b, nil, nil)
	hdrApp.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			for _, k := range []string{HeaderLimit, HeaderRemaining, HeaderReset, HeaderQuotaLimit, HeaderQuotaRemaining, HeaderQuotaReset} {
				h[k] = []string{"2026-11-27T06:17:00Z"}
			}
			h[HeaderPolicy] = []string{`"hourly";q=100;w=3600`, `"quota";q=1000;w=2592000`}
			h[HeaderRateLimit] = []string{`"hourly";r=99;t=3623`, `"quota";r=999;t=326603`}
			return next(c)
		}
	})
	hdrURL, stopHdr := serve(hdrApp)
	defer stopHdr()
	fullURL, stopFull := serve(benchApp(b, newQueueTracker(b), benchLimiter()))
	defer stopFull()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	round := func(url string, d time.Duration) float64 {
		var n atomic.Int64
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; time.Now().Before(deadline); i += 8 {
					req, _ := http.NewRequest("GET", url+"/api/things/42", nil)
					req.Header.Set("X-User", users[i%loopUsers])
					res, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(n.Load()) / d.Seconds()
	}
	urls := []string{bareURL, hdrURL, limURL, fullURL}
	// Warm up: every user's counters exist (a user's quota is seeded once
	// a period; that is not the steady state measured here).
	for _, u := range urls {
		for i := range loopUsers {
			req, _ := http.NewRequest("GET", u+"/api/things/42", nil)
			req.Header.Set("X-User", users[i])
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	rates := make([][]float64, len(urls))
	for range 5 {
		for i, u := range urls {
			rates[i] = append(rates[i], round(u, time.Second))
		}
	}
	median := func(x []float64) float64 { slices.Sort(x); return x[len(x)/2] }
	bare, hdr, lim, full := median(rates[0]), median(rates[1]), median(rates[2]), median(rates[3])
	b.ReportMetric(bare, "bare-req/s")
	b.ReportMetric(hdr, "headers-req/s")
	b.ReportMetric(100*(1-hdr/bare), "headers-loss-%")
	b.ReportMetric(lim, "limits-req/s")
	b.ReportMetric(full, "track+limits-req/s")
	b.ReportMetric(100*(1-lim/bare), "limits-loss-%")
	b.ReportMetric(100*(1-full/bare), "full-loss-%")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRedisDecision is one decision (hourly window and quota) on a
// Redis on loopback, one at a time; it reports the p50 and p99 latency.
func BenchmarkRedisDecision(b *testing.B) {
	r := NewRedis(dialTest(b, sharedRedisURL(b)), uniquePrefix(b))
	users := benchUsers()
	now := time.Now()
	start, end := plans.BillingPeriod(now, 1)
	for _, u := range users[:1000] {
		_ = r.Raise(context.Background(), Key{Policy: "quota", Tenant: "acme", User: u}, start, end, 0)
	}
	lat := make([]time.Duration, 0, b.N)
	checks := []Check{
		{Key: Key{Policy: "hourly", Tenant: "acme"}, Limit: 1 << 40, Window: time.Hour},
		{Key: Key{Policy: "quota", Tenant: "acme"}, Limit: 1 << 40, PeriodStart: start, PeriodEnd: end},
	}
	states := make([]State, 2)
	b.ResetTimer()
	for i := range b.N {
		u := users[i%1000]
		checks[0].Key.User, checks[1].Key.User = u, u
		t := time.Now()
		if _, err := r.Take(context.Background(), t, checks, 1, states); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkMapFloor is the floor under BenchmarkMemoryDecision on this
// machine: for one of the same 100,000 keys, a shard lock, a map lookup
// and one counter of a 61-slot ring bumped — no limit logic at all.
func BenchmarkMapFloor(b *testing.B) {
	type entry struct {
		key  string
		head int64
		sum  uint64
		ring [ringSlots]uint32
	}
	var shards [memShards]struct {
		mu sync.Mutex
		m  map[uint64]*entry
		_  [48]byte
	}
	seed := maphash.MakeSeed()
	for i := range shards {
		shards[i].m = map[uint64]*entry{}
	}
	users := benchUsers()
	for _, u := range users {
		h := maphash.String(seed, u)
		shards[h%memShards].m[h] = &entry{key: u}
	}
	var s atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(s.Add(1), 7))
		for pb.Next() {
			u := users[r.IntN(benchKeys)]
			h := maphash.String(seed, u)
			sh := &shards[h%memShards]
			sh.mu.Lock()
			if e := sh.m[h]; e.key == u {
				e.ring[h%ringSlots]++
				e.sum++
			}
			sh.mu.Unlock()
		}
	})
}
