package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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

func startServe(t *testing.T, bin string, env []string) *server {
	t.Helper()
	s := &server{addr: freeAddr(t), out: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "serve")
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

func TestServeGenerateRestartKeepsData(t *testing.T) {
	bin := buildBinary(t)
	data := t.TempDir()
	env := []string{"APIMETER_DATA_DIR=" + data, "CLICKHOUSE_URL="}

	gen := exec.Command(bin, "generate", "--records", "5000", "--days", "2", "--end", "2026-11-20T00:00:00Z", "--seed", "9")
	gen.Env = append(os.Environ(), env...)
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "loaded 5000 records")

	s := startServe(t, bin, env)
	s.waitReady(t, 60*time.Second)
	code, body := getJSON(t, "http://"+s.addr+"/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"store": "ok", "schema": "ok"}, body["checks"])
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

	s.stop(t)

	again := startServe(t, bin, env)
	again.waitReady(t, 60*time.Second)
	require.NotContains(t, again.out.String(), "migration applied", "migrations ran once")
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
	db, err := store.OpenEmbedded(store.EmbeddedConfig{Path: data, Conns: 1})
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.Query(context.Background(), "SELECT (SELECT count() FROM usage_events), (SELECT sum(requests) FROM usage_hourly), (SELECT sum(requests) FROM endpoint_daily)")
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var raw, hourly, daily uint64
	require.NoError(t, rows.Scan(&raw, &hourly, &daily))
	require.Equal(t, uint64(want), raw)
	require.Equal(t, uint64(want), hourly)
	require.Equal(t, uint64(want), daily)
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
