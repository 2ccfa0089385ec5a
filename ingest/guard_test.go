package ingest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

// The guard belongs to the embedded broker, so these tests start one even
// when KAFKA_BROKERS names a real Kafka.

func guardedBroker(t *testing.T, group, secret string, log *slog.Logger, reg prometheus.Registerer) *Broker {
	t.Helper()
	br, err := StartBroker(BrokerConfig{Addr: "127.0.0.1:0", Partitions: 4, Group: group, GroupSecret: secret, Log: log, Registerer: reg})
	require.NoError(t, err)
	t.Cleanup(br.Close)
	return br
}

// freshRecords are n good records with ids of their own (prefix), none
// sent twice.
func freshRecords(n int, prefix string) *workload {
	now := time.Now()
	g := NewGenerator(GeneratorConfig{Count: n, Start: now.Add(-time.Hour), Span: time.Hour, Users: 100})
	w := &workload{bad: map[Reason]int{}}
	var r Record
	for g.Next(&r) {
		r.ID = prefix + r.ID
		w.msgs = append(w.msgs, message{key: []byte(r.ID), value: r.AppendJSON(nil)})
		w.apiCalls++
	}
	return w
}

// gathered is the value of one series in reg (0 when absent).
func gathered(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func refused(t testing.TB, reg prometheus.Gatherer, request string) float64 {
	return gathered(t, reg, "apimeter_embedded_kafka_refused_total", map[string]string{"request": request})
}

// syncBuffer is a log destination tests read while the code writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func bufferLog(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// committedOffsets reads the group's commit of every partition.
func committedOffsets(t *testing.T, cfg Config) map[int]string {
	t.Helper()
	offsets := &groupOffsets{client: &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second}, group: cfg.Group, topic: cfg.Topic}
	out := map[int]string{}
	for p := 0; p < cfg.Partitions; p++ {
		off, meta, err := offsets.Fetch(context.Background(), p)
		require.NoError(t, err)
		out[p] = fmt.Sprintf("%d %s", off, meta)
	}
	return out
}

// TestEmbeddedBrokerRefusesForeignGroupMembers: while the ingester runs,
// a consumer of another program joins its group by name as records
// arrive. It is refused, gets no record, and the ingester stores every
// record once.
func TestEmbeddedBrokerRefusesForeignGroupMembers(t *testing.T) {
	db := migratedStore(t)
	cfg := testConfig(nil)
	secret, err := LoadGroupSecret(t.TempDir())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	brokerLog := &syncBuffer{}
	br := guardedBroker(t, cfg.Group, secret, bufferLog(brokerLog), reg)
	cfg.Brokers, cfg.GroupSecret = []string{br.Addr()}, secret
	produce(t, cfg, nil) // the topics

	in, _ := startIngester(t, cfg, db, quietLog(), nil)
	waitFor(t, time.Minute, "the ingester owns every partition", func() bool { return in.Stats().Partitions == cfg.Partitions })

	foreign := kafka.NewReader(kafka.ReaderConfig{
		Brokers: cfg.Brokers, GroupID: cfg.Group, Topic: cfg.Topic, MaxWait: 100 * time.Millisecond,
		JoinGroupBackoff: 200 * time.Millisecond, Dialer: &kafka.Dialer{ClientID: "someone-else", Timeout: 10 * time.Second},
	})
	defer foreign.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if _, err := foreign.ReadMessage(ctx); err == nil {
				got.Add(1)
			}
		}
	}()
	waitFor(t, time.Minute, "the foreign consumer is answered", func() bool {
		if refused(t, reg, "JoinGroup") > 0 {
			return true
		}
		info := br.cluster.GroupInfo(cfg.Group) // or it is in, with partitions
		return info != nil && info.State == "Stable" && len(info.Members) > 1 && info.NumAssigned() == cfg.Partitions
	})

	w := freshRecords(1000, "guard-")
	produce(t, cfg, w.msgs)
	waitFor(t, time.Minute, "every record stored", func() bool { return ledgerMessages(t, db, cfg.Topic) >= 1000 })
	w.checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(1000), ledgerMessages(t, db, cfg.Topic))
	require.Zero(t, got.Load(), "records the foreign consumer read")
	require.GreaterOrEqual(t, refused(t, reg, "JoinGroup"), 1.0)
	info := br.cluster.GroupInfo(cfg.Group)
	require.Len(t, info.Members, 1)
	require.Equal(t, ClientID, info.Members[0].ClientID)

	// The refusals are logged at warn, naming neither the secret nor any
	// member id.
	logged := brokerLog.String()
	require.Contains(t, logged, "level=WARN")
	require.Contains(t, logged, "JoinGroup")
	require.NotContains(t, logged, secret)
	require.NotContains(t, logged, info.Members[0].MemberID)
}

