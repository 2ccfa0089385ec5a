package ingest

import (
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
