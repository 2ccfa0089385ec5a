// Package storetest gives tests a fresh, empty ClickHouse database: on a
// ClickHouse server when CLICKHOUSE_TEST_URL is set, otherwise on the
// embedded engine in a temporary directory shared by the test process.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	db := "t_" + randomHex(6)
	ctx := context.Background()
	if raw := os.Getenv("CLICKHOUSE_TEST_URL"); raw != "" {
		admin, err := store.OpenServer(ctx, raw)
		if err != nil {
			t.Fatalf("CLICKHOUSE_TEST_URL: %v", err)
		}
		if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + db
		d, err := store.OpenServer(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			d.Close()
			admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC")
			admin.Close()
		})
		return d
	}
	dir := EngineDir(t)
	d, err := store.OpenEmbedded(store.EmbeddedConfig{Path: dir, Database: db, Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC")
		d.Close()
	})
	return d
}

// EngineDir is the data directory of the test process's embedded engine.
// The engine stays open for the life of the process: shutting it down and
// booting it again in one process is not supported by the engine.
func EngineDir(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if anchor != nil {
		return engineDir
	}
	dir, err := os.MkdirTemp("", "apimeter-test-engine-")
	if err != nil {
		t.Fatal(err)
	}
	a, err := store.OpenEmbedded(store.EmbeddedConfig{Path: dir, Conns: 1})
	if err != nil {
		t.Fatal(err)
	}
	engineDir, anchor = dir, a
	return dir
}

// Server reports whether tests run against a ClickHouse server.
func Server() bool { return os.Getenv("CLICKHOUSE_TEST_URL") != "" }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
