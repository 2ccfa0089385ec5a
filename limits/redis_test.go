package limits

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/plans"
)

// redisServer is a private redis-server the test can stop and start.
type redisServer struct {
	t       testing.TB
	bin     string
	dir     string
	durable bool // append-only file, fsync on every write
	port    int
	cmd     *exec.Cmd
}

// startRedis starts a private redis-server on a free port (skipping the
// test, and saying so, when the binary is missing), or uses
// REDIS_TEST_URL when a test only needs a server and not its restarts.
func startRedis(t testing.TB) *redisServer { return startRedisServer(t, false) }

// startDurableRedis is startRedis with an append-only file synced on
// every write, so counts survive a restart of the server.
func startDurableRedis(t testing.TB) *redisServer { return startRedisServer(t, true) }

func startRedisServer(t testing.TB, durable bool) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("SKIPPED: redis-server is not installed (CI installs it; apt-get install redis-server to run the Redis tests here)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{t: t, bin: bin, dir: t.TempDir(), port: port, durable: durable}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) start() {
	s.t.Helper()
	args := []string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--appendonly", "no"}
	if s.durable {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	}
	s.cmd = exec.Command(s.bin, args...)
	log, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(s.t, err)
	defer log.Close()
	s.cmd.Stdout, s.cmd.Stderr = log, log
	require.NoError(s.t, s.cmd.Start())
	c := redis.NewClient(&redis.Options{Addr: s.addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		require.True(s.t, time.Now().Before(deadline), "redis-server did not start")
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }
func (s *redisServer) url() string  { return "redis://" + s.addr() + "/0" }

// sharedRedisURL is REDIS_TEST_URL, or a private server.
func sharedRedisURL(t testing.TB) string {
	if u := os.Getenv("REDIS_TEST_URL"); u != "" {
		return u
	}
	return startRedis(t).url()
}

func dialTest(t testing.TB, url string) *redis.Client {
	c, err := DialRedis(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// uniquePrefix keeps tests on a shared server apart.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("test:%s:%d:", filepath.Base(t.Name()), time.Now().UnixNano())
}

func TestRedisTwoLimitersAdmitExactlyTheLimit(t *testing.T) {
	url := sharedRedisURL(t)
	prefix := uniquePrefix(t)
	// Two replicas: each its own client and backend, one Redis.
	a, b := NewRedis(dialTest(t, url), prefix), NewRedis(dialTest(t, url), prefix)
	c := hourly("hammered", 500)
	start, end := plans.BillingPeriod(time.Now(), 1)
	q := Check{Key: Key{Policy: "quota", Tenant: "t", User: "hammered"}, Limit: 700, PeriodStart: start, PeriodEnd: end}
	require.NoError(t, a.Raise(context.Background(), q.Key, start, end, 250))
	var mu sync.Mutex
	var errs []error
	decide := func(be Backend) func() bool {
		return func() bool {
			st := make([]State, 2)
			ok, err := be.Take(context.Background(), time.Now(), []Check{c, q}, 1, st)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return ok
		}
	}
	var na, nb int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); na = hammer(16, 60, decide(a)) }()
	go func() { defer wg.Done(); nb = hammer(16, 60, decide(b)) }()
	wg.Wait()
	require.Empty(t, errs)
	// The quota had 450 left, the window 500: 450 in all, split between
	// the two however the race went.
	require.EqualValues(t, 450, na+nb, "a %d + b %d", na, nb)
	require.Positive(t, na)
	require.Positive(t, nb)
	_, st := take(t, a, time.Now(), c)
	require.EqualValues(t, 451, st[0].Used)
}

func TestRedisWindowEdge(t *testing.T) {
	r := NewRedis(dialTest(t, sharedRedisURL(t)), uniquePrefix(t))
	r.ClientClock = true
	windowEdge(t, r, "edge")
}

func TestRedisQuotaSeedAndRaise(t *testing.T) {
	r := NewRedis(dialTest(t, sharedRedisURL(t)), uniquePrefix(t))
	r.ClientClock = true
	quotaContract(t, r)
}

// TestRedisNoticesOnceAcrossReplicas: two replicas share Redis; a level
// is claimed by exactly one of them, a higher level later again by one,
// and a Redis that lost its keys asks the level store before claiming.
func TestRedisNoticesOnceAcrossReplicas(t *testing.T) {
	url := sharedRedisURL(t)
	prefix := uniquePrefix(t)
	store := &levels{m: map[string]int{}}
	a := NewRedisNotices(dialTest(t, url), prefix, store)
	b := NewRedisNotices(dialTest(t, url), prefix, store)
	period := time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC)
	claim := func(n Notices, level int) bool {
		ok, err := n.Claim(context.Background(), "acme", "ivy", period, level)
		require.NoError(t, err)
		return ok
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := Notices(a)
			if i%2 == 1 {
				n = b
			}
			if claim(n, 80) {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, wins.Load())
	require.False(t, claim(b, 80))
	require.True(t, claim(b, 95), "a higher level")
	require.False(t, claim(a, 90), "a lower level than one sent")
	// Redis forgets; the store remembers 95.
	c := dialTest(t, url)
	require.NoError(t, c.Del(context.Background(), prefix+"{acme|ivy}:notice:20280201").Err())
	require.False(t, claim(a, 95))
	require.True(t, claim(a, 100))
}
