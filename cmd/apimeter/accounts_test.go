package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// adminAPI stands in for a server's accounts routes: it records what the
// CLI sends and answers with a canned status and body.
type adminAPI struct {
	srv    *httptest.Server
	status int
	answer string
	// What the last request carried.
	method, path, rawPath, query, auth, contentType, body string
}

func newAdminAPI(t *testing.T) *adminAPI {
	a := &adminAPI{status: http.StatusOK}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		a.method, a.path, a.rawPath, a.query = r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery
		a.auth, a.contentType, a.body = r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(body)
		if a.answer != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.answer)
	}))
	t.Cleanup(a.srv.Close)
	t.Setenv("APIMETER_URL", "")
	t.Setenv("APIMETER_KEY", "")
	t.Setenv("APIMETER_ADMIN_KEY", "")
	return a
}

// run runs `apimeter accounts args…` against the stand-in.
func (a *adminAPI) run(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	full := append([]string{"accounts"}, args...)
	full = append(full, "--url", a.srv.URL+"/", "--key", "am_admin-key")
	err := dispatch(context.Background(), full, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

const accountAnswer = `{"tenantId":"acme","userId":"u1@x.io","plan":"pro","billingAnchorDay":15,"quotaMode":"soft",` +
	`"createdAt":"2026-11-03T09:30:00.123Z","updatedAt":"2026-11-04T10:00:00Z"}`

func TestAccountsSet(t *testing.T) {
	a := newAdminAPI(t)
	a.answer = accountAnswer
	out, _, err := a.run("set", "u1@x.io", "--plan", "pro", "--tenant", "acme", "--anchor-day", "15", "--quota-mode", "soft")
	require.NoError(t, err)
	require.Equal(t, http.MethodPut, a.method)
	require.Equal(t, "/api/api-usage/admin/accounts/u1@x.io", a.path)
	require.Equal(t, "Bearer am_admin-key", a.auth)
	require.Equal(t, "application/json", a.contentType)
	require.Empty(t, a.query)
	require.JSONEq(t, `{"tenantId":"acme","plan":"pro","billingAnchorDay":15,"quotaMode":"soft"}`, a.body)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, []string{"TENANT", "USER", "PLAN", "ANCHOR", "DAY", "QUOTA", "MODE", "CREATED", "UPDATED"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"acme", "u1@x.io", "pro", "15", "soft", "2026-11-03T09:30:00.123Z", "2026-11-04T10:00:00Z"}, strings.Fields(lines[1]))

	// Flags before the user; unset options stay out of the body, so the
	// server's defaults apply; the key from the environment.
	a.answer = `{"tenantId":"acme","userId":"u 2","plan":"free","billingAnchorDay":1,"quotaMode":"","createdAt":"x","updatedAt":"x"}`
	t.Setenv("APIMETER_KEY", "am_env-key")
	var stdout, stderr bytes.Buffer
	err = dispatch(context.Background(), []string{"accounts", "set", "--url", a.srv.URL, "--plan", "free", "u 2"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Equal(t, "/api/api-usage/admin/accounts/u%202", a.rawPath)
	require.Equal(t, "Bearer am_env-key", a.auth)
	require.JSONEq(t, `{"plan":"free"}`, a.body)
	require.Contains(t, stdout.String(), "(plan's)")

	// --json prints the server's answer.
	a.answer = accountAnswer
	out, _, err = a.run("set", "u1@x.io", "--plan", "pro", "--json")
	require.NoError(t, err)
	require.JSONEq(t, accountAnswer, out)
}

func TestAccountsGetListDelete(t *testing.T) {
	a := newAdminAPI(t)
	a.answer = accountAnswer
	out, _, err := a.run("get", "u1@x.io", "--tenant", "acme")
	require.NoError(t, err)
	require.Equal(t, http.MethodGet, a.method)
	require.Equal(t, "/api/api-usage/admin/accounts/u1@x.io", a.path)
	require.Equal(t, "tenantId=acme", a.query)
	require.Equal(t, "Bearer am_admin-key", a.auth)
	require.Empty(t, a.body)
	require.Contains(t, out, "u1@x.io")

	_, _, err = a.run("get", "u1@x.io")
	require.NoError(t, err)
	require.Empty(t, a.query, "a tenant admin's key needs no tenant")

	a.answer = `{"accounts":[` + accountAnswer + `,{"tenantId":"globex","userId":"u9","plan":"free","billingAnchorDay":1,"quotaMode":"","createdAt":"c","updatedAt":"u"}]}`
	out, _, err = a.run("list", "--tenant", "acme", "--plan", "pro")
	require.NoError(t, err)
	require.Equal(t, http.MethodGet, a.method)
	require.Equal(t, "/api/api-usage/admin/accounts", a.path)
	require.Equal(t, "plan=pro&tenantId=acme", a.query)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3)
	require.Equal(t, []string{"globex", "u9", "free", "1", "(plan's)", "c", "u"}, strings.Fields(lines[2]))
	_, _, err = a.run("list")
	require.NoError(t, err)
	require.Empty(t, a.query)
	out, _, err = a.run("list", "--json")
	require.NoError(t, err)
	require.JSONEq(t, a.answer, out)

	a.status, a.answer = http.StatusNoContent, ""
	out, _, err = a.run("delete", "u1@x.io", "--tenant", "acme")
	require.NoError(t, err)
	require.Equal(t, http.MethodDelete, a.method)
	require.Equal(t, "/api/api-usage/admin/accounts/u1@x.io", a.path)
	require.Equal(t, "tenantId=acme", a.query)
	require.Equal(t, "Bearer am_admin-key", a.auth)
	require.Empty(t, a.body)
	require.Equal(t, "deleted the account of u1@x.io in tenant acme\n", out)
	out, _, err = a.run("delete", "u1@x.io", "--json")
	require.NoError(t, err)
	var del map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &del))
	require.Equal(t, true, del["deleted"])

	// A success with a body that is not JSON is still an error.
	a.status, a.answer = http.StatusOK, `{"oops`
	_, _, err = a.run("delete", "u1@x.io")
	require.Error(t, err)
}

