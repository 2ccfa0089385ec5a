package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gatewayVars are the variables the gateway configurations take, and
// the only ones the NGINX template may have substituted.
var gatewayVars = []string{"LISTEN_ADDR", "APIMETER_ADDR", "UPSTREAM_ADDR"}

// TestGatewayCheck runs the configurations of deploy/gateway with the
// real NGINX and Caddy in front of an API, against apimeter's gateway
// check: a Free user's first 100 calls of the hour reach the API with
// the limit headers counting down, the 101st is a 429 that does not,
// and calls without a valid key are 401s that do not either.
func TestGatewayCheck(t *testing.T) {
	gateways := []struct {
		name, binary string
		start        func(t *testing.T, bin string, vars map[string]string) *gatewayProc
	}{
		{"nginx", "nginx", startNGINX},
		{"caddy", "caddy", startCaddy},
	}
	var found []string
	for _, g := range gateways {
		if p, err := exec.LookPath(g.binary); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		t.Skip("SKIPPED: neither nginx nor caddy is on PATH (CI installs Debian's; apt-get install nginx caddy to run these tests here)")
	}

	s := startLimitsServer(t)

	for _, g := range gateways {
		t.Run(g.name, func(t *testing.T) {
			gwBin, err := exec.LookPath(g.binary)
			if err != nil {
				t.Skipf("SKIPPED: %s is not on PATH (CI installs it; apt-get install %s to run this test here)", g.binary, g.binary)
			}
			// A user without an account: on the Free plan (freeHourly,
			// freeMonthly).
			tenant, user := "gw-tenant", "customer-"+g.name
			var created struct {
				Key string `json:"key"`
			}
			apiCall(t, s.server, s.key, http.MethodPost, "/admin/keys",
				map[string]string{"tenantId": tenant, "userId": user, "role": "user"}, &created)
			require.NotEmpty(t, created.Key)

			up := newCountingUpstream(t)
			gw := g.start(t, gwBin, map[string]string{"LISTEN_ADDR": freeAddr(t), "APIMETER_ADDR": s.addr, "UPSTREAM_ADDR": up.addr})
			base := "http://" + gw.addr

			call := func(method, path, key string, body io.Reader) (*http.Response, []byte) {
				t.Helper()
				req, err := http.NewRequest(method, base+path, body)
				require.NoError(t, err)
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				// A client cannot pass itself off as another user.
				req.Header.Set("X-Apimeter-User", "someone-else")
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err, "%s", gw.out)
				defer resp.Body.Close()
				raw, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp, raw
			}

			decisions := map[string]bool{}
			for i := range freeHourly {
				method, path, body := http.MethodGet, fmt.Sprintf("/api/items/%d?page=%d", i+1, i), io.Reader(nil)
				if i%10 == 9 {
					method, path, body = http.MethodPost, "/api/items", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i))
				}
				resp, raw := call(method, path, created.Key, body)
				require.Equal(t, http.StatusOK, resp.StatusCode, "call %d: %s\n%s", i+1, raw, gw.out)
				require.Equal(t, "upstream saw "+method+" "+path, string(raw), "call %d", i+1)
				h := resp.Header
				require.Equal(t, strconv.Itoa(freeHourly), h.Get("X-RateLimit-Limit"), "call %d", i+1)
				require.Equal(t, strconv.Itoa(freeHourly-1-i), h.Get("X-RateLimit-Remaining"), "call %d", i+1)
				require.NotEmpty(t, h.Get("X-RateLimit-Reset"), "call %d", i+1)
				require.Equal(t, strconv.Itoa(freeMonthly), h.Get("X-Quota-Limit"), "call %d", i+1)
				require.Equal(t, strconv.Itoa(freeMonthly-1-i), h.Get("X-Quota-Remaining"), "call %d", i+1)
				require.NotEmpty(t, h.Get("X-Quota-Reset"), "call %d", i+1)
				require.Contains(t, h.Get("RateLimit-Policy"), fmt.Sprintf(";q=%d;w=3600", freeHourly), "call %d", i+1)
				require.Contains(t, h.Get("RateLimit"), fmt.Sprintf(";r=%d;", freeHourly-1-i), "call %d", i+1)

				seen := up.last()
				require.Equal(t, tenant, seen.tenant, "call %d", i+1)
				require.Equal(t, user, seen.user, "call %d", i+1)
				require.NotEmpty(t, seen.decision, "call %d: a counted call has a decision id", i+1)
				require.False(t, decisions[seen.decision], "call %d: decision id %s seen before", i+1, seen.decision)
				decisions[seen.decision] = true
				require.Empty(t, seen.authorization, "call %d: the customer's key stays at the gateway", i+1)
				if method == http.MethodPost {
					require.Equal(t, fmt.Sprintf(`{"n":%d}`, i), seen.body, "call %d: the body reaches the API", i+1)
				}
			}
			require.Equal(t, freeHourly, up.count())

			// The 101st call of the hour is refused before the API.
			resp, raw := call(http.MethodGet, "/api/items/101", created.Key, nil)
			require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "%s\n%s", raw, gw.out)
			retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
			require.NoError(t, err, "Retry-After %q", resp.Header.Get("Retry-After"))
			require.Positive(t, retry)
			// A call counts for an hour and at most one slot of a
			// minute (DESIGN.md, "Sliding windows without double spend").
			require.LessOrEqual(t, retry, 3600+60, "the hourly window frees a call within the hour and a minute")
			require.Equal(t, "0", resp.Header.Get("X-RateLimit-Remaining"))
			require.Equal(t, strconv.Itoa(freeHourly), resp.Header.Get("X-RateLimit-Limit"))
			require.Equal(t, strconv.Itoa(freeMonthly-freeHourly), resp.Header.Get("X-Quota-Remaining"))
			require.Equal(t, "rate_limit_exceeded", errorCode(t, raw))
			require.Equal(t, freeHourly, up.count(), "a refused call does not reach the API")

			// No valid key: 401, not passed on.
			for _, key := range []string{"am_not-a-key-of-this-server", ""} {
				resp, raw := call(http.MethodGet, "/api/items/1", key, nil)
				require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "key %q: %s\n%s", key, raw, gw.out)
				require.True(t, strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer"), "key %q: %v", key, resp.Header)
				require.Equal(t, "unauthenticated", errorCode(t, raw), "key %q", key)
			}
			require.Equal(t, freeHourly, up.count(), "calls without a valid key do not reach the API")

			// A user on the unlimited plan: the check answers without
			// limit headers; neither the client nor the API sees a
			// header the gateway made up.
			big := "customer-" + g.name + "-enterprise"
			apiCall(t, s.server, s.key, http.MethodPut, "/admin/accounts/"+big, map[string]string{"tenantId": tenant, "plan": "enterprise"}, nil)
			apiCall(t, s.server, s.key, http.MethodPost, "/admin/keys",
				map[string]string{"tenantId": tenant, "userId": big, "role": "user"}, &created)
			resp, raw = call(http.MethodGet, "/api/items/1", created.Key, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s\n%s", raw, gw.out)
			require.Equal(t, freeHourly+1, up.count())
			seen := up.last()
			require.Equal(t, tenant, seen.tenant)
			require.Equal(t, big, seen.user)
			require.NotContains(t, seen.decision, "{", "the API gets no placeholder text")
			for name, vals := range resp.Header {
				require.NotContains(t, strings.Join(vals, ","), "{", "%s: the client gets no placeholder text", name)
			}
		})
	}
}

