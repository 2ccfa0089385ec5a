// Package store connects apimeter to ClickHouse: the embedded engine (chDB)
// in the process, or a ClickHouse server over the native protocol. Both
// drivers run the same SQL text, bind user values only as typed query
// parameters, stream results, and bulk-load rows in columnar blocks.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Driver is what both drivers provide. Packages that use a store declare
// the smaller interface they need; this one is the drivers' common shape.
type Driver interface {
	// Kind is "chdb" for the embedded engine, "clickhouse" for a server.
	Kind() string
	// Exec runs a statement that returns no rows.
	Exec(ctx context.Context, query string, params ...Param) error
	// Query runs a statement and streams its rows.
	Query(ctx context.Context, query string, params ...Param) (Rows, error)
	// Insert bulk-loads a block of rows into table.
	Insert(ctx context.Context, table string, b *Block, opts InsertOptions) error
	// Ping checks the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// InsertOptions tune one Insert.
type InsertOptions struct {
	// DedupToken makes a repeated insert of the same logical block a no-op
	// in the target table and in every materialized view fed by it (the
	// tables need non_replicated_deduplication_window). Characters are
	// limited to letters, digits and "._:-/".
	DedupToken string
	// Settings are further settings of the insert, after the token's:
	// on a ClickHouse cluster, how it is forwarded to the shards and how
	// many replicas must hold it before it returns
	// (schema.Layout.InsertSettings).
	Settings []Setting
}

// Setting is one query setting. Name is a setting's name; Value a number,
// or a word the engine reads as a string ("auto"), limited to the
// characters of a deduplication token.
type Setting struct {
	Name, Value string
}

// settings are all the settings of an insert: the deduplication ones
// when it has a token, then opts.Settings. Both drivers send these.
func (o InsertOptions) settings() ([]Setting, error) {
	var out []Setting
	if o.DedupToken != "" {
		if !validToken(o.DedupToken) {
			return nil, fmt.Errorf("store: invalid deduplication token %q", o.DedupToken)
		}
		out = append(out,
			Setting{"insert_deduplicate", "1"},
			Setting{"insert_deduplication_token", o.DedupToken},
			Setting{"deduplicate_blocks_in_dependent_materialized_views", "1"})
	}
	for _, s := range o.Settings {
		if !settingNameRE.MatchString(s.Name) || s.Value == "" || !validToken(s.Value) {
			return nil, fmt.Errorf("store: invalid setting %q = %q", s.Name, s.Value)
		}
		out = append(out, s)
	}
	return out, nil
}

var (
	settingNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,127}$`)
	numberRE      = regexp.MustCompile(`^[0-9]+$`)
)

// SettingsClause is the insert's SETTINGS clause as the embedded driver
// writes it (empty without settings): numbers bare, other values quoted.
func (o InsertOptions) SettingsClause() (string, error) {
	settings, err := o.settings()
	if err != nil || len(settings) == 0 {
		return "", err
	}
	var b strings.Builder
	for i, s := range settings {
		if i == 0 {
			b.WriteString(" SETTINGS ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(s.Name + " = ")
		if numberRE.MatchString(s.Value) {
			b.WriteString(s.Value)
		} else {
			b.WriteString("'" + s.Value + "'")
		}
	}
	return b.String(), nil
}

// Config selects and tunes a driver.
type Config struct {
	// URL is CLICKHOUSE_URL: "clickhouse://user:pass@host:9000/db" for a
	// server; empty or "chdb:///path" for the embedded engine. Default: "".
	URL string
	// DataDir is the embedded engine's data directory when URL names none.
	// Default: "./data".
	DataDir string
	// LibPath is libchdb.so's path. Default: CHDB_LIB_PATH, else the cache
	// folder `make deps` installs into.
	LibPath string
	// Conns is the number of engine connections the embedded driver keeps;
	// a connection runs one statement at a time. Default: DefaultConns.
	// A server's connections are its URL's max_open_conns (default 10).
	Conns int
	// Limits caps each class of work's share of the connections.
	Limits ClassLimits
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.Conns <= 0 {
		c.Conns = DefaultConns
	}
}

// Target says which driver a URL selects, and where it points.
type Target struct {
	Kind string // "chdb" or "clickhouse"
	// Path is the embedded engine's data directory ("" means in memory is
	// not allowed here: an empty path falls back to Config.DataDir).
	Path string
}

// ParseURL reads CLICKHOUSE_URL.
func ParseURL(raw, dataDir string) (Target, error) {
	if raw == "" {
		return Target{Kind: "chdb", Path: dataDir}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the URL, password included.
		return Target{}, errors.New("CLICKHOUSE_URL is not a valid URL")
	}
	switch u.Scheme {
	case "chdb":
		p := u.Path
		if u.Host != "" { // chdb://relative/dir
			p = u.Host + u.Path
		}
		if p == "" || p == "/" {
			p = dataDir
		}
		return Target{Kind: "chdb", Path: p}, nil
	case "clickhouse", "tcp":
		if u.Host == "" {
			return Target{}, errors.New("CLICKHOUSE_URL: missing host in " + RedactURL(raw))
		}
		return Target{Kind: "clickhouse"}, nil
	default:
		return Target{}, fmt.Errorf("CLICKHOUSE_URL: unsupported scheme %q (want clickhouse:// or chdb://)", u.Scheme)
	}
}

// Open connects the driver cfg.URL selects.
func Open(ctx context.Context, cfg Config) (Driver, error) {
	cfg.setDefaults()
	t, err := ParseURL(cfg.URL, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if t.Kind == "chdb" {
		return OpenEmbedded(EmbeddedConfig{Path: t.Path, LibPath: cfg.LibPath, Conns: cfg.Conns, Limits: cfg.Limits})
	}
	return OpenServer(ctx, cfg.URL, cfg.Limits)
}

// RedactURL hides a password in a URL for messages and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func validToken(tok string) bool {
	if len(tok) > 512 {
		return false
	}
	for _, r := range tok {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._:-/", r):
		default:
			return false
		}
	}
	return true
}
