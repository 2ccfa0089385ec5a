package ingest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/apimeter/apimeter/store"
)

// Batch is a contiguous range of one partition's offsets, decoded: the
// unit that is loaded, deduplicated and committed as one.
type Batch struct {
	Topic     string
	Partition int32
	// First and Last bound the offsets the batch covers: First is where the
	// partition resumed (it may precede the first message), Last the last
	// message's offset.
	First, Last int64
	Usage       UsageColumns
	Features    FeatureColumns
	Rejected    []DeadLetter
	// Duplicates are the records dropped as producer retries.
	Duplicates []Duplicate
	Messages   int
	Bytes      int
	// MinEventMs and MaxEventMs span the accepted records' event times.
	MinEventMs, MaxEventMs int64
	// Replay marks a batch rebuilt from a pending intent after a crash or
	// a rebalance.
	Replay bool
	// calls adds up the records no decision counted (LoadedBatch.Calls);
	// its memory is kept from batch to batch.
	calls callSet
}

// Duplicate is a record dropped because its id was accepted already.
type Duplicate struct {
	Offset int64
	ID     string
}

// DeadLetter is a rejected message on its way to the dead-letter topic.
type DeadLetter struct {
	Key, Value  []byte
	Rejection   Rejection
	Topic       string
	Partition   int32
	Offset      int64
	TimestampMs int64
}

// reset empties the batch for the range starting at first, keeping the
// columns' memory.
func (b *Batch) reset(first int64) {
	b.Usage.Reset()
	b.Features.Reset()
	b.calls.reset()
	*b = Batch{Topic: b.Topic, Partition: b.Partition, First: first, Usage: b.Usage, Features: b.Features, calls: b.calls}
}

// Token names the batch for insert deduplication; the same range always
// has the same token.
func (b *Batch) Token() string {
	return fmt.Sprintf("%s:%d:%d-%d", b.Topic, b.Partition, b.First, b.Last)
}

// Empty reports whether the batch covers no message.
func (b *Batch) Empty() bool { return b.Messages == 0 }

// Accepted is the number of records to store.
func (b *Batch) Accepted() int { return b.Usage.Len() + b.Features.Len() }

// batcher is the decode stage of one partition: it turns messages into a
// batch, rejecting bad records and dropping retried ids.
type batcher struct {
	topic     string
	partition int32
	dec       *Decoder
	window    *windowPart
	// recorded, while an unfinished range is replayed, is the set of
	// offsets its first load recorded as duplicates (ingest_duplicates):
	// they decide instead of the window, so the replay makes the same rows.
	// nil otherwise.
	recorded map[int64]bool
	// decided says whether a decision counted a call already
	// (Config.Decided); nil: none did.
	decided func(tenant, user, decisionID string) bool
	rec     Record
}

// add decodes one message into b.
func (bt *batcher) add(b *Batch, m kafka.Message) {
	ts := m.Time.UnixMilli()
	if m.Time.IsZero() {
		ts = time.Now().UnixMilli()
	}
	b.Messages++
	b.Bytes += len(m.Value)
	b.Last = m.Offset
	src := Source{Topic: bt.topic, Partition: bt.partition, Offset: m.Offset, TimestampMs: ts}
	if rej := bt.dec.Decode(m.Value, src, &bt.rec); rej != nil {
		b.Rejected = append(b.Rejected, DeadLetter{
			Key: m.Key, Value: m.Value, Rejection: *rej,
			Topic: bt.topic, Partition: bt.partition, Offset: m.Offset, TimestampMs: ts,
		})
		return
	}
	r := &bt.rec
	if bt.duplicate(r.ID, m.Offset, ts) {
		b.Duplicates = append(b.Duplicates, Duplicate{Offset: m.Offset, ID: r.ID})
		return
	}
	if b.Accepted() == 0 || r.EventTimeMs < b.MinEventMs {
		b.MinEventMs = r.EventTimeMs
	}
	if r.EventTimeMs > b.MaxEventMs {
		b.MaxEventMs = r.EventTimeMs
	}
	if r.Type == TypeFeature {
		b.Features.Append(r)
		return
	}
	b.Usage.Append(r)
	if r.StatusCode != http.StatusTooManyRequests &&
		(r.DecisionID == "" || bt.decided == nil || !bt.decided(r.TenantID, r.UserID, r.DecisionID)) {
		b.calls.add(&b.Usage)
	}
}

