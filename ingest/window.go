package ingest

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
)

// idWindow remembers the record ids that the partitions of one ingester
// accepted recently, so that a producer retry resending an id counts once
// whichever of them each copy landed on. It is measured in Kafka time: a
// record is a duplicate when its id was claimed at another position
// (partition and offset) by a record whose Kafka timestamp is at most
// `span` milliseconds from its own, before or after. A record at the
// position that claimed the id is never a duplicate of itself, so a range
// read again (a replay after a crash, a partition read again after a
// rebalance) keeps its records.
//
// Ids leave the window when no partition consumed now can still meet a
// copy within the span: when they are older than the watermark — the
// earliest of the partitions' latest Kafka times, leaving out partitions
// that are caught up and waiting — minus the span. A partition replaying an
// old backlog holds the watermark back, so the others' recent ids stay for
// it. Each partition's claims are also capped (`max`, spread over the
// shards); past it its oldest claims go first and are counted.
//
// The fetch goroutines of all partitions call it at once: ids are spread
// over shards by hash, each with its own lock, map and per-partition
// eviction queues. An id is kept as 86 bits of two independent hashes (a
// 64-bit map key and 22 bits beside the Kafka time): a false match, which
// would drop a real record, has a probability around n²/2⁸⁷ for n ids held
// at once — about 10⁻¹³ for the 4 million of four partitions at the
// default cap. Each id costs about 75 bytes (BenchmarkIDWindowMemory): the
// map entry (8-byte key, 16-byte claim, the map's own overhead) and its
// place in a queue (16 bytes).
type idWindow struct {
	span     int64 // milliseconds; 0: off
	perShard int   // claims of one partition one shard keeps
	s1, s2   maphash.Seed
	shards   []windowShard
	shift    uint // h1 >> shift picks the shard
	// cutoff is the watermark minus the span: ids claimed before it can
	// no longer match a record of a partition consumed now.
	cutoff    atomic.Int64
	truncated atomic.Uint64

	mu    sync.Mutex
	parts map[int32]*windowPart // the partitions consumed now
}

// windowShard holds the ids whose first hash falls on it.
type windowShard struct {
	mu  sync.Mutex
	ids map[uint64]claim // by the id's first hash
	// queues are the shard's claims by partition, oldest first.
	queues []claimQueue
	cutoff int64    // the cutoff the queues were last evicted to
	_      [64]byte // keeps neighbouring shards' locks off one cache line
}

// claim is where and when an id was accepted, in 16 bytes. pos packs the
// partition (16 bits) and the offset (48 bits): positions compare equal
// only for the same partition and offset at any realistic size. tag packs
// the Kafka time in milliseconds (42 bits: until the year 2109) and 22
// bits of the id's second hash.
type claim struct {
	pos uint64
	tag uint64
}

const (
	tagHashBits = 22
	tagHashMask = 1<<tagHashBits - 1
	maxTagTime  = 1<<(64-tagHashBits) - 1
)

func newClaim(h2 uint64, partition int32, offset, ts int64) claim {
	return claim{pos: position(partition, offset), tag: uint64(min(max(ts, 0), maxTagTime))<<tagHashBits | h2&tagHashMask}
}

func (c claim) ts() int64 { return int64(c.tag >> tagHashBits) }

// sameID reports whether two claims' ids agree in the bits the tag keeps
// (their first hashes, the map key, agree already).
func (c claim) sameID(o claim) bool { return c.tag&tagHashMask == o.tag&tagHashMask }

func position(partition int32, offset int64) uint64 {
	return uint64(uint16(partition))<<48 | uint64(offset)&(1<<48-1)
}

func positionPartition(pos uint64) int32 { return int32(pos >> 48) }

// claimQueue is one partition's claims in a shard, in the order made.
// Items whose id was claimed again elsewhere since stay until they reach
// the head; live counts those still holding their id.
type claimQueue struct {
	items []queued
	head  int
	live  int
}

type queued struct {
	h1     uint64
	offset int64
}

// watermarkStep is how far (ms of Kafka time) a partition moves before it
// recomputes the watermark.
const watermarkStep = 1000

