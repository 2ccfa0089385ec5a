package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const keysUsage = `usage:
  apimeter keys create --user U [--tenant T] [--role user|admin|service] [--name N] [--expires 720h|RFC3339]
  apimeter keys list [--tenant T] [--user U]
  apimeter keys revoke KEY_ID

Keys are managed through a running server's admin API (the embedded
engine admits one process per data directory): --url (APIMETER_URL,
default the address APIMETER_HTTP_ADDR names, http://localhost:8080) and an admin key, --key (APIMETER_KEY,
else APIMETER_ADMIN_KEY).
`

// keysCmd runs `apimeter keys`.
func keysCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return exitCode(2)
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	base := fs.String("url", serverURL(), "server URL")
	key := fs.String("key", envOr("APIMETER_KEY", os.Getenv("APIMETER_ADMIN_KEY")), "admin API key")
	tenant := fs.String("tenant", "", "tenant id (* for an admin of every tenant)")
	user := fs.String("user", "", "user id")
	role := fs.String("role", "user", "user, admin or service (decides and reports calls of its tenant, reads no analytics)")
	name := fs.String("name", "", "a label for the key")
	expires := fs.String("expires", "", "a lifetime (720h) or an RFC 3339 time")
	jsonOut := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return exitCode(2)
	}
	if *key == "" {
		return errors.New("keys: no admin key: set --key, APIMETER_KEY or APIMETER_ADMIN_KEY")
	}
	c := &adminClient{name: "keys", base: strings.TrimSuffix(*base, "/") + "/api/api-usage/admin/keys", key: *key}
	switch args[0] {
	case "create":
		body := map[string]any{"userId": *user, "role": *role, "name": *name}
		if *tenant != "" {
			body["tenantId"] = *tenant
		}
		if *expires != "" {
			at, err := expiry(*expires)
			if err != nil {
				return err
			}
			body["expiresAt"] = at
		}
		var out map[string]any
		if err := c.do(ctx, http.MethodPost, "", body, &out); err != nil {
			return err
		}
		if *jsonOut {
			return json.NewEncoder(stdout).Encode(out)
		}
		fmt.Fprintf(stdout, "key id:  %v\ntenant:  %v\nuser:    %v\nrole:    %v\nsecret:  %v\n\nThe secret is shown once; store it now.\n",
			out["keyId"], out["tenantId"], out["userId"], out["role"], out["key"])
		return nil
	case "list":
		q := url.Values{}
		if *tenant != "" {
			q.Set("tenantId", *tenant)
		}
		if *user != "" {
			q.Set("userId", *user)
		}
		var out struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := c.do(ctx, http.MethodGet, "?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		if *jsonOut {
			return json.NewEncoder(stdout).Encode(out)
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY ID\tPREFIX\tTENANT\tUSER\tROLE\tNAME\tCREATED\tSTATE")
		for _, k := range out.Keys {
			state := "active"
			if k["revokedAt"] != nil {
				state = "revoked"
			} else if exp, ok := k["expiresAt"].(string); ok {
				if t, err := time.Parse(time.RFC3339, exp); err == nil && t.Before(time.Now()) {
					state = "expired"
				}
			}
			fmt.Fprintf(tw, "%v\t%v…\t%v\t%v\t%v\t%v\t%v\t%s\n", k["keyId"], k["prefix"], k["tenantId"], k["userId"], k["role"], k["name"], k["createdAt"], state)
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			fmt.Fprint(stderr, keysUsage)
			return exitCode(2)
		}
		var out map[string]any
		if err := c.do(ctx, http.MethodDelete, "/"+url.PathEscape(fs.Arg(0)), nil, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %v at %v\n", out["keyId"], out["revokedAt"])
		return nil
	}
	fmt.Fprint(stderr, keysUsage)
	return exitCode(2)
}

// serverURL is where the admin commands find the server: APIMETER_URL,
// else the address `serve` listens on by the same environment
// (APIMETER_HTTP_ADDR; a host left out or 0.0.0.0/:: is this machine).
func serverURL() string {
	if v := os.Getenv("APIMETER_URL"); v != "" {
		return v
	}
	addr := envOr("APIMETER_HTTP_ADDR", ":8080")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func expiry(s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return time.Now().Add(d).UTC().Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: want a duration (720h) or an RFC 3339 time", s)
	}
	return t, nil
}

// adminClient calls the admin keys API.
// adminClient calls one collection of the admin API; name prefixes its
// errors ("keys", "accounts").
type adminClient struct{ name, base, key string }

func (c *adminClient) do(ctx context.Context, method, suffix string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+suffix, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s: %s (%d %s)", c.name, e.Error.Message, resp.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("%s: the server answered %s", c.name, resp.Status)
	}
	if resp.StatusCode == http.StatusNoContent || len(raw) == 0 || out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: the server's answer: %w", c.name, err)
	}
	return nil
}
