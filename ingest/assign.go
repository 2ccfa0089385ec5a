package ingest

import (
	"context"
	_ "embed"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/apimeter/apimeter/store"
)

// assignment is what the partitions of one group generation share. Before
// any of them decides a record, the first to start finds where each
// resumes and restores the retry window from what they stored, so that a
// copy read on one partition right after a restart meets a copy another
// partition stored before it. Replays that decide by recorded duplicates
// (exact replays) go first: the others wait at the gate until every exact
// replay has claimed the ids it keeps.
type assignment struct {
	partitions []int
	once       sync.Once
	ready      bool
	resumes    map[int]*resume
	exact      atomic.Int32  // exact replays not finished
	gate       chan struct{} // closed when there are none left
}

// resume is where one partition starts.
type resume struct {
	// committed is the offset to read from: the committed one, or the one
	// after the last loaded range; -1 when there is neither.
	committed int64
	// replay is the unfinished range to load again first, if any.
	replay *intent
	// recorded are the offsets the replayed range's first load recorded as
	// duplicates; nil when it recorded none (or its load never began), and
	// the replay decides afresh.
	recorded map[int64]bool
	window   *windowPart
}

func newAssignment(partitions []kafka.PartitionAssignment) *assignment {
	a := &assignment{resumes: map[int]*resume{}, gate: make(chan struct{})}
	for _, p := range partitions {
		a.partitions = append(a.partitions, p.ID)
	}
	return a
}

// start returns where partition resumes, preparing the assignment first
// if no partition has; ok is false when ctx (the generation) ended first.
func (a *assignment) start(ctx context.Context, in *Ingester, partition int) (*resume, bool) {
	a.once.Do(func() { a.ready = in.prepare(ctx, a) })
	if !a.ready {
		return nil, false
	}
	return a.resumes[partition], true
}

// wait holds a partition's first decision by the window until the exact
// replays are done.
func (a *assignment) wait(ctx context.Context) bool {
	select {
	case <-a.gate:
		return true
	case <-ctx.Done():
		return false
	}
}

// replayed tells that an exact replay has decided its range.
func (a *assignment) replayed() {
	if a.exact.Add(-1) == 0 {
		close(a.gate)
	}
}

func (in *Ingester) prepare(ctx context.Context, a *assignment) bool {
	starts := make(map[int32]partStart, len(a.partitions))
	since := time.Now().UnixMilli()
	for _, p := range a.partitions {
		r, ok := in.resumeOf(ctx, p)
		if !ok {
			return false
		}
		if r.replay != nil {
			if r.recorded, ok = in.recordedDuplicates(ctx, p, *r.replay); !ok {
				return false
			}
		}
		a.resumes[p] = r
		if in.window.span > 0 {
			st := in.startOf(ctx, p, r.committed)
			starts[int32(p)] = st
			since = min(since, st.ms)
		} else {
			starts[int32(p)] = partStart{}
		}
	}
	parts := in.window.Assign(starts)
	exact := int32(0)
	for p, r := range a.resumes {
		r.window = parts[int32(p)]
		if r.recorded != nil {
			exact++
		}
	}
	if exact == 0 {
		close(a.gate)
	}
	a.exact.Store(exact)
	if in.window.span > 0 {
		return in.restoreWindow(ctx, a.partitions, since-in.window.span) == nil
	}
	return true
}

// resumeOf reads the partition's commit: the offset to resume from and an
// unfinished range to replay.
func (in *Ingester) resumeOf(ctx context.Context, partition int) (*resume, bool) {
	log := in.log.With("partition", partition)
	var committed int64
	var meta string
	for {
		var err error
		committed, meta, err = in.offsets.Fetch(ctx, partition)
		if err == nil {
			break
		}
		log.Warn("fetch committed offset", "err", err)
		if !sleep(ctx, time.Second) {
			return nil, false
		}
	}
	r := &resume{committed: committed}
	if it, ok := parseIntent(meta); ok && it.pending && it.first == committed {
		r.replay = &it
		log.Info("replaying an unfinished batch", "first", it.first, "last", it.last)
	}
	if committed < 0 {
		// No commit: a new group, or one whose offsets Kafka expired after
		// a long idle spell. Resume after the last range the store holds.
		if last, ok := in.lastLoaded(ctx, partition); ok {
			r.committed = last + 1
			log.Info("no committed offset; resuming after the last loaded batch", "offset", r.committed)
		}
	}
	return r, ctx.Err() == nil
}

