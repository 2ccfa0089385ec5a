package ingest

import "hash/maphash"

// Call is what a stored batch adds to its users' limits: api_call
// records of one tenant, user, method, endpoint and second that no
// decision counted (no decisionId, or one Decided refused), leaving
// out status 429 (a refused call is not usage).
type Call struct {
	Tenant, User, Method, Endpoint string
	Second                         int64  // unix seconds of the records' timestamp
	Count                          uint32 // records
	Cost                           uint64 // the sum of their costs (a record without cost counts 1)
}

// callSet adds up a batch's reported calls by key. The batch's usage
// columns hold every key already, so while the batch fills, a call costs
// a hash of its key and 8 bytes appended; keys are matched once, when the
// batch is stored (list). Live traffic makes a new key of nearly every
// record (86 % in a minute of 25,000 users on 40 endpoints), so a table
// probed per record — a Go map or one of its own — is a cache miss per
// record, in caches the retry window fills: sorting the hashes and reading
// the columns in order costs less (BENCHMARKS.md, "Reported calls for the
// limiter").
type callSet struct {
	// keys has one entry per reported row, in row order: the high 32 bits
	// of the key's hash and the row.
	keys []uint64
	seed maphash.Seed
	// Scratch of list, kept from batch to batch.
	tmp  []uint64
	lead []int32
}

const callTagMask = 0xffff_ffff_0000_0000

// add counts the last row of u, an API call no decision counted.
func (s *callSet) add(u *UsageColumns) {
	if s.keys == nil {
		s.seed = maphash.MakeSeed()
	}
	row := u.Len() - 1
	// A stored record is after 1970: dividing its milliseconds truncates
	// to its second.
	h := s.hash(u.tenant[row], u.user[row], u.method[row], u.endpoint[row], u.eventTime[row]/1000)
	s.keys = append(s.keys, h&callTagMask|uint64(row))
}

// hash hashes a key; each string is hashed on its own, so where one ends
// and the next begins is part of the hash.
func (s *callSet) hash(tenant, user, method, endpoint string, sec int64) uint64 {
	h := maphash.String(s.seed, user)
	h = (h^maphash.String(s.seed, endpoint))*0x9e3779b97f4a7c15 + uint64(sec)
	return (h^maphash.String(s.seed, tenant))*0xc2b2ae3d27d4eb4f ^ maphash.String(s.seed, method)
}

// list adds up the calls, in the order of their first row, into a slice
// of their own.
func (s *callSet) list(u *UsageColumns) []Call {
	n := len(s.keys)
	if n == 0 {
		return nil
	}
	// Sort by hash in place, a byte at a time from the low one: four
	// passes between keys and tmp end in keys. The sort is stable, so rows
	// stay in order among equal hashes (rows added later are larger).
	if cap(s.tmp) < n {
		s.tmp = make([]uint64, n)
	}
	src, dst := s.keys, s.tmp[:n]
	for shift := 32; shift < 64; shift += 8 {
		var at [256]int
		for _, k := range src {
			at[byte(k>>shift)]++
		}
		sum := 0
		for i, c := range at {
			at[i], sum = sum, sum+c
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[at[b]] = k
			at[b]++
		}
		src, dst = dst, src
	}
	// lead[row]: the first row of the row's key, -1 for rows not
	// reported. Equal keys have equal hashes, so only rows within a run
	// of one hash are compared (nearly always one key).
	rows := u.Len()
	if cap(s.lead) < rows {
		s.lead = make([]int32, rows)
	}
	lead := s.lead[:rows]
	for i := range lead {
		lead[i] = -1
	}
	for i := 0; i < n; {
		j := i + 1
		for j < n && src[j]&callTagMask == src[i]&callTagMask {
			j++
		}
		for a := i; a < j; a++ {
			first := int32(uint32(src[a]))
			if lead[first] >= 0 {
				continue
			}
			lead[first] = first
			for _, k := range src[a+1 : j] {
				if r := int32(uint32(k)); lead[r] < 0 && sameCall(u, first, r) {
					lead[r] = first
				}
			}
		}
		i = j
	}
	// In row order: a key's first row makes its Call (and leaves the
	// Call's index in lead), the later ones add to it.
	out := make([]Call, 0, n)
	for r, first := range lead {
		switch {
		case first < 0:
		case int(first) == r:
			lead[r] = int32(len(out))
			out = append(out, Call{Tenant: u.tenant[r], User: u.user[r], Method: u.method[r], Endpoint: u.endpoint[r],
				Second: u.eventTime[r] / 1000, Count: 1, Cost: uint64(u.cost[r])})
		default:
			c := &out[lead[first]]
			c.Count++
			c.Cost += uint64(u.cost[r])
		}
	}
	return out
}

func sameCall(u *UsageColumns, a, b int32) bool {
	return u.eventTime[a]/1000 == u.eventTime[b]/1000 && u.user[a] == u.user[b] && u.endpoint[a] == u.endpoint[b] &&
		u.tenant[a] == u.tenant[b] && u.method[a] == u.method[b]
}

// reset empties the set, keeping its memory.
func (s *callSet) reset() { s.keys = s.keys[:0] }