func TestAccountsErrors(t *testing.T) {
	a := newAdminAPI(t)
	a.status = http.StatusNotFound
	a.answer = `{"error":{"code":"not_found","message":"no account for user \"u1\" of tenant \"acme\""}}`
	_, _, err := a.run("get", "u1")
	require.EqualError(t, err, `accounts: no account for user "u1" of tenant "acme" (404 not_found)`)
	_, _, err = a.run("delete", "u1")
	require.ErrorContains(t, err, "404 not_found")

	a.status = http.StatusBadRequest
	a.answer = `{"error":{"code":"invalid_argument","message":"plan \"gold\": no such plan"}}`
	_, _, err = a.run("set", "u1", "--plan", "gold")
	require.ErrorContains(t, err, `plan "gold": no such plan`)

	// Usage mistakes never reach the server.
	a.method = ""
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"set", "u1"},
		{"set", "--plan", "pro"},
		{"set", "u1", "u2", "--plan", "pro"},
		{"get"},
		{"delete"},
		{"list", "u1"},
		{"get", "u1", "--bogus"},
	} {
		_, stderr, err := a.run(args...)
		require.Equal(t, exitCode(2), err, "%v", args)
		require.Contains(t, stderr, "apimeter accounts set USER", "%v", args)
	}
	var stdout, stderr bytes.Buffer
	err = dispatch(context.Background(), []string{"accounts", "list", "--url", a.srv.URL}, &stdout, &stderr)
	require.ErrorContains(t, err, "no admin key")
	require.Empty(t, a.method)
}

// Against a real server (its own process: the embedded engine admits one
// data directory per process): a tenant admin's key reads its tenant's
// accounts but cannot change a plan, and the CLI says why in the server's
// words.
func TestAccountsCLIAsEachRole(t *testing.T) {
	bin := buildBinary(t)
	const global = "am_cli-global-admin-key"
	kenv, _ := kafkaEnv(t)
	s := startServe(t, bin, append([]string{"APIMETER_DATA_DIR=" + t.TempDir(), "CLICKHOUSE_URL=", "APIMETER_ADMIN_KEY=" + global}, kenv...))
	s.waitReady(t, 60*time.Second)
	url := "http://" + s.addr
	ctx := context.Background()
	run := func(key string, args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := dispatch(ctx, append(args, "--url", url, "--key", key, "--json"), &stdout, &stderr)
		return stdout.String(), err
	}
	out, err := run(global, "keys", "create", "--tenant", "acme", "--user", "boss", "--role", "admin")
	require.NoError(t, err)
	var created struct {
		Secret string `json:"key"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created), out)
	tenantAdmin := created.Secret
	require.NotEmpty(t, tenantAdmin)

	_, err = run(global, "accounts", "set", "u1", "--tenant", "acme", "--plan", "starter")
	require.NoError(t, err)
	_, err = run(tenantAdmin, "accounts", "set", "u1", "--plan", "enterprise")
	require.Error(t, err)
	require.Contains(t, err.Error(), "global admin")
	require.Contains(t, err.Error(), "403 permission_denied")
	_, err = run(tenantAdmin, "accounts", "delete", "u1")
	require.ErrorContains(t, err, "global admin")
	out, err = run(tenantAdmin, "accounts", "get", "u1")
	require.NoError(t, err)
	require.Contains(t, out, `"plan":"starter"`, "the refused calls changed nothing")
	out, err = run(tenantAdmin, "accounts", "list")
	require.NoError(t, err)
	require.Contains(t, out, `"userId":"u1"`)
	s.stop(t)
}

// The admin commands find the server where `serve` listens by the same
// environment, unless APIMETER_URL says otherwise.
func TestAdminCommandsFollowTheHTTPAddress(t *testing.T) {
	for _, c := range []struct{ url, addr, want string }{
		{"", "", "http://localhost:8080"},
		{"", "127.0.0.1:9999", "http://127.0.0.1:9999"},
		{"", ":7000", "http://localhost:7000"},
		{"", "0.0.0.0:7001", "http://localhost:7001"},
		{"", "[::1]:7002", "http://[::1]:7002"},
		{"http://elsewhere:1234", "127.0.0.1:9999", "http://elsewhere:1234"},
	} {
		t.Setenv("APIMETER_URL", c.url)
		t.Setenv("APIMETER_HTTP_ADDR", c.addr)
		require.Equal(t, c.want, serverURL(), "APIMETER_URL=%q APIMETER_HTTP_ADDR=%q", c.url, c.addr)
	}
}
