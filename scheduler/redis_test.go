package scheduler

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// redisOptions returns REDIS_TEST_URL's options, or those of a private
// redis-server started for the test on a free port (the test is skipped,
// and says so, when redis-server is not installed).
func redisOptions(t *testing.T) *redis.Options {
	t.Helper()
	if u := os.Getenv("REDIS_TEST_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		require.NoError(t, err)
		return opt
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("SKIPPED: redis-server is not installed and REDIS_TEST_URL is not set (apt-get install redis-server to run the Redis locker tests)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "redis.log"))
	require.NoError(t, err)
	defer logFile.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	opt := &redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)}
	c := redis.NewClient(opt)
	defer c.Close()
	require.Eventually(t, func() bool { return c.Ping(context.Background()).Err() == nil }, 10*time.Second, 20*time.Millisecond,
		"redis-server did not start (see %s)", logFile.Name())
	return opt
}

func newRedisClient(t *testing.T, opt *redis.Options) *redis.Client {
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix keeps tests apart on a shared server.
func testPrefix(t *testing.T) string {
	return fmt.Sprintf("test:%s:%d:", t.Name(), time.Now().UnixNano())
}

func TestRedisLocker(t *testing.T) {
	ctx := context.Background()
	opt := redisOptions(t)
	rdb := newRedisClient(t, opt)
	prefix := testPrefix(t)

	t.Run("one holder; released only after the hold", func(t *testing.T) {
		l := NewRedisLocker(rdb, prefix, time.Minute)
		l.Hold = 300 * time.Millisecond
		lock, err := l.Lock(ctx, "a@1")
		require.NoError(t, err)
		_, err = l.Lock(ctx, "a@1")
		require.ErrorIs(t, err, ErrLocked)
		other, err := l.Lock(ctx, "a@2")
		require.NoError(t, err, "another tick is another key")
		require.NoError(t, other.Unlock(ctx))

		// A fast run: the lock stays until the hold has passed.
		require.NoError(t, lock.Unlock(ctx))
		_, err = l.Lock(ctx, "a@1")
		require.ErrorIs(t, err, ErrLocked)
		left := rdb.PTTL(ctx, prefix+"lock:a@1").Val()
		require.Positive(t, left)
		require.LessOrEqual(t, left, 300*time.Millisecond)
		require.Eventually(t, func() bool {
			lk, err := l.Lock(ctx, "a@1")
			if err == nil {
				l.Hold = 0
				require.NoError(t, lk.Unlock(ctx))
				return true
			}
			return false
		}, 5*time.Second, 10*time.Millisecond)
	})

	t.Run("without a hold the key goes at once", func(t *testing.T) {
		l := NewRedisLocker(rdb, prefix, time.Minute)
		l.Hold = 0
		lock, err := l.Lock(ctx, "b")
		require.NoError(t, err)
		require.NoError(t, lock.Unlock(ctx))
		require.Zero(t, rdb.Exists(ctx, prefix+"lock:b").Val())
	})

	t.Run("a holder never releases another's lock", func(t *testing.T) {
		l := NewRedisLocker(rdb, prefix, 100*time.Millisecond)
		l.Hold = 0
		stale, err := l.Lock(ctx, "c")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := l.Lock(ctx, "c") // once the first one expired
			return err == nil
		}, 5*time.Second, 10*time.Millisecond)
		token := rdb.Get(ctx, prefix+"lock:c").Val()
		require.NotEmpty(t, token)
		require.NoError(t, stale.Unlock(ctx))
		require.Equal(t, token, rdb.Get(ctx, prefix+"lock:c").Val())
	})

	t.Run("defaults", func(t *testing.T) {
		l := NewRedisLocker(rdb, prefix, 0)
		require.Equal(t, 10*time.Minute, l.ttl)
		require.Equal(t, DefaultHold, l.Hold)
		require.Equal(t, 5*time.Second, NewRedisLocker(rdb, prefix, 5*time.Second).Hold)
	})
}

// observedLocker tells the test when a lock was released, the last thing
// gocron does for a run.
type observedLocker struct {
	inner    gocron.Locker
	released chan string
}

func (o *observedLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	l, err := o.inner.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	return observedLock{l, key, o.released}, nil
}

type observedLock struct {
	inner    gocron.Lock
	key      string
	released chan string
}

func (o observedLock) Unlock(ctx context.Context) error {
	err := o.inner.Unlock(ctx)
	o.released <- o.key
	return err
}