// TestEmbeddedBrokerGuardsTheEmptyGroup: with the ingester stopped, a
// foreign client can neither join the group nor commit, delete or reset
// its offsets; the next ingester stores everything once.
func TestEmbeddedBrokerGuardsTheEmptyGroup(t *testing.T) {
	db := migratedStore(t)
	cfg := testConfig(nil)
	secret, err := LoadGroupSecret(t.TempDir())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	brokerLog := &syncBuffer{}
	br := guardedBroker(t, cfg.Group, secret, bufferLog(brokerLog), reg)
	cfg.Brokers, cfg.GroupSecret = []string{br.Addr()}, secret

	first := freshRecords(500, "first-")
	produce(t, cfg, first.msgs)
	stop := runIngester(t, cfg, db)
	waitFor(t, time.Minute, "the first records stored", func() bool { return ledgerMessages(t, db, cfg.Topic) >= 500 })
	stop()
	before := committedOffsets(t, cfg)

	ctx := context.Background()
	client := &kafka.Client{Addr: kafka.TCP(br.Addr()), Timeout: 10 * time.Second}
	join := func(protocol string, userData []byte) error {
		resp, err := client.JoinGroup(ctx, &kafka.JoinGroupRequest{
			GroupID: cfg.Group, SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second, ProtocolType: "consumer",
			Protocols: []kafka.GroupProtocol{{Name: protocol, Metadata: kafka.GroupProtocolSubscription{Topics: []string{cfg.Topic}, UserData: userData}}},
		})
		require.NoError(t, err)
		return resp.Error
	}
	require.ErrorIs(t, join("range", nil), kafka.GroupAuthorizationFailed)
	// The ingesters' protocol without the secret, or with another one.
	require.ErrorIs(t, join(balancerProtocol, []byte(balancerMarker)), kafka.GroupAuthorizationFailed)
	require.ErrorIs(t, join(balancerProtocol, []byte(balancerMarker+" "+strings.Repeat("0", len(secret)))), kafka.GroupAuthorizationFailed)

	// A commit without a generation, as a simple consumer or an offsets
	// reset tool sends it.
	oc, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: cfg.Group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{cfg.Topic: {{Partition: 0, Offset: 1_000_000}, {Partition: 1, Offset: 1_000_000}}},
	})
	require.NoError(t, err)
	require.Len(t, oc.Topics[cfg.Topic], 2)
	for _, p := range oc.Topics[cfg.Topic] {
		require.ErrorIs(t, p.Error, kafka.GroupAuthorizationFailed)
	}
	// A commit naming a member and a generation no one was admitted with.
	oc, err = client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: cfg.Group, GenerationID: 1, MemberID: "someone-else-1",
		Topics: map[string][]kafka.OffsetCommit{cfg.Topic: {{Partition: 2, Offset: 1_000_000}}},
	})
	require.NoError(t, err)
	require.Error(t, oc.Topics[cfg.Topic][0].Error)

	od, err := client.OffsetDelete(ctx, &kafka.OffsetDeleteRequest{GroupID: cfg.Group, Topics: map[string][]int{cfg.Topic: {0, 1, 2, 3}}})
	require.NoError(t, err)
	require.ErrorIs(t, od.Error, kafka.GroupAuthorizationFailed)

	dg, err := client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{cfg.Group}})
	require.NoError(t, err)
	require.ErrorIs(t, dg.Errors[cfg.Group], kafka.GroupAuthorizationFailed)

	tc, err := client.TxnOffsetCommit(ctx, &kafka.TxnOffsetCommitRequest{
		TransactionalID: "someone-else", GroupID: cfg.Group, ProducerID: 1, ProducerEpoch: 0, GenerationID: -1,
		Topics: map[string][]kafka.TxnOffsetCommit{cfg.Topic: {{Partition: 3, Offset: 1_000_000}}},
	})
	require.NoError(t, err)
	require.ErrorIs(t, tc.Topics[cfg.Topic][0].Error, kafka.GroupAuthorizationFailed)

	require.Equal(t, before, committedOffsets(t, cfg), "the group's commits")
	require.GreaterOrEqual(t, refused(t, reg, "JoinGroup"), 3.0)
	require.GreaterOrEqual(t, refused(t, reg, "OffsetCommit"), 1.0)
	require.GreaterOrEqual(t, refused(t, reg, "OffsetDelete"), 1.0)
	require.GreaterOrEqual(t, refused(t, reg, "DeleteGroups"), 1.0)
	require.GreaterOrEqual(t, refused(t, reg, "TxnOffsetCommit"), 1.0)

	// A loop of refusals does not flood the log.
	for range 20 {
		require.ErrorIs(t, join("range", nil), kafka.GroupAuthorizationFailed)
	}
	lines := strings.Count(brokerLog.String(), "level=WARN")
	require.Positive(t, lines)
	require.Less(t, lines, 10, "warn lines for 27 refusals")

	// The next ingester resumes where the first one stopped.
	more := freshRecords(500, "more-")
	produce(t, cfg, more.msgs)
	runIngester(t, cfg, db)
	waitFor(t, time.Minute, "every record stored", func() bool { return ledgerMessages(t, db, cfg.Topic) >= 1000 })
	both := &workload{apiCalls: first.apiCalls + more.apiCalls}
	both.checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(1000), ledgerMessages(t, db, cfg.Topic))
}

