// Package storetest gives tests a fresh, empty ClickHouse database: on a
// ClickHouse server when CLICKHOUSE_TEST_URL is set, otherwise on the
// embedded engine in a temporary directory shared by the test process.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"

	"github.com/apimeter/apimeter/store"
)

var (
	mu        sync.Mutex
	engineDir string
	anchor    *store.Embedded
)

// Open returns a driver on a new database that is dropped when the test
// ends.
func Open(t testing.TB) store.Driver {
	t.Helper()
	d, drop, err := OpenDB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return d
}

// OpenDB returns a driver on a new database and the function that drops
// it, for data shared by the tests of a package (set up in TestMain).
func OpenDB() (store.Driver, func(), error) {
	return OpenDBWith(0, store.ClassLimits{})
}

// OpenWith is Open with conns connections shared by the classes of work
// as limits says (a server's pool gets max_open_conns=conns).
func OpenWith(t testing.TB, conns int, limits store.ClassLimits) store.Driver {
	t.Helper()
	d, drop, err := OpenDBWith(conns, limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return d
}

// OpenDBWith is OpenDB with conns connections (0: 2 on the embedded
// engine, the URL's pool on a server) and limits.
func OpenDBWith(conns int, limits store.ClassLimits) (store.Driver, func(), error) {
	db := "t_" + randomHex(6)
	ctx := context.Background()
	if raw := os.Getenv("CLICKHOUSE_TEST_URL"); raw != "" {
		admin, err := store.OpenServer(ctx, raw, store.ClassLimits{Unlimited: true})
		if err != nil {
			return nil, nil, fmt.Errorf("CLICKHOUSE_TEST_URL: %w", err)
		}
		if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			admin.Close()
			return nil, nil, err
		}
		u, err := url.Parse(raw)
		if err != nil {
			admin.Close()
			return nil, nil, err
		}
		u.Path = "/" + db
		if conns > 0 {
			q := u.Query()
			q.Set("max_open_conns", fmt.Sprint(conns))
			u.RawQuery = q.Encode()
		}
		d, err := store.OpenServer(ctx, u.String(), limits)
		if err != nil {
			admin.Close()
			return nil, nil, err
		}
		return d, func() {
			d.Close()
			admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC")
			admin.Close()
		}, nil
	}
	dir, err := engineDirectory()
	if err != nil {
		return nil, nil, err
	}
	if conns <= 0 {
		conns = 2
	}
	d, err := store.OpenEmbedded(store.EmbeddedConfig{Path: dir, Database: db, Conns: conns, Limits: limits})
	if err != nil {
		return nil, nil, err
	}
	return d, func() {
		d.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC")
		d.Close()
	}, nil
}

// EngineDir is the data directory of the test process's embedded engine.
// The engine stays open for the life of the process: shutting it down and
// booting it again in one process is not supported by the engine.
func EngineDir(t testing.TB) string {
	t.Helper()
	dir, err := engineDirectory()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func engineDirectory() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if anchor != nil {
		return engineDir, nil
	}
	dir, err := os.MkdirTemp("", "apimeter-test-engine-")
	if err != nil {
		return "", err
	}
	a, err := store.OpenEmbedded(store.EmbeddedConfig{Path: dir, Conns: 1})
	if err != nil {
		return "", err
	}
	engineDir, anchor = dir, a
	return dir, nil
}

// Server reports whether tests run against a ClickHouse server.
func Server() bool { return os.Getenv("CLICKHOUSE_TEST_URL") != "" }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
