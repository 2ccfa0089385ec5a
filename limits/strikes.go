package limits

import (
	"context"
	"fmt"
	"time"
)

// Strikes counts failures per client — wrong API keys from an address —
// in a sliding window on the limiter's backend, so that replicas sharing
// Redis share the count, and tells when a client has had too many. It
// never refuses anything itself: the caller decides what "blocked" means.
// A failing backend blocks no one (a throttle of failures must not lock
// out every client while Redis is away).
type Strikes struct {
	l      *Limiter
	policy string
	limit  uint64
	window time.Duration
}

// Strikes counts failures of the kind policy names, at most limit per
// window per client.
func (l *Limiter) Strikes(policy string, limit int, window time.Duration) *Strikes {
	if limit <= 0 || window < time.Second {
		panic(fmt.Sprintf("limits: Strikes(%q, %d, %s): want a limit above 0 and a window of 1s or more", policy, limit, window))
	}
	return &Strikes{l: l, policy: "strikes:" + policy, limit: uint64(limit), window: window}
}

func (s *Strikes) take(ctx context.Context, who string, cost uint64) (State, error) {
	checks := [1]Check{{Key: Key{Policy: s.policy, User: who}, Limit: s.limit, Window: s.window}}
	var states [1]State
	_, err := s.l.backend.Take(ctx, s.l.cfg.Clock.Now(), checks[:], cost, states[:])
	return states[0], err
}

// Blocked reports whether who has failed limit times within the window,
// and how long until one of those failures leaves it.
func (s *Strikes) Blocked(ctx context.Context, who string) (bool, time.Duration) {
	st, err := s.take(ctx, who, 0)
	if err != nil || st.Used < s.limit {
		return false, 0
	}
	return true, max(st.Reset.Sub(s.l.cfg.Clock.Now()), time.Second)
}

// Add counts one failure of who.
func (s *Strikes) Add(ctx context.Context, who string) {
	if _, err := s.take(ctx, who, 1); err != nil {
		s.l.failures.Inc()
	}
}