func (o *observedLocker) waitReleased(t *testing.T, key string) {
	t.Helper()
	select {
	case got := <-o.released:
		require.Equal(t, key, got)
	case <-time.After(waitFor):
		t.Fatalf("%s was not released", key)
	}
}

// TestReplicasRunEachTickOnce runs one job on three schedulers, each with
// its own Redis client and clock (2 s apart), sharing a run log. Each tick
// is fired on the replicas one after the other, each one's run over and
// its lock released before the next fires the same tick: the lagging
// replicas of a fast run. The replica firing first changes every tick.
func TestReplicasRunEachTickOnce(t *testing.T) {
	opt := redisOptions(t)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	const skew = 2 * time.Second
	const replicas, ticks = 3, 6

	type outcome struct {
		tick     time.Time
		replica  int
		ran      bool
		instance string
	}
	run := func(t *testing.T, hold time.Duration) []outcome {
		prefix := testPrefix(t)
		log := newChanLog()
		type replica struct {
			s      *Scheduler
			fc     *clockwork.FakeClock
			locker *observedLocker
		}
		var reps [replicas]replica
		for i := range reps {
			rdb := newRedisClient(t, opt)
			locker := NewRedisLocker(rdb, prefix, time.Minute)
			locker.Hold = hold
			observed := &observedLocker{inner: locker, released: make(chan string, 10)}
			// Timers fire a little after their time, as real ones do.
			fc := clockwork.NewFakeClockAt(t0.Add(late + time.Duration(i)*skew))
			s := newTestScheduler(t, Config{Clock: fc, Locker: observed, Runs: log, Instance: fmt.Sprintf("replica-%d", i)})
			require.NoError(t, s.Add(Job{Name: "health", Schedule: Every(time.Minute), Run: ok}))
			s.Start()
			reps[i] = replica{s: s, fc: fc, locker: observed}
		}
		check := newRedisClient(t, opt)
		var out []outcome
		for k := 1; k <= ticks; k++ {
			tick := t0.Add(time.Duration(k) * time.Minute)
			key := "health@" + tick.Format("2006-01-02T15:04:05Z")
			for n := range replicas {
				i := (k + n) % replicas
				rep := reps[i]
				waiters(t, rep.fc, 1)
				skipped := func(reason string) float64 {
					return testutil.ToFloat64(rep.s.m.skipped.WithLabelValues("health", reason))
				}
				locked, overlaps := skipped(SkipLocked), skipped(SkipOverlap)
				rep.fc.Advance(time.Minute)
				var o outcome
				require.Eventually(t, func() bool {
					select {
					case r := <-log.ch:
						require.Equal(t, tick, r.Start.Truncate(time.Minute))
						o = outcome{tick: tick, replica: i, ran: true, instance: r.Instance}
						return true
					default:
					}
					if skipped(SkipLocked) > locked {
						o = outcome{tick: tick, replica: i}
						return true
					}
					if n := skipped(SkipOverlap); n > overlaps {
						// gocron was still finishing this replica's last
						// tick (see fire): dispatch this one again.
						overlaps = n
						require.NoError(t, rep.s.entry("health").g.RunNow())
					}
					return false
				}, waitFor, time.Millisecond, "tick %s: replica %d neither ran nor was refused", tick, i)
				if o.ran {
					require.Equal(t, fmt.Sprintf("replica-%d", i), o.instance)
					// Released: kept for the hold only.
					rep.locker.waitReleased(t, key)
					require.LessOrEqual(t, check.PTTL(context.Background(), prefix+"lock:"+key).Val(), hold)
				}
				idle(t, rep.s, "health")
				out = append(out, o)
			}
		}
		return out
	}

	t.Run("held for the tick: one run per tick", func(t *testing.T) {
		out := run(t, DefaultHold)
		wins := map[int]int{}
		for j, o := range out {
			// Only the first replica to fire a tick runs it.
			require.Equal(t, j%replicas == 0, o.ran, "tick %s, replica %d", o.tick, o.replica)
			if o.ran {
				wins[o.replica]++
			}
		}
		require.Equal(t, map[int]int{0: 2, 1: 2, 2: 2}, wins)
	})

	t.Run("released at once: lagging replicas run the tick again", func(t *testing.T) {
		for _, o := range run(t, 0) {
			require.True(t, o.ran, "tick %s, replica %d", o.tick, o.replica)
		}
	})
}
