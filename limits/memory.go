package limits

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

const memShards = 256

// Memory keeps counters in this process: one replica's limits. Keys are
// spread over 256 shards, each with its own lock, so no lock is shared
// by all requests; a decision locks only the shards of its keys, in
// order. Memory is bounded: past MaxKeys, idle counters (whose windows
// or periods are over) are dropped first, then the least recently used.
type Memory struct {
	seed     maphash.Seed
	shards   [memShards]memShard
	perShard int
	// Evicted counts counters dropped while still in use.
	Evicted atomic.Uint64
}

type memShard struct {
	mu sync.Mutex
	// Windows are found by the key's 64-bit hash; the key kept in the
	// window settles the rare collision, whose windows live in collided.
	windows  map[uint64]*window
	collided map[Key]*window
	quotas   map[Key]*counter
	_        [64]byte // keep neighbouring shards' locks off one cache line
}

type window struct {
	key     Key
	head    int64 // absolute index of the newest slot
	first   int64 // absolute index of the oldest slot with a count (when sum > 0)
	sum     uint64
	expires int64 // unix ns when every counted request has left
	ring    [ringSlots]uint32
}

type counter struct {
	period  int64 // unix ns of the period's start
	used    uint64
	expires int64 // unix ns of the period's end
	touched int64
}

// NewMemory is an in-memory backend holding at most maxKeys counters
// (0: 1,000,000).
func NewMemory(maxKeys int) *Memory {
	if maxKeys <= 0 {
		maxKeys = 1_000_000
	}
	m := &Memory{seed: maphash.MakeSeed(), perShard: max(maxKeys/memShards, 1)}
	for i := range m.shards {
		m.shards[i].windows = map[uint64]*window{}
		m.shards[i].collided = map[Key]*window{}
		m.shards[i].quotas = map[Key]*counter{}
	}
	return m
}

