package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The embedded broker keeps a consumer group member whose process died
// while it was joining: its join's answer cannot be delivered, and then no
// session timer runs for it. If the group's other members sync before the
// rebalance times out, the group is stable with the dead member in it, the
// partitions assigned to it are read by no one, and nothing ever triggers
// another rebalance — a restarted ingester takes only some partitions and
// the rest wait forever. (Seen with an ingester killed with SIGKILL just
// after it started.)
//
// So the broker watches every request that names a member of a group
// (heartbeats, syncs, rejoins, offset commits) and, every reapEvery, asks
// each group of its members; one not heard from for reapAfter — longer
// than any client's session timeout — is told to leave, which removes it
// and rebalances the group as its session's end would have.

// reaper removes members the broker no longer hears from.
type reaper struct {
	c      *kfake.Cluster
	client *kafka.Client
	log    *slog.Logger
	after  time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[memberKey]time.Time // last request naming the member, or when the reaper first saw it
}

type memberKey struct{ group, member string }

// reapEvery is how often the reaper looks at the groups.
const reapEvery = 5 * time.Second

func startReaper(c *kfake.Cluster, after time.Duration, log *slog.Logger) (stop func()) {
	r := &reaper{c: c, client: &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()[0]), Timeout: 10 * time.Second},
		log: log, after: after, now: time.Now, seen: map[memberKey]time.Time{}}
	for _, key := range []kmsg.Key{kmsg.Heartbeat, kmsg.SyncGroup, kmsg.JoinGroup, kmsg.OffsetCommit} {
		c.ControlKey(int16(key), r.observe)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(reapEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.sweep(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// observe notes that a member spoke; it never handles the request.
func (r *reaper) observe(req kmsg.Request) (kmsg.Response, error, bool) {
	r.c.KeepControl()
	var k memberKey
	switch q := req.(type) {
	case *kmsg.HeartbeatRequest:
		k = memberKey{q.Group, q.MemberID}
	case *kmsg.SyncGroupRequest:
		k = memberKey{q.Group, q.MemberID}
	case *kmsg.JoinGroupRequest:
		k = memberKey{q.Group, q.MemberID}
	case *kmsg.OffsetCommitRequest:
		k = memberKey{q.Group, q.MemberID}
	}
	if k.member != "" {
		r.mu.Lock()
		r.seen[k] = r.now()
		r.mu.Unlock()
	}
	return nil, nil, false
}

// sweep asks every group of its members and tells the silent ones to
// leave, all of a group's at once (one rebalance).
func (r *reaper) sweep(ctx context.Context) {
	groups, err := r.client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil {
		return
	}
	now := r.now()
	alive := map[memberKey]bool{}
	for _, g := range groups.Groups {
		info := r.c.GroupInfo(g.GroupID)
		if info == nil {
			continue
		}
		var silent []kafka.LeaveGroupRequestMember
		for _, m := range info.Members {
			k := memberKey{g.GroupID, m.MemberID}
			alive[k] = true
			r.mu.Lock()
			last, ok := r.seen[k]
			if !ok {
				r.seen[k] = now // known from now on; a live member speaks within seconds
			}
			r.mu.Unlock()
			if ok && now.Sub(last) > r.after {
				silent = append(silent, kafka.LeaveGroupRequestMember{ID: m.MemberID})
			}
		}
		if len(silent) == 0 {
			continue
		}
		r.log.Warn("embedded kafka: removing group members not heard from", "group", g.GroupID, "members", len(silent), "silent_for", r.after)
		if _, err := r.client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: g.GroupID, Members: silent}); err != nil {
			r.log.Warn("embedded kafka: remove silent group members", "group", g.GroupID, "err", err)
		}
	}
	// Forget members that are gone.
	r.mu.Lock()
	for k := range r.seen {
		if !alive[k] {
			delete(r.seen, k)
		}
	}
	r.mu.Unlock()
}
