package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

func TestIntentMetadata(t *testing.T) {
	it, ok := parseIntent(pendingMeta(100, 250))
	require.True(t, ok)
	require.Equal(t, intent{pending: true, first: 100, last: 250}, it)
	it, ok = parseIntent(doneMeta(0, 0))
	require.True(t, ok)
	require.Equal(t, intent{first: 0, last: 0}, it)
	for _, bad := range []string{"", "something else", "apimeter/1 pending", "apimeter/1 pending 5-3", "apimeter/1 maybe 1-2", "apimeter/1 pending a-b", "apimeter/2 pending 1-2"} {
		_, ok := parseIntent(bad)
		require.False(t, ok, bad)
	}
}

// TestBatcherStage runs the decode stage alone: messages in, one batch out.
func TestBatcherStage(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	w := newIDWindow(60_000, 100)
	bt := &batcher{topic: "api-usage", partition: 2, dec: NewDecoder(Policy{}), window: w.Assign(map[int32]partStart{2: {}})[2]}
	b := &Batch{Topic: "api-usage", Partition: 2, First: 40}
	msg := func(off int64, v string) kafka.Message {
		return kafka.Message{Offset: off, Value: []byte(v), Time: now.Add(time.Duration(off) * time.Second), Key: []byte("k")}
	}
	bt.add(b, msg(41, `{"id":"a","userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1,"timestamp":"2026-11-27T09:59:00Z"}`))
	bt.add(b, msg(42, `{"id":"a","userId":"u","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":1}`)) // a retry
	bt.add(b, msg(43, `{"type":"feature","userId":"u","feature":"export","quantity":3}`))
	bt.add(b, msg(44, `{"userId":"u"}`))
	bt.add(b, msg(45, `{"id":"b","userId":"u","endpoint":"/y","method":"post","statusCode":503,"responseTimeMs":2.5,"timestamp":"2026-11-27T10:00:30Z"}`))

	require.Equal(t, int64(40), b.First, "the range starts where the partition resumed")
	require.Equal(t, int64(45), b.Last)
	require.Equal(t, "api-usage:2:40-45", b.Token())
	require.Equal(t, 5, b.Messages)
	require.Equal(t, 2, b.Usage.Len())
	require.Equal(t, 1, b.Features.Len())
	require.Equal(t, []Duplicate{{Offset: 42, ID: "a"}}, b.Duplicates)
	require.Len(t, b.Rejected, 1)
	require.Equal(t, ReasonMissingField, b.Rejected[0].Rejection.Reason)
	require.Equal(t, int64(44), b.Rejected[0].Offset)
	require.Equal(t, []byte(`{"userId":"u"}`), b.Rejected[0].Value, "the original bytes")
	require.Equal(t, time.Date(2026, 11, 27, 9, 59, 0, 0, time.UTC).UnixMilli(), b.MinEventMs)
	require.Equal(t, now.Add(43*time.Second).UnixMilli(), b.MaxEventMs, "the feature record took its Kafka time")

	// The feature record without id got one from its coordinates.
	blk := b.Features.Block()
	require.Equal(t, []string{"kafka:api-usage:2:43"}, blk.Columns()[0].Data)

	b.reset(46)
	require.True(t, b.Empty())
	require.Zero(t, b.Usage.Len())
	require.Equal(t, int64(46), b.First)
}

