package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/store"
)

// These tests run the built binary the way an operator does.

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "apimeter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	addr string
	done chan error
}

func startServe(t *testing.T, bin string, env []string, args ...string) *server {
	t.Helper()
	s := &server{addr: freeAddr(t), out: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"serve"}, args...)...)
	s.cmd.Env = append(append(os.Environ(), env...), "APIMETER_HTTP_ADDR="+s.addr)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	require.NoError(t, s.cmd.Start())
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

func (s *server) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			t.Fatalf("serve exited early: %v\n%s", err, s.out)
		default:
		}
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not ready within %s\n%s", within, s.out)
}

func (s *server) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-s.done:
		require.NoError(t, err, "%s", s.out)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM\n%s", s.out)
	}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	b, _ := io.ReadAll(resp.Body)
	require.NoError(t, json.Unmarshal(b, &body), "%s", b)
	return resp.StatusCode, body
}

// kafkaEnv gives a serve process its own topic and group, on the real
// broker when KAFKA_BROKERS is set, else on its embedded broker.
func kafkaEnv(t *testing.T) (env []string, brokers []string) {
	t.Helper()
	topic := fmt.Sprintf("usage-%d", time.Now().UnixNano())
	env = []string{"KAFKA_TOPIC=" + topic, "KAFKA_GROUP=" + topic + "-group"}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return env, strings.Split(b, ",")
	}
	addr := freeAddr(t)
	return append(env, "KAFKA_BROKERS=", "APIMETER_EMBEDDED_KAFKA_ADDR="+addr), []string{addr}
}

// metricValue reads one sample from /metrics.
func metricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

func TestServeGenerateRestartKeepsData(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	kenv, brokers := kafkaEnv(t)
	env := append([]string{"APIMETER_DATA_DIR=" + data, "CLICKHOUSE_URL=", "APIMETER_DIMENSIONS=region:string:2"}, kenv...)
	topic := strings.TrimPrefix(kenv[0], "KAFKA_TOPIC=")

	gen := exec.Command(bin, "generate", "--records", "5000", "--days", "2", "--end", "2026-11-20T00:00:00Z", "--seed", "9")
	gen.Env = append(os.Environ(), env...)
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "loaded 5000 records")

	s := startServe(t, bin, env)
	s.waitReady(t, 60*time.Second)
	code, body := getJSON(t, "http://"+s.addr+"/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"store": "ok", "schema": "ok", "kafka": "ok"}, body["checks"])
	code, body = getJSON(t, "http://"+s.addr+"/healthz")
	require.Equal(t, http.StatusOK, code)
	code, body = getJSON(t, "http://"+s.addr+"/no/such/route")
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, "not_found", body["error"].(map[string]any)["code"])

	// A second process on the same data directory is refused, by name.
	second := exec.Command(bin, "serve")
	second.Env = append(os.Environ(), append(env, "APIMETER_HTTP_ADDR="+freeAddr(t))...)
	out, err = second.CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v %s", err, out)
	require.Contains(t, string(out), "admits one process per data directory")

	// Records sent to Kafka are ingested, with their costs and declared
	// dimensions.
	const sent = 1000
	sentRecs := sendRecords(t, brokers, topic, sent, 77)
	stored := `apimeter_ingest_records_total{outcome="stored"}`
	waitStored := func(s *server, n int) {
		deadline := time.Now().Add(60 * time.Second)
		for metricValue(t, s.addr, stored) < float64(n) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		require.Equal(t, float64(n), metricValue(t, s.addr, stored))
	}
	waitStored(s, sent)

	s.stop(t)

	again := startServe(t, bin, env)
	again.waitReady(t, 60*time.Second)
	require.NotContains(t, again.out.String(), "migration applied", "migrations ran once")
	// After the restart the ingester keeps the values it kept before: a
	// tenant's regions stay at the cap of two.
	const more = 400
	sentRecs = append(sentRecs, sendRecords(t, brokers, topic, more, 78)...)
	waitStored(again, more)
	again.stop(t)

	// The data survived both restarts.
	want := 0
	g := ingest.NewGenerator(ingest.GeneratorConfig{Count: 5000, Seed: 9, Tenants: 3, Users: 50, Endpoints: 20, FeatureShare: 0.02})
	var r ingest.Record
	for g.Next(&r) {
		if r.Type == ingest.TypeAPICall {
			want++
		}
	}
	want += sent + more
	db, err := store.OpenEmbedded(store.EmbeddedConfig{Path: data, Conns: 1})
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(context.Background(), "SELECT (SELECT count() FROM usage_events), (SELECT sum(requests) FROM usage_hourly), (SELECT sum(requests) FROM endpoint_daily)")
	require.NoError(t, err)
	require.True(t, rows.Next())
	var raw, hourly, daily uint64
	require.NoError(t, rows.Scan(&raw, &hourly, &daily))
	rows.Close() // one connection: free it for the next queries
	require.Equal(t, uint64(want), raw)
	require.Equal(t, uint64(want), hourly)
	require.Equal(t, uint64(want), daily)
	checkSentDimensions(t, db, sentRecs)
}

