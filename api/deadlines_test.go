package api

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
)

// trickle sends a request's headers announcing a body of size bytes, then
// one byte every gap, until the server answers or closes. It returns the
// status answered (0 when the server closed without an answer).
func trickle(addr, method, path, key string, size int, gap time.Duration, limit time.Duration) (int, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", method, path, key, size)
	answered := make(chan int, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(limit))
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- 0
			return
		}
		answered <- res.StatusCode
	}()
	deadline := time.After(limit)
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case code := <-answered:
			return code, nil
		case <-deadline:
			return -1, fmt.Errorf("no answer and no close within %s", limit)
		case <-tick.C:
			conn.Write([]byte(" ")) // an error means the server closed: the reader reports it
		}
	}
}

// 200 clients announce bodies and send them a byte at a time: each is
// answered 408 (or cut) soon after the grace period, and the goroutines
// they held are gone.
func TestTricklingBodiesAreCut(t *testing.T) {
	ls := newLiveServer(t, 1000, 4, DownloadLimits{}, Config{Deadlines: Deadlines{BodyGrace: time.Second, BodyRate: 1024}})
	ls.srv.MountEvents(discardSink{}, ingest.Policy{}, KeyAuth(ls.keys, true))
	user := ls.key(t, "tenant-1", "u1", "user")
	baseline := runtime.NumGoroutine()

	paths := []string{"/api/api-usage/time-series", "/api/api-usage/export", "/api/api-usage/events", "/api/api-usage/stats"}
	var wg sync.WaitGroup
	codes := make([]int, 200)
	errs := make([]error, 200)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, method := user, "POST"
			switch paths[i%len(paths)] {
			case "/api/api-usage/events":
				key = adminKey
			case "/api/api-usage/stats":
				method = "GET"
			}
			codes[i], errs[i] = trickle(ls.addr, method, paths[i%len(paths)], key, 100_000, 500*time.Millisecond, 30*time.Second)
		}()
	}
	wg.Wait()
	for i, code := range codes {
		require.NoError(t, errs[i], "connection %d (%s)", i, paths[i%len(paths)])
		switch paths[i%len(paths)] {
		case "/api/api-usage/stats":
			// A GET does not read its body: it is answered, and the rest of
			// the body is not waited for.
			require.Contains(t, []int{0, http.StatusOK}, code, "connection %d", i)
		default:
			require.Contains(t, []int{0, http.StatusRequestTimeout}, code, "connection %d (%s)", i, paths[i%len(paths)])
		}
	}
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= baseline+10 }, 30*time.Second, 50*time.Millisecond,
		"the trickling connections' goroutines are gone (baseline %d)", baseline)
}

// A body that arrives slowly but steadily, above the rate, is read whole.
func TestSlowSteadyBodyIsAccepted(t *testing.T) {
	ls := newLiveServer(t, 1000, 4, DownloadLimits{}, Config{Deadlines: Deadlines{BodyGrace: time.Second, BodyRate: 1024}})
	user := ls.key(t, "tenant-1", "u1", "user")
	body := fmt.Sprintf(`{"startDate":%q,"endDate":%q,"granularity":"hour","metrics":["requests"]}`,
		ls.start.Format(time.RFC3339), ls.end.Format(time.RFC3339))
	body += strings.Repeat(" ", 6000-len(body)) // 6 KB at 2 KB/s: 3 s, past the grace
	conn, err := net.Dial("tcp", ls.addr)
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/api-usage/time-series HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", user, len(body))
	for p := body; len(p) > 0; {
		n := min(len(p), 200)
		_, err := conn.Write([]byte(p[:n]))
		require.NoError(t, err)
		p = p[n:]
		time.Sleep(100 * time.Millisecond)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", b)
}

// A client that stops reading a download is cut after the write grace;
// one that reads slowly but steadily gets the whole file.
func TestDownloadsOfSlowAndStalledClients(t *testing.T) {
	ls := newLiveServer(t, 150_000, 4, DownloadLimits{SpoolDir: t.TempDir()}, Config{Deadlines: Deadlines{WriteGrace: time.Second, WriteRate: 16 << 10}})
	analyst := ls.key(t, "tenant-1", "analyst", "admin")
	stalled := ls.stalledExport(t, analyst, "csv")
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return testutil.ToFloat64(ls.an.dl.active) == 0 }, 60*time.Second, 50*time.Millisecond,
		"the stalled download was cut")
	stalled.Close()

	// A slow reader: half an hour of records, read at about 40 KiB/s.
	conn, err := net.Dial("tcp", ls.addr)
	require.NoError(t, err)
	defer conn.Close()
	body := fmt.Sprintf(`{"format":"csv","startDate":%q,"endDate":%q}`,
		ls.start.Format(time.RFC3339), ls.start.Add(30*time.Minute).Format(time.RFC3339))
	fmt.Fprintf(conn, "POST /api/api-usage/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		analyst, len(body), body)
	conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	rows, err := strconv.Atoi(res.Header.Get("X-Export-Rows"))
	require.NoError(t, err)
	lines, total := 0, 0
	began := time.Now()
	buf := make([]byte, 4<<10)
	for {
		n, err := res.Body.Read(buf)
		lines += strings.Count(string(buf[:n]), "\n")
		total += n
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if ahead := time.Duration(total)*time.Second/(40<<10) - time.Since(began); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	require.Greater(t, time.Since(began), 3*time.Second, "the download took several write graces")
	require.Equal(t, rows+1, lines, "every row and the header arrived")
}

type discardSink struct{}

func (discardSink) TrackRaw([]byte) {}
