package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/store"
)

// TestIngestSurvivesSIGKILL produces a million records, kills the
// ingesting process with SIGKILL at three random moments, restarts it each
// time, and checks that every record is stored exactly once in the raw
// table and in every rollup.
func TestIngestSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("long: a million records and three crashes")
	}
	const total = 1_000_000
	bin := buildBinary(t)
	data := t.TempDir()

	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		br, err := ingest.StartBroker(ingest.BrokerConfig{Addr: "127.0.0.1:0", Partitions: 4})
		require.NoError(t, err)
		defer br.Close()
		brokers = br.Addr()
	}
	topic := fmt.Sprintf("crash-%d", time.Now().UnixNano())
	group := topic + "-group"
	env := []string{
		"APIMETER_DATA_DIR=" + data, "CLICKHOUSE_URL=", "KAFKA_BROKERS=" + brokers,
		"KAFKA_TOPIC=" + topic, "KAFKA_GROUP=" + group, "KAFKA_PARTITIONS=4",
	}

	// Produce everything first; the topic is created by the producer with
	// the broker's default partition count, or by the first ingester.
	apiCalls, features := produceGenerated(t, strings.Split(brokers, ","), topic, total)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for kill := 1; kill <= 3; kill++ {
		s := startIngest(t, bin, env)
		s.waitReady(t, 90*time.Second)
		wait := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		time.Sleep(wait)
		require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
		<-s.done
		t.Logf("kill %d after %s", kill, wait)
	}
	s := startIngest(t, bin, env)
	s.waitReady(t, 90*time.Second)
	waitCommitted(t, strings.Split(brokers, ","), group, topic, total, 5*time.Minute)
	s.stop(t)

	db, err := store.OpenEmbedded(store.EmbeddedConfig{Path: data, Conns: 1})
	require.NoError(t, err)
	defer db.Close()
	q := func(sql string) uint64 {
		rows, err := db.Query(context.Background(), sql, store.Named("topic", topic))
		require.NoError(t, err)
		defer rows.Close()
		require.True(t, rows.Next())
		var n uint64
		require.NoError(t, rows.Scan(&n))
		return n
	}
	require.Equal(t, apiCalls, q("SELECT count() FROM usage_events WHERE kafka_topic = {topic:String}"))
	require.Equal(t, apiCalls, q("SELECT uniqExact(id) FROM usage_events WHERE kafka_topic = {topic:String}"))
	require.Equal(t, features, q("SELECT count() FROM feature_usage WHERE kafka_topic = {topic:String}"))
	for _, rollup := range []string{"usage_hourly", "usage_daily", "endpoint_hourly", "endpoint_daily"} {
		require.Equal(t, apiCalls, q("SELECT sum(requests) FROM "+rollup+" WHERE {topic:String} != ''"), rollup)
	}
	require.Equal(t, features, q("SELECT sum(events) FROM feature_usage_daily WHERE {topic:String} != ''"))
	t.Logf("replayed batches: %d", q("SELECT count() FROM ingest_batches WHERE kafka_topic = {topic:String} AND replay = 1"))
}

func startIngest(t *testing.T, bin string, env []string) *server {
	t.Helper()
	s := startServe(t, bin, env)
	return s
}

// produceGenerated sends n generated records, keyed by id, and returns how
// many are API calls and how many feature uses.
func produceGenerated(t *testing.T, brokers []string, topic string, n int) (apiCalls, features uint64) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{}, AllowAutoTopicCreation: true,
		BatchSize: 10_000, BatchBytes: 1 << 20, BatchTimeout: 5 * time.Millisecond, RequiredAcks: kafka.RequireAll,
	}
	defer w.Close()
	g := ingest.NewGenerator(ingest.GeneratorConfig{Count: n, Seed: 11, FeatureShare: 0.02, Users: 1000,
		Start: time.Now().Add(-6 * time.Hour), Span: 6 * time.Hour})
	var r ingest.Record
	batch := make([]kafka.Message, 0, 20_000)
	flush := func() {
		deadline := time.Now().Add(time.Minute)
		for {
			err := w.WriteMessages(context.Background(), batch...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("produce: %.300v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		batch = batch[:0]
	}
	for g.Next(&r) {
		if r.Type == ingest.TypeFeature {
			features++
		} else {
			apiCalls++
		}
		batch = append(batch, kafka.Message{Key: []byte(r.ID), Value: r.AppendJSON(nil)})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	return apiCalls, features
}

// waitCommitted waits until the group has committed the end of every
// partition with no batch pending.
func waitCommitted(t *testing.T, brokers []string, group, topic string, total int, within time.Duration) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	deadline := time.Now().Add(within)
	for {
		var sum int64
		pending := false
		resp, err := client.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2, 3, 4, 5, 6, 7}}})
		if err == nil {
			for _, p := range resp.Topics[topic] {
				if p.CommittedOffset > 0 {
					sum += p.CommittedOffset
				}
				pending = pending || strings.Contains(p.Metadata, "pending")
			}
			if sum >= int64(total) && !pending {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages committed after %s (err %v)", sum, total, within, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