// checkSentDimensions compares what the ingester stored of the sent
// records' costs and regions with the records: costs sum in the rollup;
// per tenant at most two regions are kept (the cap), every record of a
// kept region counts under it and every other region's under __other__.
func checkSentDimensions(t *testing.T, db store.Driver, recs []ingest.Record) {
	t.Helper()
	ctx := context.Background()
	var wantCost uint64
	for _, r := range recs {
		wantCost += uint64(r.Cost)
	}
	for _, table := range []string{"usage_events", "usage_hourly", "usage_daily"} {
		got, err := store.QueryUint64(ctx, db, "SELECT sum(cost) FROM "+table+" WHERE startsWith(user_id, 'sent-')")
		require.NoError(t, err)
		require.Equal(t, wantCost, got, table)
	}
	rows, err := db.Query(ctx, `SELECT tenant_id, value, sum(requests) FROM dimension_hourly
		WHERE dimension = 'region' AND startsWith(user_id, 'sent-') GROUP BY tenant_id, value`)
	require.NoError(t, err)
	got := map[string]map[string]uint64{}
	for rows.Next() {
		var tenant, value string
		var n uint64
		require.NoError(t, rows.Scan(&tenant, &value, &n))
		if got[tenant] == nil {
			got[tenant] = map[string]uint64{}
		}
		got[tenant][value] = n
	}
	require.NoError(t, rows.Err())
	rows.Close()
	want := map[string]map[string]uint64{}
	for _, r := range recs {
		region, ok := r.Metadata["region"]
		if !ok {
			continue
		}
		if _, kept := got[r.TenantID][region]; !kept {
			region = "__other__"
		}
		if want[r.TenantID] == nil {
			want[r.TenantID] = map[string]uint64{}
		}
		want[r.TenantID][region]++
	}
	require.Equal(t, want, got)
	for tenant, values := range got {
		delete(values, "__other__")
		require.LessOrEqual(t, len(values), 2, "tenant %s keeps at most the cap", tenant)
	}
}

// sendRecords sends n generated API calls of users "sent-…", every
// tenth with a cost other than 1, and returns them.
func sendRecords(t *testing.T, brokers []string, topic string, n int, seed uint64) []ingest.Record {
	t.Helper()
	g := ingest.NewGenerator(ingest.GeneratorConfig{Count: n, Seed: seed, Start: time.Now().Add(-time.Hour), Span: time.Hour})
	var r ingest.Record
	var msgs []kafka.Message
	var out []ingest.Record
	for i := 0; g.Next(&r); i++ {
		r.ID = fmt.Sprintf("sent-%d-%s", seed, r.ID)
		r.UserID = "sent-" + r.UserID
		if i%10 == 0 {
			r.Cost = uint32(i % 7)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(r.ID), Value: r.AppendJSON(nil)})
		out = append(out, r)
	}
	produceAll(t, brokers, topic, msgs)
	return out
}

