package limits

import (
	"context"
	"time"

	"github.com/apimeter/apimeter/store"
)

// DB is what the ClickHouse side needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// ClickHouse reads recorded usage and keeps quota notices in apimeter's
// tables (accounts.Store resolves plans).
type ClickHouse struct{ DB DB }

// PeriodUsage implements UsageSource: the user's requests in [start,
// end), each counted by its cost (1 unless the record said otherwise),
// from the daily rollup (periods start at 00:00 UTC), leaving out
// responses with status 429 — requests a limit refused are not used
// quota.
func (c ClickHouse) PeriodUsage(ctx context.Context, tenant, user string, start, end time.Time) (uint64, error) {
	return store.QueryUint64(ctx, c.DB, `SELECT sum(cost) FROM usage_daily
		WHERE tenant_id = {tenant:String} AND user_id = {user:String}
		  AND bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')} AND status_code != 429`,
		store.Named("tenant", tenant), store.Named("user", user), store.Named("start", start.UTC()), store.Named("end", end.UTC()))
}

// Level implements LevelStore.
func (c ClickHouse) Level(ctx context.Context, tenant, user string, period time.Time) (int, error) {
	n, err := store.QueryUint64(ctx, c.DB, `SELECT max(level) FROM quota_notices
		WHERE tenant_id = {tenant:String} AND user_id = {user:String} AND period_start = {period:DateTime64(3, 'UTC')}`,
		store.Named("tenant", tenant), store.Named("user", user), store.Named("period", period.UTC()))
	return int(n), err
}

// Record implements LevelStore.
func (c ClickHouse) Record(ctx context.Context, tenant, user string, period time.Time, level int) error {
	return c.DB.Exec(ctx, `INSERT INTO quota_notices (tenant_id, user_id, period_start, level, sent_at)
		SELECT {tenant:String}, {user:String}, {period:DateTime64(3, 'UTC')}, {level:UInt8}, now64(3)`,
		store.Named("tenant", tenant), store.Named("user", user), store.Named("period", period.UTC()), store.Named("level", uint8(level)))
}

// CachedResolver caches another resolver's answers for TTL; Invalidate
// drops one at once (after an account changes in this process).
type CachedResolver struct {
	next  Resolver
	ttl   time.Duration
	clock Clock
	cache *shardMap[[2]string, cachedAccount]
}

type cachedAccount struct {
	a       Account
	expires int64
}

// NewCachedResolver caches next for ttl (0: 30 s).
func NewCachedResolver(next Resolver, ttl time.Duration) *CachedResolver {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return &CachedResolver{next: next, ttl: ttl, clock: SystemClock{}, cache: newShardMap[[2]string, cachedAccount](hashPair)}
}

// Resolve implements Resolver.
func (r *CachedResolver) Resolve(ctx context.Context, tenant, user string) (Account, error) {
	k := [2]string{tenant, user}
	now := r.clock.Now().UnixNano()
	if v, ok := r.cache.get(k); ok && v.expires > now {
		return v.a, nil
	}
	a, err := r.next.Resolve(ctx, tenant, user)
	if err != nil {
		return a, err
	}
	r.cache.update(k, func(cachedAccount, bool) (cachedAccount, bool) {
		return cachedAccount{a: a, expires: now + int64(r.ttl)}, true
	})
	return a, nil
}

// Invalidate forgets a user's cached account.
func (r *CachedResolver) Invalidate(tenant, user string) { r.cache.delete([2]string{tenant, user}) }

// Prune drops expired entries.
func (r *CachedResolver) Prune() {
	now := r.clock.Now().UnixNano()
	r.cache.prune(func(_ [2]string, v cachedAccount) bool { return v.expires <= now })
}