// newIDWindow makes a window of spanMs (0 or less: off) keeping at most
// maxPerPartition ids claimed by each partition.
func newIDWindow(spanMs int64, maxPerPartition int) *idWindow {
	shards := 1
	// Shards of at least 4,096 ids a partition: a small cap stays exact.
	for shards < 64 && maxPerPartition/(shards*2) >= 4096 {
		shards *= 2
	}
	w := &idWindow{
		span: max(spanMs, 0), perShard: (maxPerPartition + shards - 1) / shards,
		s1: maphash.MakeSeed(), s2: maphash.MakeSeed(),
		shards: make([]windowShard, shards), shift: uint(64 - log2(shards)),
		parts: map[int32]*windowPart{},
	}
	w.cutoff.Store(math.MinInt64)
	for i := range w.shards {
		w.shards[i].ids = map[uint64]claim{}
		w.shards[i].cutoff = math.MinInt64
	}
	return w
}

func log2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

// shard picks by the top bits of h1 (all of them shifted out, 0, for one
// shard).
func (w *idWindow) shard(h1 uint64) *windowShard { return &w.shards[h1>>w.shift] }

// partStart is where a partition starts in a generation: the Kafka time
// of the first message it will read (or now, when it has none), and
// whether it is caught up (nothing to read yet).
type partStart struct {
	ms       int64
	caughtUp bool
}

// Assign makes the partitions consumed from now on those of starts and
// returns each one's handle for its fetch goroutine. It must not run
// while a handle of the previous assignment is in use.
func (w *idWindow) Assign(starts map[int32]partStart) map[int32]*windowPart {
	w.mu.Lock()
	w.parts = make(map[int32]*windowPart, len(starts))
	out := make(map[int32]*windowPart, len(starts))
	for p, st := range starts {
		h := &windowPart{w: w, partition: p, next: st.ms + watermarkStep}
		h.latest.Store(st.ms)
		h.idle.Store(st.caughtUp)
		w.parts[p], out[p] = h, h
	}
	w.mu.Unlock()
	w.recompute()
	return out
}

// recompute moves the cutoff to the earliest latest time of the partitions
// that are not waiting (of all of them when every one waits), minus the
// span.
func (w *idWindow) recompute() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.parts) == 0 {
		return
	}
	busy, all := int64(math.MaxInt64), int64(math.MaxInt64)
	for _, p := range w.parts {
		l := p.latest.Load()
		all = min(all, l)
		if !p.idle.Load() {
			busy = min(busy, l)
		}
	}
	if busy == math.MaxInt64 {
		busy = all
	}
	w.cutoff.Store(busy - w.span)
}

// windowPart is one partition's handle on the window; only its fetch
// goroutine checks through it.
type windowPart struct {
	w         *idWindow
	partition int32
	latest    atomic.Int64 // the newest Kafka time the partition reached
	idle      atomic.Bool  // caught up and waiting: not holding the watermark
	next      int64        // latest at which to recompute the watermark
}

// Check reports whether the record at offset, with id and Kafka timestamp
// ts, repeats an id claimed at another position within the span; if not,
// the record claims the id.
func (p *windowPart) Check(id string, offset, ts int64) (duplicate bool) {
	w := p.w
	if w.span <= 0 {
		return false
	}
	p.advance(ts)
	h1, h2 := w.hash(id)
	s := w.shard(h1)
	s.mu.Lock()
	duplicate = s.check(w, h1, newClaim(h2, p.partition, offset, ts), true)
	s.mu.Unlock()
	return duplicate
}

// Idle tells that the partition read everything there was and waits: until
// its next record it does not hold the watermark back (a record appended
// from now on carries a Kafka time at least as late as the others').
func (p *windowPart) Idle() {
	if p.w.span > 0 && !p.idle.Load() {
		p.idle.Store(true)
		p.w.recompute()
	}
}

func (p *windowPart) advance(ts int64) {
	again := false
	if p.idle.Load() {
		p.idle.Store(false)
		again = true
	}
	if ts > p.latest.Load() {
		p.latest.Store(ts)
		if ts >= p.next {
			p.next = ts + watermarkStep
			again = true
		}
	}
	if again {
		p.w.recompute()
	}
}

// Keep records that the record at offset holds id, without asking: a
// record an exact replay keeps.
func (p *windowPart) Keep(id string, offset, ts int64) {
	if p.w.span > 0 {
		p.advance(ts)
		p.w.Remember(id, p.partition, offset, ts)
	}
}

