package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/redis/go-redis/v9"
)

// ErrLocked is a Locker's answer when another replica holds the lock.
var ErrLocked = errors.New("scheduler: the job's tick is locked by another replica")

// DefaultHold is RedisLocker's default Hold.
const DefaultHold = 30 * time.Second

// RedisLocker is a gocron.Locker shared by replicas through Redis.
//
// Lock is SET prefix+"lock:"+key token NX PX ttl: the first replica to ask
// gets the lock, the others get ErrLocked until it is released or
// expires. Unlock is a script that compares the token (a replica never
// releases a lock it no longer holds — after it expired and another took
// it) and deletes the key — but only once the lock has existed for Hold;
// a younger lock is left to expire when Hold is reached.
//
// Why the hold: the Scheduler asks for the key job@tick, and replicas
// whose clocks differ by δ fire the same tick δ apart. Were the lock
// deleted right after a run faster than δ, the late replica would find it
// free and run the tick again. Kept for Hold, it refuses every replica
// that fires within Hold of the first one: with clocks apart by less than
// Hold, each tick runs once. Distinct ticks have distinct keys, so a long
// hold never delays the next tick. Ages are measured by Redis (the key's
// remaining time to live), not by the replicas' clocks.
//
// Used directly with gocron (the key is then the bare job name), the same
// holds as long as Hold is shorter than the job's interval.
type RedisLocker struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	// Hold is the least time a lock is kept, however fast the run: more
	// than the clock difference between replicas (NTP keeps it to
	// milliseconds). Default DefaultHold, at most the ttl.
	Hold time.Duration
}

// NewRedisLocker makes a locker whose keys start with prefix. ttl bounds
// how long a lock lives when its holder never releases it (a crash); 0
// means 10 minutes.
func NewRedisLocker(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisLocker {
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	return &RedisLocker{client: client, prefix: prefix, ttl: ttl, Hold: min(DefaultHold, ttl)}
}

var _ gocron.Locker = (*RedisLocker)(nil)

// Lock implements gocron.Locker.
func (l *RedisLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	k := l.prefix + "lock:" + key
	ok, err := l.client.SetNX(ctx, k, token, l.ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("scheduler: lock %s: %w", key, err)
	}
	if !ok {
		return nil, ErrLocked
	}
	return &redisLock{l: l, key: k, token: token}, nil
}

// unlockScript releases KEYS[1] if it still holds the token ARGV[1]: at
// once when it has existed for the hold ARGV[3] (ms) out of its time to
// live ARGV[2] (ms), otherwise when the hold is reached.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
local left = redis.call('PTTL', KEYS[1])
local rest = tonumber(ARGV[3]) - (tonumber(ARGV[2]) - left)
if left < 0 or rest <= 0 then
	return redis.call('DEL', KEYS[1])
end
if rest < left then
	redis.call('PEXPIRE', KEYS[1], rest)
end
return 1
`)

type redisLock struct {
	l     *RedisLocker
	key   string
	token string
}

// Unlock implements gocron.Lock.
func (r *redisLock) Unlock(ctx context.Context) error {
	// The job's context is cancelled at shutdown; the release still goes
	// out, briefly.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	hold := min(max(r.l.Hold, 0), r.l.ttl)
	err := unlockScript.Run(ctx, r.l.client, []string{r.key}, r.token, r.l.ttl.Milliseconds(), hold.Milliseconds()).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("scheduler: unlock %s: %w", r.key, err)
	}
	return nil
}