// TestBatcherCalls checks which of a batch's records are reported calls
// for the limiter, and how they add up.
func TestBatcherCalls(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 1, 0, 0, time.UTC)
	w := newIDWindow(60_000, 100)
	decided := map[[3]string]bool{{"t1", "u1", "dec-ok"}: true}
	var asked [][3]string
	bt := &batcher{topic: "api-usage", partition: 0, dec: NewDecoder(Policy{}), window: w.Assign(map[int32]partStart{0: {}})[0],
		decided: func(tenant, user, id string) bool {
			asked = append(asked, [3]string{tenant, user, id})
			return decided[[3]string{tenant, user, id}]
		}}
	b := &Batch{Topic: "api-usage", First: 41}
	add := func(off int64, v string) {
		bt.add(b, kafka.Message{Offset: off, Value: []byte(v), Time: now.Add(time.Duration(off) * time.Millisecond)})
	}
	call := func(tenant, user, method, status, ts, extra string) string {
		return `{"tenantId":"` + tenant + `","userId":"` + user + `","endpoint":"/a","method":"` + method + `","statusCode":` + status +
			`,"responseTimeMs":3,"timestamp":"2026-11-27T10:00:` + ts + `Z"` + extra + `}`
	}
	add(41, call("t1", "u1", "GET", "200", "00.100", `,"id":"a"`))                              // reported, cost 1
	add(42, call("t1", "u1", "GET", "200", "00.900", `,"cost":5,"decisionId":"dec-unknown"`))   // a decision no one counted: reported
	add(43, call("t1", "u1", "GET", "200", "00.500", `,"cost":7,"decisionId":"dec-ok"`))        // counted by its decision
	add(44, call("t1", "u1", "GET", "429", "00.200", ``))                                       // refused: not usage
	add(45, call("t1", "u1", "GET", "200", "00.100", `,"id":"a"`))                              // a retry of 41
	add(46, `{"type":"feature","tenantId":"t1","userId":"u1","feature":"export","quantity":2}`) // a feature
	add(47, call("t1", "u1", "GET", "999", "00.100", ``))                                       // rejected
	add(48, call("t1", "u1", "GET", "200", "01.000", `,"cost":0`))                              // the next second, cost 0
	add(49, call("t2", "u1", "GET", "200", "00.300", `,"decisionId":"dec-ok"`))                 // t1's decision, not t2's
	add(50, call("t1", "u1", "post", "201", "00.400", `,"cost":2`))                             // another method
	add(51, call("t1", "u2", "GET", "200", "00.000", ``))                                       // another user
	add(52, call("t1", "u1", "GET", "503", "00.999", ``))                                       // a failed call is usage

	require.Len(t, b.Duplicates, 1)
	require.Len(t, b.Rejected, 1)
	require.Equal(t, 9, b.Usage.Len(), "every API call but the retry and the rejected one is stored")
	require.ElementsMatch(t, [][3]string{{"t1", "u1", "dec-unknown"}, {"t1", "u1", "dec-ok"}, {"t2", "u1", "dec-ok"}}, asked)

	s0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).Unix()
	first := summarize(b).Calls
	require.Equal(t, []Call{
		{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/a", Second: s0, Count: 3, Cost: 1 + 5 + 1}, // 41, 42, 52
		{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/a", Second: s0 + 1, Count: 1, Cost: 0},     // 48
		{Tenant: "t2", User: "u1", Method: "GET", Endpoint: "/a", Second: s0, Count: 1, Cost: 1},         // 49
		{Tenant: "t1", User: "u1", Method: "POST", Endpoint: "/a", Second: s0, Count: 1, Cost: 2},        // 50
		{Tenant: "t1", User: "u2", Method: "GET", Endpoint: "/a", Second: s0, Count: 1, Cost: 1},         // 51
	}, first)

	// The next batch starts from nothing, and the last one's calls stay
	// as they were handed out.
	b.reset(53)
	add(53, call("t1", "u1", "GET", "200", "00.100", `,"cost":4`))
	require.Equal(t, []Call{{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/a", Second: s0, Count: 1, Cost: 4}}, summarize(b).Calls)
	require.Equal(t, Call{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/a", Second: s0, Count: 3, Cost: 7}, first[0])

	// Without Decided, a decision id counts nothing.
	bt.decided = nil
	b.reset(54)
	add(54, call("t1", "u1", "GET", "200", "00.100", `,"decisionId":"dec-ok"`))
	require.Equal(t, []Call{{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/a", Second: s0, Count: 1, Cost: 1}}, summarize(b).Calls)
}

// TestCallsHashCollision gives two keys one hash: each still gets a
// Call of its own.
func TestCallsHashCollision(t *testing.T) {
	var u UsageColumns
	var s callSet
	a := Record{TenantID: "t1", UserID: "u1", Method: "GET", Endpoint: "/a", EventTimeMs: 5_000, Cost: 1}
	c := Record{TenantID: "t1", UserID: "u2", Method: "GET", Endpoint: "/a", EventTimeMs: 5_999, Cost: 3}
	for _, r := range []*Record{&a, &c, &c, &a} {
		u.Append(r)
		s.add(&u)
	}
	for i := range s.keys { // a's hash for all four
		s.keys[i] = s.keys[0]&callTagMask | uint64(i)
	}
	require.Equal(t, []Call{
		{Tenant: "t1", User: "u1", Method: "GET", Endpoint: "/a", Second: 5, Count: 2, Cost: 2},
		{Tenant: "t1", User: "u2", Method: "GET", Endpoint: "/a", Second: 5, Count: 2, Cost: 6},
	}, s.list(&u))
}

// TestCallsManyKeys adds up keys spread over many hashes, with rows
// not reported among them, lists, adds more, and lists again.
func TestCallsManyKeys(t *testing.T) {
	var b Batch
	const n = 5000
	row := func(i int, reported bool) {
		b.Usage.Append(&Record{TenantID: "t", UserID: fmt.Sprint("u", i%1000), Method: "GET", Endpoint: "/a", EventTimeMs: int64(i/1000) * 1000, Cost: 2})
		if reported {
			b.calls.add(&b.Usage)
		}
	}
	want := func(count uint32) []Call {
		w := make([]Call, n)
		for i := range w {
			w[i] = Call{Tenant: "t", User: fmt.Sprint("u", i%1000), Method: "GET", Endpoint: "/a", Second: int64(i / 1000), Count: count, Cost: 2 * uint64(count)}
		}
		return w
	}
	for i := range n {
		row(n-1-i, false) // not reported: the calls' first rows come after them
	}
	for range 2 {
		for i := range n {
			row(i, true)
		}
	}
	require.Equal(t, want(2), b.calls.list(&b.Usage))
	for i := range n {
		row(n-1-i, true) // more of each key, in the other order
	}
	require.Equal(t, want(3), b.calls.list(&b.Usage))
	b.reset(0)
	require.Nil(t, b.calls.list(&b.Usage))
}
