package schema

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/apimeter/apimeter/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is what the schema package needs of a store.
type DB interface {
	Exec(ctx context.Context, query string, params ...store.Param) error
	Query(ctx context.Context, query string, params ...store.Param) (store.Rows, error)
}

// Migration is one versioned file of migrations/, NNNN_name.sql. Its
// checksum covers the file's text as written (before rendering), so the
// same migration has the same checksum on every layout.
type Migration struct {
	Version  int
	Name     string
	Text     string
	Checksum string
}

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations lists the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	return loadMigrations(migrationFiles, "migrations")
}

func loadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: m[2], Text: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: versions must run 1, 2, 3… without gaps", m.Version, m.Name)
		}
	}
	return out, nil
}

// Statements renders the migration for a layout and splits it into
// statements.
func (m Migration) Statements(l Layout) ([]string, error) {
	text, err := l.render(m.Name, m.Text)
	if err != nil {
		return nil, fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
	}
	return splitStatements(text), nil
}

const ledgerDDL = `CREATE TABLE IF NOT EXISTS {{table "schema_migrations"}} {{onCluster}}
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = {{replicated "schema_migrations" "MergeTree"}}
ORDER BY version`

// Migrator applies migrations and records them in the schema_migrations
// ledger.
type Migrator struct {
	db         DB
	layout     Layout
	log        *slog.Logger
	migrations []Migration
}

// NewMigrator prepares the embedded migrations for db.
func NewMigrator(db DB, layout Layout, log *slog.Logger) (*Migrator, error) {
	if err := layout.Validate(); err != nil {
		return nil, err
	}
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return &Migrator{db: db, layout: layout, log: log, migrations: ms}, nil
}

// Status is the state of a database against this binary's migrations.
type Status struct {
	Applied []Migration
	Pending []Migration
	// Problems lists applied migrations whose text changed and versions
	// this binary does not know; migrating refuses while there are any.
	Problems error
}

// Ready reports whether every migration is applied and none is in doubt.
func (s Status) Ready() bool { return len(s.Pending) == 0 && s.Problems == nil }

type ledgerRow struct {
	name     string
	checksum string
}

func (m *Migrator) ledger(ctx context.Context) (map[int]ledgerRow, error) {
	rows, err := m.db.Query(ctx, `SELECT version, argMax(name, applied_at), argMax(checksum, applied_at)
		FROM `+m.layout.Table("schema_migrations")+` GROUP BY version ORDER BY version`)
	if err != nil {
		if store.IsCode(err, store.CodeUnknownTable) {
			return map[int]ledgerRow{}, nil
		}
		return nil, fmt.Errorf("read migration ledger: %w", err)
	}
	defer rows.Close()
	out := map[int]ledgerRow{}
	for rows.Next() {
		var v int
		var r ledgerRow
		if err := rows.Scan(&v, &r.name, &r.checksum); err != nil {
			return nil, err
		}
		out[v] = r
	}
	return out, rows.Err()
}

// Status compares the ledger with the embedded migrations.
func (m *Migrator) Status(ctx context.Context) (Status, error) {
	led, err := m.ledger(ctx)
	if err != nil {
		return Status{}, err
	}
	var st Status
	var problems []error
	known := map[int]bool{}
	for _, mg := range m.migrations {
		known[mg.Version] = true
		row, ok := led[mg.Version]
		switch {
		case !ok:
			st.Pending = append(st.Pending, mg)
		case row.checksum != mg.Checksum:
			problems = append(problems, fmt.Errorf("migration %04d_%s was changed after it was applied (checksum %.12s applied, %.12s now): add a new migration instead of editing an applied one", mg.Version, mg.Name, row.checksum, mg.Checksum))
		default:
			st.Applied = append(st.Applied, mg)
		}
	}
	var unknown []int
	for v := range led {
		if !known[v] {
			unknown = append(unknown, v)
		}
	}
	sort.Ints(unknown)
	for _, v := range unknown {
		problems = append(problems, fmt.Errorf("migration %04d_%s is applied but unknown to this binary: the database is newer than this apimeter", v, led[v].name))
	}
	st.Problems = errors.Join(problems...)
	return st, nil
}

// Apply runs every pending migration in order. It refuses to run when an
// applied migration changed or the database knows migrations this binary
// does not. Statements are idempotent (IF NOT EXISTS), so a migration that
// failed halfway is completed by the next run; it is recorded only once
// all its statements succeeded.
func (m *Migrator) Apply(ctx context.Context) ([]Migration, error) {
	ledger, err := m.layout.render("ledger", ledgerDDL)
	if err != nil {
		return nil, err
	}
	if err := m.db.Exec(ctx, ledger); err != nil {
		return nil, fmt.Errorf("create migration ledger: %w", err)
	}
	st, err := m.Status(ctx)
	if err != nil {
		return nil, err
	}
	if st.Problems != nil {
		return nil, fmt.Errorf("refusing to migrate: %w", st.Problems)
	}
	record, err := m.layout.render("ledger-insert", `INSERT INTO {{table "schema_migrations"}} (version, name, checksum, applied_at)
		SELECT {version:UInt32}, {name:String}, {checksum:String}, now64(3)`)
	if err != nil {
		return nil, err
	}
	var applied []Migration
	for _, mg := range st.Pending {
		stmts, err := mg.Statements(m.layout)
		if err != nil {
			return applied, err
		}
		for i, s := range stmts {
			if err := m.db.Exec(ctx, s); err != nil {
				return applied, fmt.Errorf("migration %04d_%s, statement %d: %w\n%s", mg.Version, mg.Name, i+1, err, firstLine(s))
			}
		}
		if err := m.db.Exec(ctx, record, store.Named("version", mg.Version), store.Named("name", mg.Name), store.Named("checksum", mg.Checksum)); err != nil {
			return applied, fmt.Errorf("record migration %04d_%s: %w", mg.Version, mg.Name, err)
		}
		if m.log != nil {
			m.log.Info("migration applied", "version", mg.Version, "name", mg.Name, "statements", len(stmts))
		}
		applied = append(applied, mg)
	}
	return applied, nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			return l
		}
	}
	return ""
}

// Render is the whole DDL of a layout, ledger first, as `apimeter migrate
// --print` shows it.
func Render(l Layout) (string, error) {
	if err := l.Validate(); err != nil {
		return "", err
	}
	ms, err := Migrations()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	ledger, err := l.render("ledger", ledgerDDL)
	if err != nil {
		return "", err
	}
	b.WriteString("-- ledger\n" + ledger + ";\n")
	for _, m := range ms {
		stmts, err := m.Statements(l)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\n-- %04d_%s\n", m.Version, m.Name)
		for _, s := range stmts {
			b.WriteString(s + ";\n\n")
		}
	}
	return b.String(), nil
}
