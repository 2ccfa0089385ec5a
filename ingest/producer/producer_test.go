package producer

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

func brokers(t *testing.T) []string {
	t.Helper()
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	br, err := ingest.StartBroker(ingest.BrokerConfig{Addr: "127.0.0.1:0", Partitions: 4})
	require.NoError(t, err)
	t.Cleanup(br.Close)
	return []string{br.Addr()}
}

// consume reads the messages of topic until n distinct keys arrived or
// the wait ends. (The producer delivers at least once: a batch retried
// after a timeout can be in the topic twice, with the same key.)
func consume(t *testing.T, brokers []string, topic string, n int, within time.Duration) []kafka.Message {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...)}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var md *kafka.MetadataResponse
	var err error
	for {
		md, err = client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0 {
			break
		}
		require.NoError(t, ctx.Err(), "topic %s never appeared", topic)
		time.Sleep(100 * time.Millisecond)
	}
	out := make(chan kafka.Message, n+1000)
	for _, p := range md.Topics[0].Partitions {
		go func(p int) {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				out <- m
			}
		}(p.ID)
	}
	var msgs []kafka.Message
	keys := map[string]bool{}
	for len(keys) < n {
		select {
		case m := <-out:
			msgs = append(msgs, m)
			keys[string(m.Key)] = true
		case <-ctx.Done():
			return msgs
		}
	}
	// Anything extra (a duplicate) would arrive shortly after.
	extra := time.After(time.Second)
	for {
		select {
		case m := <-out:
			msgs = append(msgs, m)
		case <-extra:
			return msgs
		}
	}
}

func TestTrackSendsContractRecords(t *testing.T) {
	bs := brokers(t)
	topic := fmt.Sprintf("track-%d", time.Now().UnixNano())
	p, err := New(Config{Brokers: bs, Topic: topic, SpoolDir: t.TempDir()})
	require.NoError(t, err)
	const n = 5000
	for i := 0; i < n; i++ {
		switch i % 3 {
		case 0:
			p.TrackCall("t1", fmt.Sprint("u", i%17), "/api/things/:id", "GET", 200+i%5, time.Duration(i)*time.Microsecond, map[string]string{"i": fmt.Sprint(i)})
		case 1:
			p.TrackFeature("t1", "u1", "export", 2.5, nil)
		default:
			p.Track(Record{UserID: "u2", Endpoint: "/x", Method: "POST", StatusCode: 503, ResponseTimeMs: 12.5})
		}
	}
	require.NoError(t, p.Close(context.Background()))
	st := p.Stats()
	require.Equal(t, uint64(n), st.Tracked)
	require.Equal(t, uint64(n), st.Sent)
	require.Zero(t, st.Dropped)

	msgs := consume(t, bs, topic, n, time.Minute)
	if len(msgs) > n {
		t.Logf("%d records were delivered twice (retried batches)", len(msgs)-n)
	}
	dec := ingest.NewDecoder(ingest.Policy{})
	ids := map[string]bool{}
	for _, m := range msgs {
		var r ingest.Record
		rej := dec.Decode(m.Value, ingest.Source{Topic: topic, TimestampMs: m.Time.UnixMilli()}, &r)
		require.Nil(t, rej, "%s", m.Value)
		require.Equal(t, r.ID, string(m.Key), "keyed by id")
		ids[r.ID] = true
	}
	require.Len(t, ids, n)
}

// TestSpoolSurvivesKafkaOutageAndRestart: Kafka is down while 50,000
// records are tracked; the producing process stops; a new one starts;
// Kafka comes up; every record arrives once.
func TestSpoolSurvivesKafkaOutageAndRestart(t *testing.T) {
	if mode := os.Getenv("PRODUCER_HELPER"); mode != "" {
		runHelper(t, mode)
		return
	}
	const n = 50_000
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	topic := fmt.Sprintf("spool-%d", time.Now().UnixNano())
	spoolDir := t.TempDir()
	helper := func(mode string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestSpoolSurvivesKafkaOutageAndRestart$", "-test.count=1")
		cmd.Env = append(os.Environ(), "PRODUCER_HELPER="+mode, "HELPER_BROKER="+addr, "HELPER_TOPIC="+topic, "HELPER_SPOOL="+spoolDir, fmt.Sprintf("HELPER_N=%d", n))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		t.Logf("%s: %s", mode, lastLine(out))
	}

	helper("track") // Kafka down: everything lands in the spool

	var stop func()
	if script := os.Getenv("APIMETER_KAFKA_SCRIPT"); script != "" {
		env := append(os.Environ(), fmt.Sprintf("KAFKA_PORT=%d", port), "KAFKA_DIR="+t.TempDir())
		cmd := exec.Command(script, "start")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		stop = func() { c := exec.Command(script, "stop"); c.Env = env; c.Run() }
	} else {
		br, err := ingest.StartBroker(ingest.BrokerConfig{Addr: addr, Partitions: 4})
		require.NoError(t, err)
		stop = br.Close
	}
	defer stop()

	helper("drain") // a new process sends the spool

	msgs := consume(t, []string{addr}, topic, n, 2*time.Minute)
	ids := map[string]int{}
	for _, m := range msgs {
		ids[string(m.Key)]++
	}
	require.Len(t, ids, n, "every record arrived")

	// Once: loaded by the ingester, each record is stored one time (a
	// record delivered twice carries its id, and the ingester drops the
	// repeat).
	db := storetest.Open(t)
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(context.Background())
	require.NoError(t, err)
	in, err := ingest.New(ingest.Config{Brokers: []string{addr}, Topic: topic, Group: topic, MaxBatchWait: 100 * time.Millisecond}, db, nil, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { in.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; in.Close() }()
	deadline := time.Now().Add(2 * time.Minute)
	for in.Stats().Stored+in.Stats().Duplicates < uint64(len(msgs)) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	rows, err := db.Query(context.Background(), "SELECT count(), uniqExact(id) FROM usage_events WHERE kafka_topic = {t:String}", store.Named("t", topic))
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var count, distinct uint64
	require.NoError(t, rows.Scan(&count, &distinct))
	require.Equal(t, uint64(n), count, "every record stored once")
	require.Equal(t, uint64(n), distinct)
}

func runHelper(t *testing.T, mode string) {
	var n int
	fmt.Sscan(os.Getenv("HELPER_N"), &n)
	p, err := New(Config{Brokers: []string{os.Getenv("HELPER_BROKER")}, Topic: os.Getenv("HELPER_TOPIC"),
		SpoolDir: os.Getenv("HELPER_SPOOL"), RetryEvery: 200 * time.Millisecond})
	require.NoError(t, err)
	if mode == "track" {
		for i := 0; i < n; i++ {
			p.Track(Record{ID: fmt.Sprintf("spooled-%d", i), UserID: "u", Endpoint: "/e", Method: "GET", StatusCode: 200, ResponseTimeMs: 1})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		require.NoError(t, p.Close(ctx))
		st := p.Stats()
		require.Zero(t, st.Sent)
		require.Zero(t, st.Dropped)
		require.Equal(t, n, st.Pending)
		fmt.Printf("tracked %d, spooled %d\n", st.Tracked, st.Pending)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, p.Close(ctx))
	st := p.Stats()
	require.Zero(t, st.Pending)
	require.Equal(t, uint64(n), st.Sent)
	fmt.Printf("sent %d\n", st.Sent)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "tracked") || strings.HasPrefix(lines[i], "sent") {
			return lines[i]
		}
	}
	return lines[len(lines)-1]
}

func freePort(t *testing.T) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+1)); err == nil {
			ln2.Close()
			return port
		}
	}
}