// TestGuardedGroupWithoutCommitsResumesFromLedger: an ingester that
// finds no commit in its (guarded) group resumes after the ranges the
// store recorded, and its commits are admitted.
func TestGuardedGroupWithoutCommitsResumesFromLedger(t *testing.T) {
	db := migratedStore(t)
	cfg := testConfig(nil)
	secret, err := LoadGroupSecret(t.TempDir())
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	br := guardedBroker(t, cfg.Group, secret, nil, reg)
	cfg.Brokers, cfg.GroupSecret = []string{br.Addr()}, secret

	// Another group (not guarded) loads the first records.
	first := freshRecords(500, "first-")
	produce(t, cfg, first.msgs)
	other := cfg
	other.Group = randomName("other-")
	stop := runIngester(t, other, db)
	waitFor(t, time.Minute, "the first records stored", func() bool { return ledgerMessages(t, db, cfg.Topic) >= 500 })
	stop()

	more := freshRecords(500, "more-")
	produce(t, cfg, more.msgs)
	runIngester(t, cfg, db)
	waitFor(t, time.Minute, "every record stored", func() bool { return ledgerMessages(t, db, cfg.Topic) >= 1000 })
	both := &workload{apiCalls: first.apiCalls + more.apiCalls}
	both.checkStoredOnce(t, db, cfg.Topic)
	require.Equal(t, uint64(1000), ledgerMessages(t, db, cfg.Topic))
	var committed int64
	for _, c := range br.cluster.GroupInfo(cfg.Group).Commits[cfg.Topic] {
		committed += c.Offset
	}
	require.Equal(t, int64(1000), committed, "the guarded group's commits")
	require.Zero(t, refused(t, reg, "OffsetCommit"))
	require.Zero(t, refused(t, reg, "JoinGroup"))
}

// TestEmbeddedBrokerDescribesTheGroupWithoutCredentials: describing the
// ingesters' group shows who is in it, but neither the secret nor the
// member ids a commit could be forged with.
func TestEmbeddedBrokerDescribesTheGroupWithoutCredentials(t *testing.T) {
	db := migratedStore(t)
	cfg := testConfig(nil)
	secret, err := LoadGroupSecret(t.TempDir())
	require.NoError(t, err)
	br := guardedBroker(t, cfg.Group, secret, nil, nil)
	cfg.Brokers, cfg.GroupSecret = []string{br.Addr()}, secret
	produce(t, cfg, nil)
	in, _ := startIngester(t, cfg, db, quietLog(), nil)
	waitFor(t, time.Minute, "the ingester owns every partition", func() bool { return in.Stats().Partitions == cfg.Partitions })

	info := br.cluster.GroupInfo(cfg.Group)
	require.Len(t, info.Members, 1)
	client := &kafka.Client{Addr: kafka.TCP(br.Addr()), Timeout: 10 * time.Second}
	resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{cfg.Group}})
	require.NoError(t, err)
	require.Len(t, resp.Groups, 1)
	g := resp.Groups[0]
	require.NoError(t, g.Error)
	require.Equal(t, "Stable", g.GroupState)
	require.Len(t, g.Members, 1)
	m := g.Members[0]
	require.Equal(t, ClientID, m.ClientID)
	require.NotEmpty(t, m.ClientHost)
	require.NotEqual(t, info.Members[0].MemberID, m.MemberID)
	require.NotContains(t, m.MemberID, info.Members[0].MemberID)
	require.NotContains(t, string(m.MemberMetadata.UserData), secret)
	require.Equal(t, balancerMarker, string(m.MemberMetadata.UserData))
	var assigned []int
	for _, a := range m.MemberAssignments.Topics {
		assigned = append(assigned, a.Partitions...)
	}
	require.ElementsMatch(t, []int{0, 1, 2, 3}, assigned)
	require.NoError(t, in.Ready(context.Background()))
}

func TestGroupSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kafka")
	secret, err := LoadGroupSecret(dir)
	require.NoError(t, err)
	require.Len(t, secret, 64)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	path := filepath.Join(dir, entries[0].Name())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, secret, strings.TrimSpace(string(b)))

	// A restart reads the same secret; a file others could read is
	// closed again.
	require.NoError(t, os.Chmod(path, 0o644))
	again, err := LoadGroupSecret(dir)
	require.NoError(t, err)
	require.Equal(t, secret, again)
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	// Another data directory has another secret.
	other, err := LoadGroupSecret(t.TempDir())
	require.NoError(t, err)
	require.NotEqual(t, secret, other)

	// A damaged file is an error naming it, not a new secret.
	require.NoError(t, os.WriteFile(path, []byte("abc\n"), 0o600))
	_, err = LoadGroupSecret(dir)
	require.ErrorContains(t, err, path)
}

// TestReadinessNamesForeignGroupMembers: on a broker that cannot refuse
// them (a real Kafka, or the embedded broker without its guard), a
// consumer of another program in the ingesters' group fails the kafka
// readiness check, is counted and logged by its client id and host.
func TestReadinessNamesForeignGroupMembers(t *testing.T) {
	brokers := testBrokers(t)
	db := migratedStore(t)
	cfg := testConfig(brokers)
	cfg.GroupCheckInterval = 200 * time.Millisecond
	cfg.GroupSecret = "0123456789abcdef0123456789abcdef" // unguarded here: it must still never be logged
	produce(t, cfg, freshRecords(100, "ready-").msgs)

	foreign := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: cfg.Group, Topic: cfg.Topic, MaxWait: 100 * time.Millisecond,
		Dialer: &kafka.Dialer{ClientID: "debugging-consumer", Timeout: 10 * time.Second},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			foreign.ReadMessage(ctx)
		}
	}()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	waitFor(t, time.Minute, "the foreign consumer in the group", func() bool {
		resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{cfg.Group}})
		return err == nil && len(resp.Groups) == 1 && len(resp.Groups[0].Members) == 1
	})

	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	in, _ := startIngester(t, cfg, db, bufferLog(logs), reg)
	var readyErr error
	waitFor(t, time.Minute, "readiness to name the foreign member", func() bool {
		readyErr = in.Ready(ctx)
		return readyErr != nil && strings.Contains(readyErr.Error(), "debugging-consumer")
	})
	require.Contains(t, readyErr.Error(), cfg.Group)
	require.Contains(t, readyErr.Error(), "127.0.0.1")
	require.Equal(t, 1.0, gathered(t, reg, "apimeter_ingest_foreign_group_members", nil))
	waitFor(t, time.Minute, "the periodic check to log it", func() bool {
		return strings.Contains(logs.String(), "debugging-consumer")
	})
	logged := logs.String()
	require.Contains(t, logged, "level=WARN")
	require.NotContains(t, logged, cfg.GroupSecret)

	// Once it leaves, the ingester takes the partitions and is ready.
	cancel()
	require.NoError(t, foreign.Close())
	waitFor(t, 2*time.Minute, "ready again", func() bool { return in.Ready(context.Background()) == nil && in.Stats().Partitions == cfg.Partitions })
	require.Equal(t, 0.0, gathered(t, reg, "apimeter_ingest_foreign_group_members", nil))
}

// TestBalancerAssignsOnlyIngesters: a member that speaks the ingesters'
// protocol without their user data gets no partition.
func TestBalancerAssignsOnlyIngesters(t *testing.T) {
	b := ingesterBalancer{}
	ours, err := b.UserData()
	require.NoError(t, err)
	members := []kafka.GroupMember{
		{ID: "a", Topics: []string{"t"}, UserData: ours},
		{ID: "b", Topics: []string{"t"}, UserData: nil},
		{ID: "c", Topics: []string{"t"}, UserData: append([]byte(nil), ours...)},
	}
	var parts []kafka.Partition
	for i := range 4 {
		parts = append(parts, kafka.Partition{Topic: "t", ID: i})
	}
	got := b.AssignGroups(members, parts)
	require.Empty(t, got["b"]["t"])
	require.ElementsMatch(t, []int{0, 1, 2, 3}, append(append([]int(nil), got["a"]["t"]...), got["c"]["t"]...))
	require.Len(t, got["a"]["t"], 2)
}
