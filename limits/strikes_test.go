package limits

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// strikesContract: limit failures within the window block the client,
// nobody else, until the oldest failure leaves the window.
func strikesContract(t *testing.T, backend Backend) {
	clock := NewManualClock(time.Date(2027, 5, 3, 12, 0, 0, 0, time.UTC))
	l := New(Config{Backend: backend, Clock: clock})
	s := l.Strikes("auth", 3, time.Minute)
	ctx := context.Background()
	for i := range 3 {
		blocked, _ := s.Blocked(ctx, "192.0.2.1")
		require.False(t, blocked, "after %d failures", i)
		s.Add(ctx, "192.0.2.1")
		clock.Advance(10 * time.Second)
	}
	blocked, retry := s.Blocked(ctx, "192.0.2.1")
	require.True(t, blocked)
	// The first failure, 30 s ago, leaves the window in about 30 s (one
	// slot of the window later at most).
	require.GreaterOrEqual(t, retry, 30*time.Second-time.Second)
	require.LessOrEqual(t, retry, 31*time.Second)
	other, _ := s.Blocked(ctx, "192.0.2.2")
	require.False(t, other, "another address is not blocked")
	// More failures while blocked do not extend the block past the window.
	s.Add(ctx, "192.0.2.1")
	clock.Advance(retry)
	blocked, _ = s.Blocked(ctx, "192.0.2.1")
	require.False(t, blocked, "room again once the first failure left the window")
}

func TestStrikesInMemory(t *testing.T) { strikesContract(t, NewMemory(0)) }

func TestStrikesInRedis(t *testing.T) {
	r := NewRedis(dialTest(t, sharedRedisURL(t)), uniquePrefix(t))
	r.ClientClock = true
	strikesContract(t, r)
}