// Take implements Backend.
func (m *Memory) Take(_ context.Context, now time.Time, checks []Check, cost uint64, states []State) (bool, error) {
	n := len(checks)
	if n > MaxChecks {
		return false, ErrTooManyChecks
	}
	// Lock the shards in increasing order, each once.
	var idx, order [MaxChecks]uint8
	var hashes [MaxChecks]uint64
	for i := range n {
		hashes[i] = checks[i].Key.hash(m.seed)
		idx[i] = uint8(hashes[i] % memShards)
		order[i] = idx[i]
	}
	for i := 1; i < n; i++ {
		for j := i; j > 0 && order[j] < order[j-1]; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for i := range n {
		if i == 0 || order[i] != order[i-1] {
			m.shards[order[i]].mu.Lock()
		}
	}
	allowed := m.take(now, checks, cost, states, &idx, &hashes)
	for i := range n {
		if i == 0 || order[i] != order[i-1] {
			m.shards[order[i]].mu.Unlock()
		}
	}
	return allowed, nil
}

// take decides with the shards locked.
func (m *Memory) take(now time.Time, checks []Check, cost uint64, states []State, idx *[MaxChecks]uint8, hashes *[MaxChecks]uint64) bool {
	n := len(checks)
	t := now.UnixNano()
	allowed := true
	var wins [MaxChecks]*window
	var ctrs [MaxChecks]*counter
	for i := range n {
		c, sh, st := &checks[i], &m.shards[idx[i]], &states[i]
		*st = State{}
		if c.Window > 0 {
			w := m.window(sh, hashes[i], c.Key, t, slotWidth(c.Window), cost > 0)
			if w == nil { // a read of a window never used: nothing counted
				st.Reset = time.Unix(0, (t/slotWidth(c.Window)+ringSlots)*slotWidth(c.Window)).UTC()
				continue
			}
			wins[i] = w
			st.Used = w.sum
			st.Reset = time.Unix(0, w.oldestExpiry(slotWidth(c.Window))).UTC()
			if !c.Soft && w.sum+cost > c.Limit {
				st.Denied, allowed = true, false
				st.RetryAfter = time.Duration(w.freedAfter(w.sum+cost-c.Limit, slotWidth(c.Window)) - t)
			}
			continue
		}
		q := sh.quotas[c.Key]
		p := c.PeriodStart.UnixNano()
		if q == nil || q.period != p {
			st.Unseeded, allowed = true, false
			continue
		}
		q.touched = t
		ctrs[i] = q
		st.Used, st.Reset = q.used, c.PeriodEnd
		if !c.Soft && q.used+cost > c.Limit {
			st.Denied, allowed = true, false
			st.RetryAfter = c.PeriodEnd.Sub(now)
		}
	}
	if !allowed || cost == 0 {
		return allowed
	}
	for i := range n {
		if w := wins[i]; w != nil {
			width := slotWidth(checks[i].Window)
			if w.sum == 0 {
				w.first = w.head
			}
			w.ring[w.head%ringSlots] += uint32(cost)
			w.sum += cost
			w.expires = (w.head + ringSlots) * width
			states[i].Used = w.sum
			states[i].Reset = time.Unix(0, w.oldestExpiry(width)).UTC()
		} else {
			ctrs[i].used += cost
			states[i].Used = ctrs[i].used
		}
	}
	return true
}

// window finds the key's window (making it when create says so; nil
// otherwise) and moves it to now.
func (m *Memory) window(sh *memShard, h uint64, k Key, t, width int64, create bool) *window {
	slot := t / width
	w := sh.windows[h]
	if w != nil && w.key != k {
		w = sh.collided[k]
	}
	if w == nil {
		if !create {
			return nil
		}
		if sh.len() >= m.perShard {
			m.evict(sh, t)
		}
		w = &window{key: k, head: slot}
		if o := sh.windows[h]; o != nil && o.key != k {
			sh.collided[k] = w
		} else {
			sh.windows[h] = w
		}
		return w
	}
	if slot <= w.head { // the same slot, or a clock that went back
		return w
	}
	if slot-w.head >= ringSlots || w.sum == 0 {
		if w.sum != 0 {
			w.ring, w.sum = [ringSlots]uint32{}, 0
		}
	} else {
		for s := max(w.head+1, w.first+ringSlots); s <= slot; s++ {
			// Slot s takes the ring cell of slot s-61, which leaves.
			i := s % ringSlots
			w.sum -= uint64(w.ring[i])
			w.ring[i] = 0
		}
		if w.sum > 0 {
			for w.first < slot-windowSlots || w.ring[w.first%ringSlots] == 0 {
				w.first++
			}
		}
	}
	w.head = slot
	return w
}

// oldestExpiry is when the oldest counted slot leaves the window (the
// current slot's end of window when nothing is counted).
func (w *window) oldestExpiry(width int64) int64 {
	if w.sum == 0 {
		return (w.head + ringSlots) * width
	}
	return (w.first + ringSlots) * width
}

// freedAfter is when at least need counted requests will have left.
func (w *window) freedAfter(need uint64, width int64) int64 {
	var freed uint64
	for s := w.first; s <= w.head; s++ {
		if freed += uint64(w.ring[s%ringSlots]); freed >= need {
			return (s + ringSlots) * width
		}
	}
	return (w.head + ringSlots) * width
}

// evict makes room in a full shard: idle counters go first; when fewer
// than an eighth of the shard was idle, the least recently used go too.
func (sh *memShard) len() int { return len(sh.windows) + len(sh.collided) + len(sh.quotas) }

func (m *Memory) evict(sh *memShard, t int64) {
	for h, w := range sh.windows {
		if w.expires <= t {
			delete(sh.windows, h)
		}
	}
	for k, w := range sh.collided {
		if w.expires <= t {
			delete(sh.collided, k)
		}
	}
	for k, q := range sh.quotas {
		if q.expires <= t {
			delete(sh.quotas, k)
		}
	}
	target := m.perShard - m.perShard/8
	for sh.len() >= target && len(sh.windows)+len(sh.quotas) > 0 {
		// Sample a few and drop the one whose use ends soonest.
		var victimW uint64
		var victimQ Key
		best, isQ, seen := int64(1<<62), false, 0
		for k, w := range sh.windows {
			if w.expires < best {
				best, victimW, isQ = w.expires, k, false
			}
			if seen++; seen >= 8 {
				break
			}
		}
		seen = 0
		for k, q := range sh.quotas {
			if q.touched < best {
				best, victimQ, isQ = q.touched, k, true
			}
			if seen++; seen >= 8 {
				break
			}
		}
		if isQ {
			delete(sh.quotas, victimQ)
		} else {
			delete(sh.windows, victimW)
		}
		m.Evicted.Add(1)
	}
}

// Raise implements Backend.
func (m *Memory) Raise(_ context.Context, k Key, period, periodEnd time.Time, used uint64) error {
	sh := &m.shards[k.hash(m.seed)%memShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p := period.UnixNano()
	q := sh.quotas[k]
	switch {
	case q == nil:
		if sh.len() >= m.perShard {
			m.evict(sh, time.Now().UnixNano())
		}
		sh.quotas[k] = &counter{period: p, used: used, expires: periodEnd.UnixNano(), touched: p}
	case q.period != p: // a new period (or a clock behind another's)
		*q = counter{period: p, used: used, expires: periodEnd.UnixNano(), touched: q.touched}
	case q.period == p && used > q.used:
		q.used = used
	}
	return nil
}

// Sweep drops the counters whose windows and periods are over; a server
// runs it now and then so idle keys do not wait for a full shard.
func (m *Memory) Sweep(now time.Time) (dropped int) {
	t := now.UnixNano()
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for h, w := range sh.windows {
			if w.expires <= t {
				delete(sh.windows, h)
				dropped++
			}
		}
		for k, w := range sh.collided {
			if w.expires <= t {
				delete(sh.collided, k)
				dropped++
			}
		}
		for k, q := range sh.quotas {
			if q.expires <= t {
				delete(sh.quotas, k)
				dropped++
			}
		}
		sh.mu.Unlock()
	}
	return dropped
}

// Len is the number of counters held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += sh.len()
		sh.mu.Unlock()
	}
	return n
}

