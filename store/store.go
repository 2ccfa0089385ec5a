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
