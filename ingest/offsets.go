package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go"
)

// The partition ledger lives in the consumer group's committed offsets.
// Before a batch [a, b] is loaded, the ingester commits offset a with the
// metadata "apimeter/1 pending a-b" (its intent); after the load, offset
// b+1 with "apimeter/1 done a-b". A commit is accepted only from the
// current generation's member, so a consumer that lost the partition
// cannot write an intent, and the next owner finds any unfinished intent
// and replays exactly that range with the same deduplication token.

const intentPrefix = "apimeter/1 "

// intent is a parsed commit metadata.
type intent struct {
	pending     bool
	first, last int64
}

func pendingMeta(first, last int64) string {
	return fmt.Sprintf("%spending %d-%d", intentPrefix, first, last)
}

func doneMeta(first, last int64) string {
	return fmt.Sprintf("%sdone %d-%d", intentPrefix, first, last)
}

// parseIntent reads commit metadata; ok is false for metadata apimeter did
// not write (another consumer, or none).
func parseIntent(meta string) (intent, bool) {
	rest, ok := strings.CutPrefix(meta, intentPrefix)
	if !ok {
		return intent{}, false
	}
	state, rng, ok := strings.Cut(rest, " ")
	if !ok || (state != "pending" && state != "done") {
		return intent{}, false
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return intent{}, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return intent{}, false
	}
	return intent{pending: state == "pending", first: first, last: last}, true
}

// offsetStore reads and writes the group's committed offsets.
type offsetStore interface {
	// Fetch returns the committed offset (-1 when none) and its metadata.
	Fetch(ctx context.Context, partition int) (int64, string, error)
	// Commit commits offset with metadata as the generation's member.
	Commit(ctx context.Context, gen *kafka.Generation, partition int, offset int64, meta string) error
}

// groupOffsets is offsetStore on the Kafka group coordinator.
type groupOffsets struct {
	client *kafka.Client
	group  string
	topic  string
}

func (g *groupOffsets) Fetch(ctx context.Context, partition int) (int64, string, error) {
	resp, err := g.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: g.group,
		Topics:  map[string][]int{g.topic: {partition}},
	})
	if err != nil {
		return 0, "", err
	}
	if resp.Error != nil {
		return 0, "", resp.Error
	}
	for _, p := range resp.Topics[g.topic] {
		if p.Partition == partition {
			if p.Error != nil {
				return 0, "", p.Error
			}
			return p.CommittedOffset, p.Metadata, nil
		}
	}
	return -1, "", nil
}

// errFenced reports a commit refused because the member no longer owns the
// partition (a rebalance moved on without it).
var errFenced = errors.New("ingest: commit refused: this consumer is no longer in the group's current generation")

func (g *groupOffsets) Commit(ctx context.Context, gen *kafka.Generation, partition int, offset int64, meta string) error {
	resp, err := g.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID:      g.group,
		GenerationID: int(gen.ID),
		MemberID:     gen.MemberID,
		Topics:       map[string][]kafka.OffsetCommit{g.topic: {{Partition: partition, Offset: offset, Metadata: meta}}},
	})
	if err != nil {
		return err
	}
	for _, p := range resp.Topics[g.topic] {
		if p.Error != nil {
			if errors.Is(p.Error, kafka.IllegalGeneration) || errors.Is(p.Error, kafka.UnknownMemberId) ||
				errors.Is(p.Error, kafka.RebalanceInProgress) || errors.Is(p.Error, kafka.FencedInstanceID) {
				return fmt.Errorf("%w (%v)", errFenced, p.Error)
			}
			return p.Error
		}
	}
	return nil
}