// Count implements Backend.
func (m *Memory) Count(_ context.Context, now time.Time, items []Counted) error {
	t := now.UnixNano()
	for i := range items {
		it := &items[i]
		if len(it.States) < len(it.Checks) {
			it.States = make([]State, len(it.Checks))
		}
		at := min(it.At.UnixNano(), t)
		for j := range it.Checks {
			c, st := &it.Checks[j], &it.States[j]
			h := c.Key.hash(m.seed)
			sh := &m.shards[h%memShards]
			sh.mu.Lock()
			*st = m.count(sh, h, c, t, at, it.Cost)
			sh.mu.Unlock()
		}
	}
	return nil
}

// count adds cost at time at (unix ns) to one check, with its shard
// locked.
func (m *Memory) count(sh *memShard, h uint64, c *Check, t, at int64, cost uint64) State {
	if c.Window > 0 {
		width := slotWidth(c.Window)
		w := m.window(sh, h, c.Key, t, width, true)
		if s := at / width; s >= w.head-windowSlots && cost > 0 {
			if w.sum == 0 || s < w.first {
				w.first = s
			}
			w.ring[s%ringSlots] += uint32(cost)
			w.sum += cost
			w.expires = max(w.expires, (w.head+ringSlots)*width)
		}
		return State{Used: w.sum, Reset: time.Unix(0, w.oldestExpiry(width)).UTC()}
	}
	q := sh.quotas[c.Key]
	if q == nil || q.period != c.PeriodStart.UnixNano() {
		return State{Unseeded: true, Reset: c.PeriodEnd}
	}
	if at >= q.period && at < q.expires {
		q.used += cost
	}
	q.touched = t
	return State{Used: q.used, Reset: c.PeriodEnd}
}
