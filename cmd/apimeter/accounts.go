package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

const accountsUsage = `usage:
  apimeter accounts set USER --plan P [--tenant T] [--anchor-day N] [--quota-mode hard|soft]
  apimeter accounts get USER [--tenant T]
  apimeter accounts list [--tenant T] [--plan P]
  apimeter accounts delete USER [--tenant T]

An account puts a user on a plan, with the day of the month its billing
cycle starts (1 by default) and a quota mode (the plan's by default).
Accounts are managed through a running server's admin API: --url
(APIMETER_URL, default the address APIMETER_HTTP_ADDR names,
http://localhost:8080) and an admin key, --key
(APIMETER_KEY, else APIMETER_ADMIN_KEY). set and delete need a global
admin's key (tenant *), which names the tenant with --tenant; a tenant
admin's key reads its own tenant's accounts (get, list). list with a
global admin's key and no --tenant lists every tenant. --json prints JSON.
`

// accountJSON is an account as the admin API sends it.
type accountJSON struct {
	Tenant    string `json:"tenantId"`
	User      string `json:"userId"`
	Plan      string `json:"plan"`
	AnchorDay int    `json:"billingAnchorDay"`
	QuotaMode string `json:"quotaMode"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

// accountsCmd runs `apimeter accounts`.
func accountsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || !slices.Contains([]string{"set", "get", "list", "delete"}, args[0]) {
		fmt.Fprint(stderr, accountsUsage)
		return exitCode(2)
	}
	fs := flag.NewFlagSet("accounts "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, accountsUsage) }
	base := fs.String("url", serverURL(), "server URL")
	key := fs.String("key", envOr("APIMETER_KEY", os.Getenv("APIMETER_ADMIN_KEY")), "admin API key")
	tenant := fs.String("tenant", "", "tenant id")
	plan := fs.String("plan", "", "plan name")
	anchor := fs.Int("anchor-day", 0, "day of the month the billing cycle starts, 1 to 31 (default 1)")
	mode := fs.String("quota-mode", "", "hard or soft (default: the plan's)")
	jsonOut := fs.Bool("json", false, "print JSON")
	users, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return exitCode(2)
	}
	usageErr := func(problem string) error {
		fmt.Fprintf(stderr, "accounts %s: %s\n\n%s", args[0], problem, accountsUsage)
		return exitCode(2)
	}
	wantUser := args[0] != "list"
	switch {
	case wantUser && len(users) != 1:
		return usageErr("name one USER")
	case !wantUser && len(users) != 0:
		return usageErr(fmt.Sprintf("unexpected argument %q", users[0]))
	}
	if *key == "" {
		return errors.New("accounts: no admin key: set --key, APIMETER_KEY or APIMETER_ADMIN_KEY")
	}
	c := &adminClient{name: "accounts", base: strings.TrimSuffix(*base, "/") + "/api/api-usage/admin/accounts", key: *key}
	tenantQuery := ""
	if *tenant != "" {
		tenantQuery = "?" + url.Values{"tenantId": {*tenant}}.Encode()
	}
	switch args[0] {
	case "set":
		if *plan == "" {
			return usageErr("--plan is required")
		}
		body := map[string]any{"plan": *plan}
		if *tenant != "" {
			body["tenantId"] = *tenant
		}
		if *anchor != 0 {
			body["billingAnchorDay"] = *anchor
		}
		if *mode != "" {
			body["quotaMode"] = *mode
		}
		var out json.RawMessage
		if err := c.do(ctx, http.MethodPut, "/"+url.PathEscape(users[0]), body, &out); err != nil {
			return err
		}
		return printAccount(stdout, *jsonOut, out)
	case "get":
		var out json.RawMessage
		if err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(users[0])+tenantQuery, nil, &out); err != nil {
			return err
		}
		return printAccount(stdout, *jsonOut, out)
	case "list":
		q := url.Values{}
		if *tenant != "" {
			q.Set("tenantId", *tenant)
		}
		if *plan != "" {
			q.Set("plan", *plan)
		}
		var out json.RawMessage
		if err := c.do(ctx, http.MethodGet, "?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		if *jsonOut {
			return printJSON(stdout, out)
		}
		var list struct {
			Accounts []accountJSON `json:"accounts"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			return fmt.Errorf("accounts: the server's answer: %w", err)
		}
		return printAccounts(stdout, list.Accounts)
	case "delete":
		if err := c.do(ctx, http.MethodDelete, "/"+url.PathEscape(users[0])+tenantQuery, nil, new(json.RawMessage)); err != nil {
			return err
		}
		if *jsonOut {
			return json.NewEncoder(stdout).Encode(map[string]any{"tenantId": *tenant, "userId": users[0], "deleted": true})
		}
		if *tenant != "" {
			fmt.Fprintf(stdout, "deleted the account of %s in tenant %s\n", users[0], *tenant)
		} else {
			fmt.Fprintf(stdout, "deleted the account of %s\n", users[0])
		}
		return nil
	}
	fmt.Fprint(stderr, accountsUsage)
	return exitCode(2)
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (`set USER --plan P`); the flag package alone stops
// at the first argument that is not a flag.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// printAccount prints one account as the server sent it (--json) or as a
// table.
func printAccount(w io.Writer, asJSON bool, raw json.RawMessage) error {
	if asJSON {
		return printJSON(w, raw)
	}
	var a accountJSON
	if err := json.Unmarshal(raw, &a); err != nil {
		return fmt.Errorf("accounts: the server's answer: %w", err)
	}
	return printAccounts(w, []accountJSON{a})
}

// printJSON prints a JSON answer on one line.
func printJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func printAccounts(w io.Writer, list []accountJSON) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tUSER\tPLAN\tANCHOR DAY\tQUOTA MODE\tCREATED\tUPDATED")
	for _, a := range list {
		mode := a.QuotaMode
		if mode == "" {
			mode = "(plan's)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", a.Tenant, a.User, a.Plan, a.AnchorDay, mode, a.CreatedAt, a.UpdatedAt)
	}
	return tw.Flush()
}
