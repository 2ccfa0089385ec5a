package limits

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/plans"
)

var t0 = time.Date(2028, 2, 10, 9, 30, 0, 0, time.UTC)

func hourly(user string, limit uint64) Check {
	return Check{Key: Key{Policy: "hourly", Tenant: "t", User: user}, Limit: limit, Window: time.Hour}
}

// take is one decision of cost 1 on a backend.
func take(t testing.TB, b Backend, now time.Time, checks ...Check) (bool, []State) {
	t.Helper()
	st := make([]State, len(checks))
	ok, err := b.Take(context.Background(), now, checks, 1, st)
	require.NoError(t, err)
	return ok, st
}

// hammer sends n decisions from g goroutines and counts the admitted.
func hammer(g, n int, decide func() bool) int64 {
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if decide() {
					admitted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return admitted.Load()
}

func TestMemoryAdmitsExactlyTheLimitUnderConcurrency(t *testing.T) {
	m := NewMemory(0)
	c := hourly("u", 1000)
	q := Check{Key: Key{Policy: "quota", Tenant: "t", User: "u"}, Limit: 1500, PeriodStart: t0.Add(-time.Hour), PeriodEnd: t0.Add(time.Hour)}
	require.NoError(t, m.Raise(context.Background(), q.Key, q.PeriodStart, q.PeriodEnd, 700))
	// Two limits in one decision: the quota has 800 left, the window 1000.
	got := hammer(32, 200, func() bool {
		st := make([]State, 2)
		ok, err := m.Take(context.Background(), t0, []Check{c, q}, 1, st)
		return err == nil && ok
	})
	require.EqualValues(t, 800, got)
	_, st := take(t, m, t0, c)
	require.EqualValues(t, 801, st[0].Used, "refused decisions counted nothing against the window (800 and this one)")
}

func TestWindowEdgeHasNoDoubleSpend(t *testing.T) {
	for name, b := range map[string]Backend{"memory": NewMemory(0)} {
		t.Run(name, func(t *testing.T) { windowEdge(t, b, "edge") })
	}
}

// windowEdge spends a limit of 100 just before an hour ends and checks
// the next hour gives nothing back until an hour (plus the slot) has
// passed since the spend.
func windowEdge(t *testing.T, b Backend, user string) {
	c := hourly(user, 100)
	spend := time.Date(2028, 2, 10, 9, 59, 30, 0, time.UTC)
	for i := range 100 {
		ok, _ := take(t, b, spend, c)
		require.True(t, ok, "request %d", i+1)
	}
	ok, st := take(t, b, spend, c)
	require.False(t, ok)
	// The slot of the spend is 09:59–10:00; it leaves the window at 11:00.
	require.Equal(t, time.Date(2028, 2, 10, 11, 0, 0, 0, time.UTC), st[0].Reset)
	require.Equal(t, time.Hour+30*time.Second, st[0].RetryAfter)
	for _, at := range []time.Time{spend.Add(time.Second), spend.Add(31 * time.Second), spend.Add(59 * time.Minute), spend.Add(time.Hour)} {
		ok, st := take(t, b, at, c)
		require.False(t, ok, "at %s a fixed window would have reset", at.Format(time.TimeOnly))
		require.EqualValues(t, 100, st[0].Used)
	}
	ok, st = take(t, b, time.Date(2028, 2, 10, 11, 0, 0, 0, time.UTC), c)
	require.True(t, ok)
	require.EqualValues(t, 1, st[0].Used)
}

// TestNoHourHoldsMoreThanTheLimit drives random traffic and checks every
// stretch of an hour (ending at an admitted request) against the limit,
// counting in the test from the admitted times.
func TestNoHourHoldsMoreThanTheLimit(t *testing.T) {
	m := NewMemory(0)
	r := rand.New(rand.NewPCG(1, 2))
	c := hourly("random", 40)
	var admitted []time.Time
	at := t0
	for range 20_000 {
		at = at.Add(time.Duration(r.ExpFloat64() * float64(30*time.Second)))
		if ok, _ := take(t, m, at, c); ok {
			admitted = append(admitted, at)
		}
	}
	require.Greater(t, len(admitted), 40*50, "the limit was reached many times over")
	lo := 0
	for hi, a := range admitted {
		for admitted[lo].Before(a.Add(-time.Hour)) || admitted[lo].Equal(a.Add(-time.Hour)) {
			lo++
		}
		require.LessOrEqual(t, hi-lo+1, 40, "an hour ending %s holds %d requests", a, hi-lo+1)
	}
}

func TestQuotaNeedsSeedAndPeriodsRoll(t *testing.T) { quotaContract(t, NewMemory(0)) }

// quotaContract is what every backend does with a quota counter: nothing
// before its seed, counting up to the limit, refusing past it with the
// period's end as the retry, Raise never lowering, soft checks counting
// past the limit, and a new period starting unseeded.
func quotaContract(t *testing.T, b Backend) {
	start, end := plans.BillingPeriod(t0, 1)
	q := Check{Key: Key{Policy: "quota", Tenant: "t", User: "u"}, Limit: 10, PeriodStart: start, PeriodEnd: end}
	ok, st := take(t, b, t0, q)
	require.False(t, ok)
	require.True(t, st[0].Unseeded)
	require.NoError(t, b.Raise(context.Background(), q.Key, start, end, 9))
	ok, st = take(t, b, t0, q)
	require.True(t, ok)
	require.EqualValues(t, 10, st[0].Used)
	require.Equal(t, end, st[0].Reset)
	ok, st = take(t, b, t0, q)
	require.False(t, ok)
	require.True(t, st[0].Denied)
	require.Equal(t, end.Sub(t0), st[0].RetryAfter)
	require.NoError(t, b.Raise(context.Background(), q.Key, start, end, 3))
	_, st = take(t, b, t0, Check{Key: q.Key, Limit: 10, PeriodStart: start, PeriodEnd: end, Soft: true})
	require.EqualValues(t, 11, st[0].Used, "Raise never lowers; a soft check counts past the limit")
	ns, ne := plans.BillingPeriod(end, 1)
	_, st = take(t, b, end, Check{Key: q.Key, Limit: 10, PeriodStart: ns, PeriodEnd: ne})
	require.True(t, st[0].Unseeded, "a new period starts unseeded")
}

func TestMemoryStaysBounded(t *testing.T) {
	m := NewMemory(memShards * 64)
	for i := range 100_000 {
		take(t, m, t0.Add(time.Duration(i)*time.Millisecond), hourly("user-"+itoa(i), 5))
	}
	require.LessOrEqual(t, m.Len(), memShards*64)
	require.Greater(t, m.Evicted.Load(), uint64(0), "all were in use, so some in-use counters went")
	// Idle counters go first: after their windows end, a sweep clears them.
	require.Equal(t, m.Len(), m.Sweep(t0.Add(3*time.Hour)))
	require.Zero(t, m.Len())
}

func itoa(i int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		if i /= 10; i == 0 {
			return string(b)
		}
	}
}

// TestWindowsWithEqualHashesStayApart forces two keys onto one 64-bit
// hash: each keeps its own window.
func TestWindowsWithEqualHashesStayApart(t *testing.T) {
	m := NewMemory(0)
	a, b := Key{Policy: "hourly", User: "a"}, Key{Policy: "hourly", User: "b"}
	const h = 42
	sh := &m.shards[h%memShards]
	width := slotWidth(time.Hour)
	now := t0.UnixNano()
	wa := m.window(sh, h, a, now, width, true)
	wb := m.window(sh, h, b, now, width, true)
	require.NotSame(t, wa, wb)
	wa.sum = 7
	require.Same(t, wa, m.window(sh, h, a, now, width, true))
	require.Same(t, wb, m.window(sh, h, b, now, width, true))
	require.Zero(t, m.window(sh, h, b, now, width, false).sum)
	require.Nil(t, m.window(sh, h, Key{Policy: "hourly", User: "c"}, now, width, false))
	require.Equal(t, 2, m.Len())
	require.Equal(t, 2, m.Sweep(t0.Add(3*time.Hour)), "both are idle")
}