// duplicate decides whether the record at offset repeats an accepted id.
func (bt *batcher) duplicate(id string, offset, ts int64) bool {
	if bt.recorded == nil {
		return bt.window.Check(id, offset, ts)
	}
	if bt.recorded[offset] {
		return true
	}
	bt.window.Keep(id, offset, ts)
	return false
}

// rejectionsBlock is the batch's rejected records for ingest_rejections.
func rejectionsBlock(letters []DeadLetter) *store.Block {
	n := len(letters)
	topic, reason, field, detail, sample := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	part, size := make([]int32, n), make([]uint32, n)
	offset, ts := make([]int64, n), make([]int64, n)
	for i, d := range letters {
		topic[i], part[i], offset[i], ts[i] = d.Topic, d.Partition, d.Offset, d.TimestampMs
		reason[i], field[i], detail[i] = string(d.Rejection.Reason), d.Rejection.Field, d.Rejection.Detail
		size[i] = uint32(len(d.Value))
		sample[i] = sampleOf(d.Value)
	}
	return store.NewBlock().
		Add("kafka_topic", "LowCardinality(String)", topic).
		Add("kafka_partition", "Int32", part).
		Add("kafka_offset", "Int64", offset).
		Add("kafka_timestamp", "DateTime64(3, 'UTC')", ts).
		Add("reason", "LowCardinality(String)", reason).
		Add("field", "LowCardinality(String)", field).
		Add("detail", "String", detail).
		Add("size", "UInt32", size).
		Add("sample", "String", sample)
}

// duplicatesBlock is the batch's dropped retries for ingest_duplicates.
func duplicatesBlock(b *Batch) *store.Block {
	n := len(b.Duplicates)
	topic, part, first, last := make([]string, n), make([]int32, n), make([]int64, n), make([]int64, n)
	offset, id := make([]int64, n), make([]string, n)
	for i, d := range b.Duplicates {
		topic[i], part[i], first[i], last[i] = b.Topic, b.Partition, b.First, b.Last
		offset[i], id[i] = d.Offset, d.ID
	}
	return store.NewBlock().
		Add("kafka_topic", "LowCardinality(String)", topic).
		Add("kafka_partition", "Int32", part).
		Add("first_offset", "Int64", first).
		Add("last_offset", "Int64", last).
		Add("kafka_offset", "Int64", offset).
		Add("id", "String", id)
}

// sampleOf keeps the start of a rejected record for people to look at,
// cut at a UTF-8 boundary when the bytes are UTF-8.
func sampleOf(b []byte) string {
	const max = 512
	if len(b) <= max {
		return string(b)
	}
	cut := max
	for cut > max-4 && cut > 0 && b[cut]&0xC0 == 0x80 {
		cut--
	}
	return string(b[:cut])
}

// ledgerBlock is the row ingest_batches keeps for a loaded batch.
func ledgerBlock(b *Batch, loadMs uint32) *store.Block {
	return store.NewBlock().
		Add("kafka_topic", "LowCardinality(String)", []string{b.Topic}).
		Add("kafka_partition", "Int32", []int32{b.Partition}).
		Add("first_offset", "Int64", []int64{b.First}).
		Add("last_offset", "Int64", []int64{b.Last}).
		Add("messages", "UInt32", []uint32{uint32(b.Messages)}).
		Add("records", "UInt32", []uint32{uint32(b.Usage.Len())}).
		Add("features", "UInt32", []uint32{uint32(b.Features.Len())}).
		Add("rejected", "UInt32", []uint32{uint32(len(b.Rejected))}).
		Add("duplicates", "UInt32", []uint32{uint32(len(b.Duplicates))}).
		Add("bytes", "UInt64", []uint64{uint64(b.Bytes)}).
		Add("min_event_time", "DateTime64(3, 'UTC')", []int64{b.MinEventMs}).
		Add("max_event_time", "DateTime64(3, 'UTC')", []int64{b.MaxEventMs}).
		Add("load_ms", "UInt32", []uint32{loadMs}).
		Add("replay", "UInt8", []uint8{boolByte(b.Replay)})
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}
