package limits

import (
	"hash/maphash"
	"sync"
)

var shardSeed = maphash.MakeSeed()

func hashKey(k Key) uint64         { return k.hash(shardSeed) }
func hashSeedKey(k seedKey) uint64 { return k.Key.hash(shardSeed) ^ uint64(k.Period) }
func hashPair(k [2]string) uint64 {
	return maphash.String(shardSeed, k[0])*0x9E3779B97F4A7C15 ^ maphash.String(shardSeed, k[1])
}

// shardMap is a map spread over locked shards, for the limiter's small
// bookkeeping (account cache, refresh times, warning levels).
type shardMap[K comparable, V any] struct {
	hash   func(K) uint64
	shards [64]struct {
		mu sync.Mutex
		m  map[K]V
	}
}

func newShardMap[K comparable, V any](hash func(K) uint64) *shardMap[K, V] {
	s := &shardMap[K, V]{hash: hash}
	for i := range s.shards {
		s.shards[i].m = map[K]V{}
	}
	return s
}

func (s *shardMap[K, V]) shard(k K) *struct {
	mu sync.Mutex
	m  map[K]V
} {
	return &s.shards[s.hash(k)%uint64(len(s.shards))]
}

// update runs f on the key's value (the zero value and false when
// absent) and stores what f returns unless it returns keep == false,
// which deletes the key.
func (s *shardMap[K, V]) update(k K, f func(v V, ok bool) (V, bool)) V {
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	old, ok := sh.m[k]
	v, keep := f(old, ok)
	if keep {
		sh.m[k] = v
	} else {
		delete(sh.m, k)
	}
	return v
}

func (s *shardMap[K, V]) get(k K) (V, bool) {
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.m[k]
	return v, ok
}

func (s *shardMap[K, V]) delete(k K) {
	sh := s.shard(k)
	sh.mu.Lock()
	delete(sh.m, k)
	sh.mu.Unlock()
}

// prune deletes the entries drop says to.
func (s *shardMap[K, V]) prune(drop func(K, V) bool) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, v := range sh.m {
			if drop(k, v) {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}
