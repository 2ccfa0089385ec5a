package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// artifactsDir is where the browser test leaves its screenshots:
// APIMETER_ARTIFACTS_DIR, else artifacts/ at the repository's root.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("APIMETER_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	dir = filepath.Join(dir, "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// chromium finds Debian's Chromium (or CHROMIUM_PATH).
func chromium(t *testing.T) string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("SKIPPED: no Chromium found (CI installs Debian's chromium; apt-get install chromium to run the browser test here)")
	return ""
}

// send calls the API of s with key (a JSON body when body is not nil)
// and returns the status and the answer.
func send(t *testing.T, s *server, key, method, path string, body any) (int, []byte) {
	t.Helper()
	status, _, raw := sendHeaders(t, s, key, method, path, body)
	return status, raw
}

// sendHeaders is send with the answer's headers.
func sendHeaders(t *testing.T, s *server, key, method, path string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+"/api/api-usage"+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// apiCall calls the API of s with key, requires a success and decodes
// the JSON answer into out.
func apiCall(t *testing.T, s *server, key, method, path string, body any, out any) {
	t.Helper()
	status, raw := send(t, s, key, method, path, body)
	require.Less(t, status, 300, "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), "%s", raw)
	}
}

// TestDashboardInChromium signs in to the dashboard of a server loaded
// with generated traffic, in Debian's Chromium, and checks what it draws
// against the contract and the API.
func TestDashboardInChromium(t *testing.T) {
	chrome := chromium(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	env, _ := kafkaEnv(t)
	const adminKey = "browser-admin-key-0123456789"
	// The API's own limit per caller is not under test: the page and the
	// test together make more calls a minute than its default.
	env = append(env, "APIMETER_DATA_DIR="+dir, "APIMETER_ADMIN_KEY="+adminKey, "API_HEALTH_CHECK_INTERVAL=3600", "API_RATE_LIMIT_MAX_REQUESTS=100000",
		"APIMETER_DIMENSIONS=region:string:3") // the generator's four regions: one is folded
	// Three whole days in Tokyo (no daylight saving time) of traffic.
	tz, err := time.LoadLocation("Asia/Tokyo")
	require.NoError(t, err)
	today := time.Now().In(tz)
	dayEnd := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, tz)
	dayStart := dayEnd.AddDate(0, 0, -2)
	gen := exec.Command(bin, "generate", "--records", "60000", "--days", "3", "--end", dayEnd.UTC().Format(time.RFC3339), "--tenants", "2", "--users", "10", "--endpoints", "8")
	gen.Env = append(os.Environ(), env...)
	out, err := gen.CombinedOutput()
	require.NoError(t, err, "%s", out)
	s := startServe(t, bin, env)
	s.waitReady(t, 90*time.Second)

	// A user key for the busiest user of tenant-1.
	var top struct {
		Users []struct {
			User string `json:"userId"`
		} `json:"users"`
	}
	apiCall(t, s, adminKey, "GET", "/top-users?tenantId=tenant-1&limit=1&startDate="+dayStart.Format("2006-01-02")+"&endDate="+dayEnd.Format("2006-01-02")+"&timezone=Asia/Tokyo", nil, &top)
	require.Len(t, top.Users, 1)
	user := top.Users[0].User
	var created struct {
		Key string `json:"key"`
	}
	apiCall(t, s, adminKey, "POST", "/admin/keys", map[string]any{"tenantId": "tenant-1", "userId": user}, &created)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	var mu sync.Mutex
	var problems []string
	require.NoError(t, chromedp.Listen(bctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problems = append(problems, fmt.Sprintf("console %s: %s", e.Type, strings.Join(args, " ")))
			}
		case *runtime.EventExceptionThrown:
			problems = append(problems, "exception: "+e.ExceptionDetails.Text)
		case *network.EventResponseReceived:
			// Every call the page makes in normal use succeeds (the
			// refused key at the end is the one 401).
			if e.Response.Status >= 400 && e.Response.Status != 401 {
				problems = append(problems, fmt.Sprintf("HTTP %d %s", e.Response.Status, e.Response.URL))
			}
		}
	}))
	downloads := t.TempDir()
	shots := artifactsDir(t)
	base := "http://" + s.addr + "/"
	require.NoError(t, chromedp.Do(bctx)) // start the browser
	_, err = chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads})
	require.NoError(t, err)
	points := func() int {
		r, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("overview-chart"), "data-points"))
		require.NoError(t, err)
		n, err := strconv.Atoi(r.Value)
		require.NoError(t, err, "data-points %q", r.Value)
		return n
	}
	// Sign in.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), created.Key),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.CSS("#overview-chart[data-points]")),
	))

	// The range: two whole days in Tokyo, by the hour, then by the day.
	change := func(id string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.getElementById('`+id+`').dispatchEvent(new Event('change', {bubbles: true}))`))
			return err
		})
	}
	apply := func(granularity string) {
		require.NoError(t, chromedp.Do(bctx,
			chromedp.SetValue(chromedp.ID("tz"), "Asia/Tokyo"), change("tz"),
			chromedp.SetValue(chromedp.ID("range"), "custom"), change("range"),
			chromedp.WaitVisible(chromedp.ID("start")),
			chromedp.SetValue(chromedp.ID("start"), dayStart.Format("2006-01-02T15:04")), change("start"),
			chromedp.SetValue(chromedp.ID("end"), dayEnd.Format("2006-01-02T15:04")), change("end"),
			chromedp.SetValue(chromedp.ID("granularity"), granularity), change("granularity"),
			chromedp.Click(chromedp.ID("refresh")),
		))
	}
	apply("hour")
	waitUntil(t, 30*time.Second, "48 hourly points", func() bool { return points() == 48 })
	apply("day")
	waitUntil(t, 30*time.Second, "2 daily points", func() bool { return points() == 2 })
	apply("hour")
	waitUntil(t, 30*time.Second, "48 hourly points again", func() bool { return points() == 48 })

	// Screenshots at desktop and phone widths.
	shoot := func(name string, w, h int64) {
		require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(w, h), chromedp.Sleep(400*time.Millisecond)))
		png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(shots, name), png, 0o644))
	}
	shoot("overview-desktop.png", 1280, 900)
	shoot("overview-phone.png", 390, 844)
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(1280, 900)))

	// An export click downloads the range's events.
	var stats struct {
		Totals struct {
			Requests uint64 `json:"requests"`
		} `json:"totals"`
		TopEndpoints []struct {
			Endpoint string `json:"endpoint"`
		} `json:"topEndpoints"`
	}
	q := url.Values{"startDate": {dayStart.Format(time.RFC3339)}, "endDate": {dayEnd.Format(time.RFC3339)}, "timezone": {"Asia/Tokyo"}}
	apiCall(t, s, created.Key, "GET", "/stats?"+q.Encode(), nil, &stats)
	require.Positive(t, stats.Totals.Requests)
	// Clicked from the page's script: a mouse click at the button's place
	// can land on the sticky header while the charts still settle after
	// the viewport changed.
	require.NoError(t, chromedp.Do(bctx, chromedp.WaitVisible(chromedp.ID("export-csv"))))
	_, err = chromedp.Run(bctx, chromedp.Evaluate[any](`document.getElementById('export-csv').click()`))
	require.NoError(t, err)
	var file string
	defer func() {
		if file == "" { // say what the page said
			status, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.getElementById('export-status') || {}).textContent || ''`))
			t.Logf("export status: %q", status)
		}
	}()
	waitUntil(t, 60*time.Second, "the download", func() bool {
		entries, _ := os.ReadDir(downloads)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".csv") {
				file = filepath.Join(downloads, e.Name())
				return true
			}
		}
		return false
	})
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Count(strings.TrimRight(string(raw), "\n"), "\n") // the header is the first line
	require.EqualValues(t, stats.Totals.Requests, lines, "rows in the downloaded CSV")

	// The endpoint drill-down shows the API's p95.
	require.NotEmpty(t, stats.TopEndpoints)
	ep := stats.TopEndpoints[0].Endpoint
	var ea struct {
		Totals struct {
			P95 float64 `json:"p95ResponseTime"`
		} `json:"totals"`
	}
	apiCall(t, s, created.Key, "GET", "/endpoints/"+url.PathEscape(ep)+"/analytics?"+q.Encode(), nil, &ea)
	require.Positive(t, ea.Totals.P95)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"#/endpoints/"+url.PathEscape(ep))))
	waitUntil(t, 30*time.Second, "the drill-down's p95", func() bool {
		r, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("endpoint-p95"), "data-ms"))
		if err != nil || !r.Exists {
			return false
		}
		got, err := strconv.ParseFloat(r.Value, 64)
		return err == nil && got == ea.Totals.P95
	})
	shoot("endpoint-desktop.png", 1280, 900)

	// The Dimensions view shows /dimensions: the user's regions, one of
	// them folded into __other__ past the cap of three.
	var dimsRes struct {
		Dimensions []struct {
			Name     string `json:"name"`
			Requests uint64 `json:"requests"`
			Other    uint64 `json:"otherRequests"`
		} `json:"dimensions"`
	}
	apiCall(t, s, created.Key, "GET", "/dimensions?"+q.Encode(), nil, &dimsRes)
	require.Len(t, dimsRes.Dimensions, 1)
	require.Positive(t, dimsRes.Dimensions[0].Requests)
	require.Positive(t, dimsRes.Dimensions[0].Other, "the fourth region is folded")
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"#/dimensions")))
	waitUntil(t, 30*time.Second, "the region dimension's counts", func() bool {
		req, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("dimension-region-summary"), "data-requests"))
		if err != nil || !req.Exists || req.Value != strconv.FormatUint(dimsRes.Dimensions[0].Requests, 10) {
			return false
		}
		other, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("dimension-region-summary"), "data-other"))
		return err == nil && other.Exists && other.Value == strconv.FormatUint(dimsRes.Dimensions[0].Other, 10)
	})
	shoot("dimensions-desktop.png", 1280, 900)

	// The Limits view shows the quota's forecast as /quota computes it.
	var quota []struct {
		Forecast *struct {
			Projected uint64 `json:"projectedAtPeriodEnd"`
		} `json:"forecast"`
	}
	apiCall(t, s, created.Key, "GET", "/quota", nil, &quota)
	require.Len(t, quota, 1)
	require.NotNil(t, quota[0].Forecast)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"#/limits")))
	waitUntil(t, 30*time.Second, "the quota's forecast", func() bool {
		r, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("forecast-monthly_requests"), "data-projected"))
		return err == nil && r.Exists && r.Value == strconv.FormatUint(quota[0].Forecast.Projected, 10)
	})
	shoot("limits-desktop.png", 1280, 900)

	// The SLA view shows the API's month of the default objective.
	month := dayStart.Format("2006-01") // a month of the traffic, in Tokyo
	var report struct {
		Objectives []struct {
			Name string `json:"name"`
			SLIs []struct {
				Kind       string   `json:"kind"`
				Total      uint64   `json:"total"`
				Attainment *float64 `json:"attainment"`
			} `json:"slis"`
		} `json:"objectives"`
	}
	apiCall(t, s, created.Key, "GET", "/sla?month="+month+"&timezone=Asia/Tokyo", nil, &report)
	require.Len(t, report.Objectives, 1)
	require.Equal(t, "api", report.Objectives[0].Name)
	sli := report.Objectives[0].SLIs[0]
	require.Equal(t, "availability", sli.Kind)
	require.Positive(t, sli.Total)
	require.NotNil(t, sli.Attainment)
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(base+"#/sla"), chromedp.WaitVisible(chromedp.ID("sla-month"))))
	require.NoError(t, chromedp.Do(bctx, chromedp.SetValue(chromedp.ID("sla-month"), month), change("sla-month")))
	waitUntil(t, 30*time.Second, "the SLA view's numbers", func() bool {
		total, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("sla-0-availability-total"), "data-value"))
		if err != nil || !total.Exists || total.Value != strconv.FormatUint(sli.Total, 10) {
			return false
		}
		att, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.ID("sla-0-availability-attainment"), "data-value"))
		if err != nil || !att.Exists {
			return false
		}
		got, err := strconv.ParseFloat(att.Value, 64)
		return err == nil && got == *sli.Attainment
	})
	shoot("sla-desktop.png", 1280, 900)

	// Sign out; a key the server does not know is refused.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.ID("signout")),
		chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), "am_"+strings.Repeat("x", 43)),
		chromedp.Click(chromedp.ID("signin-submit")),
		chromedp.WaitVisible(chromedp.ID("signin-error")),
	))
	msg, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("signin-error")))
	require.NoError(t, err)
	require.Contains(t, msg, "not accepted")
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, problems, "the console stays clean")
}