// produceAll writes msgs, retrying a broker that is still settling: the
// producing side is not under test (ids make a repeated record count
// once).
func produceAll(t *testing.T, brokers []string, topic string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
	defer w.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := w.WriteMessages(context.Background(), msgs...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce: %.300v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestBadConfigurationListsEveryProblem(t *testing.T) {
	var stdout, stderr bytes.Buffer
	t.Setenv("API_USAGE_RETENTION_DAYS", "ninety")
	t.Setenv("LOG_LEVEL", "loud")
	err := dispatch(context.Background(), []string{"serve"}, &stdout, &stderr)
	require.Error(t, err)
	require.Contains(t, err.Error(), "API_USAGE_RETENTION_DAYS")
	require.Contains(t, err.Error(), "LOG_LEVEL")
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"frobnicate"}, &stdout, &stderr)
	require.Equal(t, exitCode(2), err)
	require.Contains(t, stderr.String(), "unknown command")
	require.NoError(t, dispatch(context.Background(), []string{"version"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "apimeter")
}

func TestMigratePrintNeedsNoStore(t *testing.T) {
	var stdout, stderr bytes.Buffer
	t.Setenv("CHDB_LIB_PATH", "/nonexistent")
	require.NoError(t, dispatch(context.Background(), []string{"migrate", "--print", "--cluster", "prod"}, &stdout, &stderr))
	require.Contains(t, stdout.String(), "ENGINE = Distributed(prod, currentDatabase(), usage_events_local")
}

// TestKcatProducer sends records with kcat, a real librdkafka producer, to
// a fresh serve process (its embedded broker, or KAFKA_BROKERS in CI).
func TestKcatProducer(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat); CI installs it")
	}
	bin := buildBinary(t)
	kenv, brokers := kafkaEnv(t)
	topic := strings.TrimPrefix(kenv[0], "KAFKA_TOPIC=")
	s := startServe(t, bin, append([]string{"APIMETER_DATA_DIR=" + t.TempDir(), "CLICKHOUSE_URL="}, kenv...))
	s.waitReady(t, 60*time.Second)

	var in bytes.Buffer
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&in, `{"id":"kcat-%d","userId":"u%d","endpoint":"/api/items/:id","method":"GET","statusCode":200,"responseTimeMs":%d}`+"\n", i, i%7, i)
	}
	in.WriteString("not json at all\n")
	cmd := exec.Command(kcat, "-P", "-b", strings.Join(brokers, ","), "-t", topic)
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, s.addr, `apimeter_ingest_records_total{outcome="stored"}`) < 100 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, 100.0, metricValue(t, s.addr, `apimeter_ingest_records_total{outcome="stored"}`))
	for metricValue(t, s.addr, `apimeter_ingest_dead_letters_total{reason="malformed_json"}`) < 1 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, 1.0, metricValue(t, s.addr, `apimeter_ingest_dead_letters_total{reason="malformed_json"}`))
	s.stop(t)
}

// TestEventsRoute posts records over HTTP with the bootstrap admin key;
// they travel through Kafka and are ingested, and apimeter's own API calls
// are metered too.
func TestEventsRoute(t *testing.T) {
	bin := buildBinary(t)
	kenv, _ := kafkaEnv(t)
	const key = "test-admin-key-0123456789"
	s := startServe(t, bin, append([]string{"APIMETER_DATA_DIR=" + t.TempDir(), "CLICKHOUSE_URL=", "APIMETER_ADMIN_KEY=" + key}, kenv...))
	s.waitReady(t, 60*time.Second)

	var b strings.Builder
	b.WriteString("[")
	for i := 0; i < 50; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"http-%d","userId":"u","endpoint":"/api/x","method":"GET","statusCode":200,"responseTimeMs":2}`, i)
	}
	b.WriteString(`,{"userId":"u","endpoint":"/api/x","method":"GET","statusCode":999,"responseTimeMs":2}]`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.addr+"/api/api-usage/events", strings.NewReader(b.String()))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", body)
	require.Equal(t, 50.0, body["accepted"])
	require.Len(t, body["rejected"], 1)

	// 50 records, plus the POST /events call itself, metered by apimeter.
	stored := `apimeter_ingest_records_total{outcome="stored"}`
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, s.addr, stored) < 51 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, 51.0, metricValue(t, s.addr, stored))

	// `apimeter keys` issues a user key through the server; the key reads
	// that user's usage, and stops working once revoked.
	keys := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"keys"}, args...)...)
		cmd.Env = append(os.Environ(), "APIMETER_URL=http://"+s.addr, "APIMETER_KEY="+key)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := keys("create", "--tenant", "default", "--user", "u", "--name", "cli", "--json")
	require.NoError(t, err, out)
	var made map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &made), out)
	secret := made["key"].(string)
	stats := func() (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.addr+"/api/api-usage/stats", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, st := stats()
	require.Equal(t, http.StatusOK, code, "%v", st)
	require.Equal(t, 50.0, st["totals"].(map[string]any)["requests"])
	out, err = keys("list", "--tenant", "default")
	require.NoError(t, err, out)
	require.Contains(t, out, made["keyId"].(string))
	require.NotContains(t, out, secret[10:], "lists never show secrets")
	out, err = keys("revoke", made["keyId"].(string))
	require.NoError(t, err, out)
	code, _ = stats()
	require.Equal(t, http.StatusUnauthorized, code)
	out, err = keys("revoke", "key_nope")
	require.Error(t, err)
	require.Contains(t, out, "no key")
	s.stop(t)
}