// recordedDuplicates reads what the first load of an unfinished range
// recorded in ingest_duplicates; nil when nothing.
func (in *Ingester) recordedDuplicates(ctx context.Context, partition int, it intent) (map[int64]bool, bool) {
	for {
		rows, err := in.store.Query(ctx, `SELECT kafka_offset FROM ingest_duplicates
			WHERE kafka_topic = {topic:String} AND kafka_partition = {partition:Int32}
			  AND first_offset = {first:Int64} AND last_offset = {last:Int64}`,
			store.Named("topic", in.cfg.Topic), store.Named("partition", int32(partition)),
			store.Named("first", it.first), store.Named("last", it.last))
		if err == nil {
			var out map[int64]bool
			for rows.Next() {
				var off int64
				if err = rows.Scan(&off); err != nil {
					break
				}
				if out == nil {
					out = map[int64]bool{}
				}
				out[off] = true
			}
			if err == nil {
				err = rows.Err()
			}
			rows.Close()
			if err == nil {
				return out, true
			}
		}
		in.log.Warn("read the unfinished batch's duplicates; retrying", "partition", partition, "err", err)
		if !sleep(ctx, in.cfg.RetryMax) {
			return nil, false
		}
	}
}

// startOf finds the Kafka time of the message at offset (-1: the
// partition's first), where the partition resumes; now, and caught up,
// when there is none yet.
func (in *Ingester) startOf(ctx context.Context, partition int, offset int64) partStart {
	now := partStart{ms: time.Now().UnixMilli(), caughtUp: true}
	if offset < 0 {
		offset = kafka.FirstOffset
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := in.client.Fetch(fctx, &kafka.FetchRequest{
		Topic: in.cfg.Topic, Partition: partition, Offset: offset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond,
	})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		in.log.Warn("read where a partition resumes; taking now as its time", "partition", partition, "err", err)
		now.caughtUp = false
		return now
	}
	for {
		rec, err := res.Records.ReadRecord()
		if err != nil {
			return now
		}
		if rec.Offset >= offset {
			if rec.Time.IsZero() {
				return partStart{ms: now.ms}
			}
			return partStart{ms: rec.Time.UnixMilli()}
		}
	}
}

//go:embed restore_window.sql
var restoreWindowSQL string

// restoreWindow puts the ids the partitions stored from since (Kafka time,
// ms) into the retry window, with their positions: as many of each
// partition's newest as its cap holds.
func (in *Ingester) restoreWindow(ctx context.Context, partitions []int, since int64) error {
	for {
		rows, err := in.store.Query(ctx, restoreWindowSQL,
			store.Named("topic", in.cfg.Topic), store.Named("partitions", partitions),
			store.Named("since", time.UnixMilli(since)), store.Named("limit", uint64(in.cfg.DedupMaxIDs)))
		if err == nil {
			n := 0
			for rows.Next() {
				var id string
				var partition int32
				var offset, ts int64
				if err = rows.Scan(&id, &partition, &offset, &ts); err != nil {
					break
				}
				in.window.Remember(id, partition, offset, ts)
				n++
			}
			if err == nil {
				err = rows.Err()
			}
			rows.Close()
			if err == nil {
				in.log.Debug("retry window restored", "partitions", partitions, "ids", n)
				return nil
			}
		}
		in.log.Warn("restore the retry window; retrying", "err", err)
		if !sleep(ctx, in.cfg.RetryMax) {
			return ctx.Err()
		}
	}
}
