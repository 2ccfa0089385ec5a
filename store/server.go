package store

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Server is the driver for a ClickHouse server over the native protocol.
type Server struct {
	conn driver.Conn
	url  string
	gate *gate
}

// defaultServerConns is clickhouse-go's own default pool size
// (max_idle_conns 5 + 5).
const defaultServerConns = 10

// OpenServer connects to the server rawURL names
// (clickhouse://user:pass@host:9000/db?dial_timeout=5s…); the URL's
// max_open_conns (default 10, or what limits want) is shared between the
// classes of work as limits says.
func OpenServer(ctx context.Context, rawURL string, limits ClassLimits) (*Server, error) {
	opts, err := clickhouse.ParseDSN(strings.Replace(rawURL, "tcp://", "clickhouse://", 1))
	if err != nil {
		return nil, fmt.Errorf("CLICKHOUSE_URL %s: %w", RedactURL(rawURL), err)
	}
	if opts.MaxOpenConns <= 0 {
		opts.MaxOpenConns = max(defaultServerConns, limits.wanted())
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", RedactURL(rawURL), err)
	}
	s := &Server{conn: conn, url: RedactURL(rawURL), gate: newGate(opts.MaxOpenConns, limits)}
	if err := s.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s: %w", s.url, err)
	}
	return s, nil
}

// Kind implements Driver.
func (s *Server) Kind() string { return "clickhouse" }

func withParams(ctx context.Context, params []Param) context.Context {
	if len(params) == 0 {
		return ctx
	}
	p := make(clickhouse.Parameters, len(params))
	for _, prm := range params {
		p[prm.Name] = prm.wire()
	}
	return clickhouse.Context(ctx, clickhouse.WithParameters(p))
}

// Exec implements Driver.
func (s *Server) Exec(ctx context.Context, query string, params ...Param) error {
	class, err := s.gate.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.gate.release(class)
	return engineError(s.conn.Exec(withParams(ctx, params), query))
}

// Query implements Driver. The class's slot stays with the rows until
// they are closed.
func (s *Server) Query(ctx context.Context, query string, params ...Param) (Rows, error) {
	class, err := s.gate.acquire(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(withParams(ctx, params), query)
	if err != nil {
		s.gate.release(class)
		return nil, engineError(err)
	}
	cts := rows.ColumnTypes()
	r := &serverRows{rows: rows, names: rows.Columns(), types: make([]string, len(cts)), release: func() { s.gate.release(class) }}
	r.targets = make([]any, len(cts))
	r.vals = make([]any, len(cts))
	for i, ct := range cts {
		r.types[i] = ct.DatabaseTypeName()
		r.targets[i] = reflect.New(ct.ScanType()).Interface()
	}
	return r, nil
}

// Insert implements Driver: each column of the block is appended whole.
func (s *Server) Insert(ctx context.Context, table string, b *Block, opts InsertOptions) error {
	if _, err := insertPrefix(table, b, opts); err != nil {
		return err
	}
	settings, err := opts.settings()
	if err != nil {
		return err
	}
	if len(settings) > 0 {
		cs := clickhouse.Settings{}
		for _, s := range settings {
			cs[s.Name] = s.Value // sent as text, read by the server as it reads the same setting in SQL
		}
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(cs))
	}
	class, err := s.gate.acquire(ctx)
	if err != nil {
		return err
	}
	defer s.gate.release(class)
	batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+b.ColumnNames()+")")
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, engineError(err))
	}
	defer batch.Abort()
	for i, c := range b.Columns() {
		if err := batch.Column(i).Append(serverColumn(c)); err != nil {
			return fmt.Errorf("insert into %s: column %s: %w", table, c.Name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", table, engineError(err))
	}
	return nil
}

// serverColumn adapts Block data to what clickhouse-go appends.
func serverColumn(c BlockColumn) any {
	if secs, ok := c.Data.([]uint32); ok && strings.HasPrefix(c.Type, "DateTime") {
		out := make([]time.Time, len(secs))
		for i, s := range secs {
			out[i] = time.Unix(int64(s), 0).UTC()
		}
		return out
	}
	return c.Data
}

// Ping implements Driver.
func (s *Server) Ping(ctx context.Context) error { return engineError(s.conn.Ping(ctx)) }

// ClassStats reports how each class of work uses the connections.
func (s *Server) ClassStats() []ClassStats { return s.gate.stats() }

// Close implements Driver.
func (s *Server) Close() error { return s.conn.Close() }

type serverRows struct {
	rows    driver.Rows
	names   []string
	types   []string
	targets []any
	vals    []any
	err     error
	release func()
}

func (r *serverRows) Columns() []string { return r.names }
func (r *serverRows) Types() []string   { return r.types }
func (r *serverRows) Values() []any     { return r.vals }

func (r *serverRows) Next() bool {
	if r.err != nil || !r.rows.Next() {
		return false
	}
	if err := r.rows.Scan(r.targets...); err != nil {
		r.err = engineError(err)
		return false
	}
	for i, t := range r.targets {
		r.vals[i] = canonical(reflect.ValueOf(t).Elem().Interface())
	}
	return true
}

func (r *serverRows) Scan(dest ...any) error { return scanRow(r.names, r.vals, dest) }

func (r *serverRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return engineError(r.rows.Err())
}

func (r *serverRows) Close() error {
	err := r.rows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}