// errorCode reads the code of a JSON error answer.
func errorCode(t *testing.T, raw []byte) string {
	t.Helper()
	var body struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), "%s", raw)
	return body.Error.Code
}

// countingUpstream is the API behind the gateway: it counts the calls
// that reach it and keeps what the gateway told it about the last one.
type countingUpstream struct {
	addr string
	mu   sync.Mutex
	n    int
	seen upstreamCall
}

type upstreamCall struct {
	tenant, user, decision, authorization, body string
}

func newCountingUpstream(t *testing.T) *countingUpstream {
	u := &countingUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.n++
		u.seen = upstreamCall{tenant: r.Header.Get("X-Apimeter-Tenant"), user: r.Header.Get("X-Apimeter-User"),
			decision: r.Header.Get("X-Apimeter-Decision"), authorization: r.Header.Get("Authorization"), body: string(body)}
		u.mu.Unlock()
		fmt.Fprintf(w, "upstream saw %s %s", r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	u.addr = srv.Listener.Addr().String()
	return u
}

func (u *countingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

func (u *countingUpstream) last() upstreamCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen
}

// gatewayProc is a running gateway; it dies with the test, its worker
// processes with it.
type gatewayProc struct {
	addr string
	out  *syncBuffer
}

// startGateway runs cmd in a process group of its own, killed as a
// whole when the test ends, and waits until addr accepts connections
// (a request would be a call to count).
func startGateway(t *testing.T, cmd *exec.Cmd, addr string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{addr: addr, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = g.out, g.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("%s exited at start: %v\n%s", cmd.Path, err, g.out)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after 20 s\n%s", cmd.Path, addr, g.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startNGINX renders nginx.conf.template as the README says and runs it
// with a prefix directory of its own.
func startNGINX(t *testing.T, bin string, vars map[string]string) *gatewayProc {
	t.Helper()
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "gateway", "nginx.conf.template"))
	require.NoError(t, err)
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(conf, []byte(renderTemplate(t, string(tmpl), vars)), 0o644))
	return startGateway(t, exec.Command(bin, "-p", dir, "-c", conf), vars["LISTEN_ADDR"])
}

