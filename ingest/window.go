package ingest

import (
	"hash/maphash"
)

// idWindow remembers the record ids a partition accepted recently, so that
// a producer retry resending the same id is counted once. The window is
// measured in Kafka time: an id stays for `span` milliseconds after the
// latest timestamp the partition had reached when the id was accepted, and
// at most `max` ids are kept (the oldest go first; truncations are
// counted).
//
// Ids are kept as 128-bit hashes (two independent 64-bit hashes): a false
// match, which would drop a real record, has a probability around n²/2¹²⁹
// for n ids — about 10⁻²³ for 180 million. Each id costs about 83 bytes
// (BenchmarkIDWindowMemory): the map entry (16-byte key, 8-byte timestamp
// and the map's own overhead) and its place in the eviction queue.
type idWindow struct {
	span      int64 // milliseconds
	max       int
	s1, s2    maphash.Seed
	seen      map[idKey]int64
	queue     []queued // oldest first, from head
	head      int
	latest    int64
	truncated uint64
}

type idKey [2]uint64

type queued struct {
	key idKey
	ts  int64
}

func newIDWindow(spanMs int64, max int) *idWindow {
	return &idWindow{span: spanMs, max: max, s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), seen: make(map[idKey]int64)}
}

func (w *idWindow) key(id string) idKey {
	return idKey{maphash.String(w.s1, id), maphash.String(w.s2, id)}
}

// Len is the number of ids held.
func (w *idWindow) Len() int { return len(w.seen) }

// Check reports whether id was accepted within the window before a record
// with Kafka timestamp ts; if not, it remembers id. A span of 0 turns the
// window off.
func (w *idWindow) Check(id string, ts int64) (duplicate bool) {
	if w.span <= 0 {
		return false
	}
	if ts > w.latest {
		w.latest = ts
		w.evict()
	}
	k := w.key(id)
	if at, ok := w.seen[k]; ok && at >= w.latest-w.span {
		return true
	}
	w.add(k, w.latest)
	return false
}

// Restore puts back an id accepted at ts (from stored records, after a
// restart), as if it had been checked then.
func (w *idWindow) Restore(id string, ts int64) {
	if w.span <= 0 {
		return
	}
	if ts > w.latest {
		w.latest = ts
	}
	w.add(w.key(id), ts)
}

// Settle evicts what restored ids left outside the window.
func (w *idWindow) Settle() { w.evict() }

func (w *idWindow) add(k idKey, ts int64) {
	w.seen[k] = ts
	w.queue = append(w.queue, queued{key: k, ts: ts})
	for len(w.seen) > w.max {
		w.pop()
		w.truncated++
	}
}

func (w *idWindow) evict() {
	for w.head < len(w.queue) && w.queue[w.head].ts < w.latest-w.span {
		w.pop()
	}
}

func (w *idWindow) pop() {
	q := w.queue[w.head]
	w.head++
	// The id may have been accepted again since (after it had expired);
	// only the entry this queue slot made is removed.
	if at, ok := w.seen[q.key]; ok && at == q.ts {
		delete(w.seen, q.key)
	}
	// Compact the queue once its dead head outweighs the live part.
	if w.head > 1024 && w.head*2 > len(w.queue) {
		n := copy(w.queue, w.queue[w.head:])
		w.queue = w.queue[:n]
		w.head = 0
	}
}
