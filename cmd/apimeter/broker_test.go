package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// kcatConsumer runs `kcat -G group topic`, a real librdkafka group
// consumer, writing what it consumes to a file the test reads once it is
// stopped.
func kcatConsumer(t *testing.T, kcat, broker, group, topic string) (stop func() string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "consumed")
	f, err := os.Create(out)
	require.NoError(t, err)
	cmd := exec.Command(kcat, "-b", broker, "-G", group, "-X", "auto.offset.reset=earliest", "-u", topic)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			f.Close()
			t.Logf("kcat -G said:\n%s", stderr.String())
		}
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		return string(b)
	}
	t.Cleanup(func() { stop() })
	return stop
}

func kcatProduce(t *testing.T, kcat, broker, topic, prefix string, n int) {
	t.Helper()
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, `{"id":"%s-%d","userId":"u%d","endpoint":"/api/items/:id","method":"GET","statusCode":200,"responseTimeMs":%d}`+"\n", prefix, i, i%7, i%100)
	}
	cmd := exec.Command(kcat, "-P", "-b", broker, "-t", topic)
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func waitMetric(t *testing.T, addr, series string, atLeast float64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for metricValue(t, addr, series) < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("%s stayed below %v for %s (now %v)", series, atLeast, within, metricValue(t, addr, series))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKcatGroupConsumerRefusedByEmbeddedBroker joins the ingesters' group
// with `kcat -G apimeter-ingest api-usage`, first while no ingester runs
// (the group is empty), then while one does. Both times the embedded
// broker refuses it, it consumes nothing, and every record produced
// meanwhile with `kcat -P` is stored once.
func TestKcatGroupConsumerRefusedByEmbeddedBroker(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat); CI installs it")
	}
	bin := buildBinary(t)
	broker := freeAddr(t)
	// The embedded broker even when CI points KAFKA_BROKERS at a real one:
	// the guard is the embedded broker's.
	data := t.TempDir()
	env := []string{
		"APIMETER_DATA_DIR=" + data, "CLICKHOUSE_URL=", "KAFKA_BROKERS=", "APIMETER_EMBEDDED_KAFKA_ADDR=" + broker,
		"KAFKA_TOPIC=api-usage", "KAFKA_GROUP=apimeter-ingest",
	}
	const joins = `apimeter_embedded_kafka_refused_total{request="JoinGroup"}`
	const stored = `apimeter_ingest_records_total{outcome="stored"}`

	// No ingester: the group is empty.
	s := startServe(t, bin, env, "--roles", "api,scheduler")
	s.waitReady(t, 60*time.Second)
	consumed := kcatConsumer(t, kcat, broker, "apimeter-ingest", "api-usage")
	waitMetric(t, s.addr, joins, 1, 60*time.Second)
	kcatProduce(t, kcat, broker, "api-usage", "empty-group", 1000)
	time.Sleep(3 * time.Second) // what kcat could take, it would have by now
	require.Empty(t, consumed(), "what kcat -G consumed")
	s.stop(t)

	// With the ingester running.
	s = startServe(t, bin, env)
	s.waitReady(t, 60*time.Second)
	consumed = kcatConsumer(t, kcat, broker, "apimeter-ingest", "api-usage")
	waitMetric(t, s.addr, joins, 1, 60*time.Second)
	kcatProduce(t, kcat, broker, "api-usage", "running", 1000)
	waitMetric(t, s.addr, stored, 2000, 2*time.Minute)
	time.Sleep(time.Second)
	require.Equal(t, 2000.0, metricValue(t, s.addr, stored))
	require.Zero(t, metricValue(t, s.addr, `apimeter_ingest_records_total{outcome="duplicate"}`))
	require.Empty(t, consumed(), "what kcat -G consumed")
	require.Zero(t, metricValue(t, s.addr, "apimeter_ingest_foreign_group_members"))
	s.stop(t)

	// The refusals were logged, the secret never.
	secret, err := os.ReadFile(filepath.Join(data, "kafka", "ingest-group.secret"))
	require.NoError(t, err)
	require.Contains(t, s.out.String(), "embedded kafka refused")
	require.NotContains(t, s.out.String(), strings.TrimSpace(string(secret)))
}
