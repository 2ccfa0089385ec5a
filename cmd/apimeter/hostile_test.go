package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The binary as an operator runs it, against careless and hostile
// callers: wrong keys are throttled per address and never become usage,
// made-up methods add no metric series, /metrics lives on its own
// listener and passes promtool, and a gzip body is read.
func TestServeAgainstHostileCallers(t *testing.T) {
	bin := buildBinary(t)
	kenv, _ := kafkaEnv(t)
	metrics := freeAddr(t)
	const admin = "hostile-admin-key-0123456789"
	env := append([]string{"APIMETER_DATA_DIR=" + t.TempDir(), "CLICKHOUSE_URL=", "APIMETER_ADMIN_KEY=" + admin,
		"APIMETER_METRICS_ADDR=" + metrics, "APIMETER_AUTH_FAILURES_MAX=5"}, kenv...)
	s := startServe(t, bin, env)
	s.waitReady(t, 60*time.Second)
	base := "http://" + s.addr + "/api/api-usage"
	// The guesser calls from 127.0.0.2 (all of 127/8 is loopback), the
	// operator from 127.0.0.1.
	guesser := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	var client = http.DefaultClient
	call := func(method, url, key string, body io.Reader, header ...string) *http.Response {
		req, err := http.NewRequest(method, url, body)
		require.NoError(t, err)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}

	// Guessing keys: five tries, then 429s with Retry-After.
	codes := map[int]int{}
	client = guesser
	for i := range 30 {
		res := call("GET", base+"/stats", "am_guess-"+strings.Repeat("x", i), nil)
		codes[res.StatusCode]++
		if res.StatusCode == http.StatusTooManyRequests {
			require.NotEmpty(t, res.Header.Get("Retry-After"))
		}
	}
	require.Equal(t, map[int]int{http.StatusUnauthorized: 5, http.StatusTooManyRequests: 25}, codes)

	// A made-up method, twice.
	for range 2 {
		call("RCXMETHODA", base+"/stats", "", nil)
	}

	// Calls with a valid key from another address: two reads and a gzip
	// POST /events with one record.
	client = http.DefaultClient
	for range 2 {
		require.Equal(t, http.StatusOK, call("GET", base+"/stats", admin, nil).StatusCode)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, `{"id":"hostile-1","tenantId":"se c'","userId":"u/../x","endpoint":"/x","method":"GET","statusCode":200,"responseTimeMs":3}`)
	zw.Close()
	res := call("POST", base+"/events", admin, &gz, "Content-Encoding", "gzip", "Content-Type", "application/json")
	require.Equal(t, http.StatusAccepted, res.StatusCode)

	// Stored: the record and the three calls with a valid key — nothing
	// of the thirty wrong keys or the made-up methods.
	stored := `apimeter_ingest_records_total{outcome="stored"}`
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, metrics, stored) < 4 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // anything else in flight lands meanwhile
	require.Equal(t, 4.0, metricValue(t, metrics, stored))

	// The metrics: not on the public listener; bounded labels; counted
	// failures; promtool accepts them.
	require.Equal(t, http.StatusNotFound, call("GET", "http://"+s.addr+"/metrics", "", nil).StatusCode)
	mres, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	text := string(body)
	require.NotContains(t, text, "RCXMETHODA")
	require.Contains(t, text, `method="other"`)
	require.Equal(t, 5.0, metricValue(t, metrics, `apimeter_auth_failures_total{reason="unknown"}`))
	require.Equal(t, 25.0, metricValue(t, metrics, `apimeter_auth_throttled_total`))
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool check metrics:\n%s", out)
	} else {
		t.Log("promtool is not installed (apt-get install prometheus): /metrics was not linted")
	}
	s.stop(t)
}