// startCaddy runs the Caddyfile with the variables in its environment,
// and its home and configuration directories in the test's.
func startCaddy(t *testing.T, bin string, vars map[string]string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, "run", "--config", filepath.Join("..", "..", "deploy", "gateway", "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return startGateway(t, cmd, vars["LISTEN_ADDR"])
}

// renderTemplate substitutes the gateway variables as
// `envsubst '${LISTEN_ADDR} ${APIMETER_ADDR} ${UPSTREAM_ADDR}'` does,
// with envsubst itself when it is installed.
func renderTemplate(t *testing.T, tmpl string, vars map[string]string) string {
	t.Helper()
	p, err := exec.LookPath("envsubst")
	if err != nil {
		return envsubst(tmpl, vars)
	}
	cmd := exec.Command(p, envsubstFormat())
	cmd.Stdin = strings.NewReader(tmpl)
	cmd.Env = os.Environ()
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	require.NoError(t, err)
	return string(out)
}

func envsubstFormat() string {
	var f []string
	for _, v := range gatewayVars {
		f = append(f, "${"+v+"}")
	}
	return strings.Join(f, " ")
}

var envsubstRef = regexp.MustCompile(`\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// envsubst replaces $NAME and ${NAME} for the gateway variables only,
// leaving every other $ as it is (NGINX's own variables), as envsubst
// with a SHELL-FORMAT argument does.
func envsubst(tmpl string, vars map[string]string) string {
	return envsubstRef.ReplaceAllStringFunc(tmpl, func(ref string) string {
		m := envsubstRef.FindStringSubmatch(ref)
		name := m[1] + m[2]
		for _, v := range gatewayVars {
			if v == name {
				return vars[name]
			}
		}
		return ref
	})
}

// TestEnvsubstFallback holds the substitution used without envsubst to
// what envsubst does.
func TestEnvsubstFallback(t *testing.T) {
	p, err := exec.LookPath("envsubst")
	if err != nil {
		t.Skip("SKIPPED: envsubst is not installed (Debian's gettext-base)")
	}
	tmpl, err := os.ReadFile(filepath.Join("..", "..", "deploy", "gateway", "nginx.conf.template"))
	require.NoError(t, err)
	input := string(tmpl) + "\n$LISTEN_ADDR ${APIMETER_ADDR}x $UPSTREAM_ADDRX ${LISTEN_ADDR $$ $1 ${HOME} $host ${host}_y \\$LISTEN_ADDR $\n"
	vars := map[string]string{"LISTEN_ADDR": "127.0.0.1:1", "APIMETER_ADDR": "127.0.0.1:2", "UPSTREAM_ADDR": "127.0.0.1:3"}
	cmd := exec.Command(p, envsubstFormat())
	cmd.Stdin = strings.NewReader(input)
	cmd.Env = []string{"HOME=/nowhere", "host=h"}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	want, err := cmd.Output()
	require.NoError(t, err)
	require.Equal(t, string(want), envsubst(input, vars))
	require.Contains(t, string(want), "listen 127.0.0.1:1;")
	require.Contains(t, string(want), "proxy_set_header Host $host;", "NGINX's variables stay")
}

// syncBuffer collects a process's output while the test reads it.
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