// Remember records that the record at (partition, offset) holds id, as a
// stored record or a record an exact replay keeps, unless the id is held
// already.
func (w *idWindow) Remember(id string, partition int32, offset, ts int64) {
	if w.span <= 0 {
		return
	}
	h1, h2 := w.hash(id)
	s := w.shard(h1)
	s.mu.Lock()
	s.check(w, h1, newClaim(h2, partition, offset, ts), false)
	s.mu.Unlock()
}

func (w *idWindow) hash(id string) (uint64, uint64) {
	return maphash.String(w.s1, id), maphash.String(w.s2, id)
}

// check is Check (ask) or Remember (!ask) inside the shard's lock.
func (s *windowShard) check(w *idWindow, h1 uint64, c claim, ask bool) (duplicate bool) {
	if cut := w.cutoff.Load(); cut != s.cutoff {
		s.evict(cut)
		s.cutoff = cut
	}
	old, held := s.ids[h1]
	if held {
		if !ask || old.pos == c.pos {
			return false
		}
		if old.sameID(c) {
			if max(old.ts(), c.ts())-min(old.ts(), c.ts()) <= w.span {
				return true
			}
			// The same id past the span counts again; the newer claim is
			// the one later copies are likelier to meet.
			if c.ts() < old.ts() {
				return false
			}
		}
		// A later claim of the id, or (rarely) another id with the same
		// first hash: the new claim takes the slot.
		s.queue(positionPartition(old.pos)).live--
	}
	s.ids[h1] = c
	partition := positionPartition(c.pos)
	q := s.queue(partition)
	q.items = append(q.items, queued{h1: h1, offset: int64(c.pos & (1<<48 - 1))})
	q.live++
	for q.live > w.perShard {
		if s.pop(partition, q) {
			w.truncated.Add(1)
		}
	}
	return false
}

func (s *windowShard) queue(partition int32) *claimQueue {
	i := int(uint16(partition))
	if i >= len(s.queues) {
		s.queues = append(s.queues, make([]claimQueue, i+1-len(s.queues))...)
	}
	return &s.queues[i]
}

// evict drops the claims older than cut, from the head of each queue.
func (s *windowShard) evict(cut int64) {
	for i := range s.queues {
		q := &s.queues[i]
		for q.head < len(q.items) {
			if c, ok := s.owner(int32(i), q.items[q.head]); ok && c.ts() >= cut {
				break
			}
			s.pop(int32(i), q)
		}
	}
}

// owner is the claim a queue item made, if it still holds its id.
func (s *windowShard) owner(partition int32, it queued) (claim, bool) {
	c, ok := s.ids[it.h1]
	return c, ok && c.pos == position(partition, it.offset)
}

// pop removes the head of q and, if it still held its id, the id; live
// reports the latter.
func (s *windowShard) pop(partition int32, q *claimQueue) (live bool) {
	it := q.items[q.head]
	q.head++
	if _, live = s.owner(partition, it); live {
		delete(s.ids, it.h1)
		q.live--
	}
	// Compact the queue once its dead head outweighs the live part.
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items = q.items[:n]
		q.head = 0
	}
	return live
}

// Len is the number of ids held.
func (w *idWindow) Len() int {
	return w.count(func(s *windowShard) int { return len(s.ids) })
}

// ClaimedBy is the number of ids held by claims of the partition.
func (w *idWindow) ClaimedBy(partition int32) int {
	return w.count(func(s *windowShard) int { return s.queue(partition).live })
}

// count sums f over the shards, each evicted to the current cutoff first.
func (w *idWindow) count(f func(*windowShard) int) int {
	n := 0
	cut := w.cutoff.Load()
	for i := range w.shards {
		s := &w.shards[i]
		s.mu.Lock()
		if cut != s.cutoff {
			s.evict(cut)
			s.cutoff = cut
		}
		n += f(s)
		s.mu.Unlock()
	}
	return n
}

// TakeTruncated returns the number of ids dropped early because their
// partition's claims were at the cap, since the last call.
func (w *idWindow) TakeTruncated() uint64 { return w.truncated.Swap(0) }
