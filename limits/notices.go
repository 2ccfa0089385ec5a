package limits

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

type noticeKey struct {
	Tenant, User string
	Period       int64
}

// MemoryNotices keeps notice levels in this process only: a restart
// forgets them. For tests and applications without a store.
type MemoryNotices struct {
	mu     sync.Mutex
	levels map[noticeKey]int
}

// NewMemoryNotices is an empty MemoryNotices.
func NewMemoryNotices() *MemoryNotices { return &MemoryNotices{levels: map[noticeKey]int{}} }

// Claim implements Notices.
func (m *MemoryNotices) Claim(_ context.Context, tenant, user string, period time.Time, level int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := noticeKey{tenant, user, period.UnixNano()}
	if m.levels[k] >= level {
		return false, nil
	}
	m.levels[k] = level
	return true, nil
}

// LevelStore is where notice levels persist (the quota_notices table).
type LevelStore interface {
	// Level is the highest level recorded for the user's period (0: none).
	Level(ctx context.Context, tenant, user string, period time.Time) (int, error)
	// Record records a level sent.
	Record(ctx context.Context, tenant, user string, period time.Time, level int) error
}

// StoreNotices claims levels against a LevelStore, serialized in this
// process: exact for one replica, and a restart reads the levels back.
// Several replicas share claims through RedisNotices instead.
type StoreNotices struct {
	store  LevelStore
	mu     sync.Mutex
	levels map[noticeKey]int
}

// NewStoreNotices claims against s.
func NewStoreNotices(s LevelStore) *StoreNotices {
	return &StoreNotices{store: s, levels: map[noticeKey]int{}}
}

// Claim implements Notices.
func (n *StoreNotices) Claim(ctx context.Context, tenant, user string, period time.Time, level int) (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := noticeKey{tenant, user, period.UnixNano()}
	cur, ok := n.levels[k]
	if !ok {
		var err error
		if cur, err = n.store.Level(ctx, tenant, user, period); err != nil {
			return false, err
		}
		n.levels[k] = cur
	}
	if cur >= level {
		return false, nil
	}
	if err := n.store.Record(ctx, tenant, user, period, level); err != nil {
		return false, err
	}
	n.levels[k] = level
	return true, nil
}

// RedisNotices claims levels in Redis, atomically across replicas; the
// LevelStore keeps them too, and is read when Redis has lost a key.
type RedisNotices struct {
	client redis.UniversalClient
	prefix string
	store  LevelStore
}

// NewRedisNotices claims in Redis and records in store (may be nil).
func NewRedisNotices(client redis.UniversalClient, prefix string, store LevelStore) *RedisNotices {
	if prefix == "" {
		prefix = "apimeter:"
	}
	return &RedisNotices{client: client, prefix: prefix, store: store}
}

// claimScript: KEYS[1]; ARGV level, floor (-1: unknown), ttl ms. It
// answers 1 when the level is claimed, 0 when it was already, -1 when
// the key is gone and the floor is needed.
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then
  if tonumber(ARGV[2]) < 0 then return -1 end
  cur = ARGV[2]
end
if tonumber(ARGV[1]) > tonumber(cur) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
redis.call('SET', KEYS[1], cur, 'PX', ARGV[3])
return 0
`)

// Claim implements Notices.
func (n *RedisNotices) Claim(ctx context.Context, tenant, user string, period time.Time, level int) (bool, error) {
	key := n.prefix + "{" + tenant + "|" + user + "}:notice:" + period.UTC().Format("20060102")
	ttl := (40 * 24 * time.Hour).Milliseconds()
	floor := -1
	if n.store == nil {
		floor = 0
	}
	for {
		r, err := claimScript.Run(ctx, n.client, []string{key}, level, floor, ttl).Int()
		if err != nil {
			return false, err
		}
		if r >= 0 {
			if r == 1 && n.store != nil {
				if err := n.store.Record(ctx, tenant, user, period, level); err != nil {
					return true, err
				}
			}
			return r == 1, nil
		}
		if floor, err = n.store.Level(ctx, tenant, user, period); err != nil {
			return false, err
		}
	}
}
