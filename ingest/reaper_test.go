package ingest

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A member whose process dies while it joins — its join sent, its
// connection gone before the answer — must not keep partitions from the
// live members for good: the broker removes it once it has been silent
// past any session, and the live member gets every partition.
func TestEmbeddedBrokerRemovesAMemberThatDiedJoining(t *testing.T) {
	const topic, group = "reaped", "reaped-group"
	br, err := StartBroker(BrokerConfig{Addr: "127.0.0.1:0", Topics: []string{topic}, Partitions: 4, ReapAfter: 2 * time.Second})
	require.NoError(t, err)
	defer br.Close()

	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: group, Brokers: []string{br.Addr()}, Topics: []string{topic},
		HeartbeatInterval: 500 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 30 * time.Second,
		JoinGroupBackoff: 200 * time.Millisecond,
	})
	require.NoError(t, err)
	defer cg.Close()
	var held atomic.Int32 // partitions of the live member's current generation
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			gen, err := cg.Next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				continue
			}
			held.Store(int32(len(gen.Assignments[topic])))
			gen.Start(func(ctx context.Context) { <-ctx.Done() })
		}
	}()
	require.Eventually(t, func() bool { return held.Load() == 4 }, 30*time.Second, 20*time.Millisecond)

	// Dying members: each a join, and its connection closed at once.
	// (Whether the broker then gives one a session timer is a coin toss
	// inside it; with eight, nearly surely some get none.)
	for i := range 8 {
		conn, err := net.Dial("tcp", br.Addr())
		require.NoError(t, err)
		req := kmsg.NewPtrJoinGroupRequest()
		req.Version = 1
		req.Group, req.ProtocolType = group, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 6000, 30000
		meta := kmsg.ConsumerMemberMetadata{Topics: []string{topic}}
		proto := kmsg.NewJoinGroupRequestProtocol()
		proto.Name, proto.Metadata = "range", meta.AppendTo(nil)
		req.Protocols = append(req.Protocols, proto)
		_, err = conn.Write(kmsg.NewRequestFormatter(kmsg.FormatterClientID("dying")).AppendRequest(nil, req, int32(i)))
		require.NoError(t, err)
		conn.Close()
	}
	// The live member rejoins with the dead ones in the group and holds
	// only its share...
	require.Eventually(t, func() bool { return held.Load() < 4 }, 30*time.Second, 20*time.Millisecond,
		"the dead members were given partitions")
	// ...until the broker removes them.
	require.Eventually(t, func() bool { return held.Load() == 4 && len(br.cluster.GroupInfo(group).Members) == 1 }, 60*time.Second, 50*time.Millisecond,
		"the live member got every partition back")
}
