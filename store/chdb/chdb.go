// Package chdb binds the C API of libchdb, the embedded ClickHouse engine,
// with purego, so that a binary built with CGO_ENABLED=0 loads the library
// only when the embedded store is chosen and starts without it otherwise.
package chdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Version is the chDB release this binding is written against and the one
// `make deps` installs.
const Version = "26.7.3-stable.1"

// ErrLibraryMissing is returned by Load when libchdb.so cannot be found.
var ErrLibraryMissing = errors.New("chdb: libchdb.so not found; run `make deps` to install it, or set CHDB_LIB_PATH to its path")

// Lib is a loaded libchdb. It is safe for concurrent use.
type Lib struct {
	path string

	// The engine is process-wide: every open connection shares one data
	// directory.
	mu         sync.Mutex
	enginePath string
	openConns  int

	version              func() string
	setSignalHandlers    func(enabled int32)
	connect              func(argc int32, argv unsafe.Pointer) *uintptr
	closeConn            func(conn *uintptr)
	queryN               func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format string, formatLen uintptr) uintptr
	queryWithParamsN     func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format string, formatLen uintptr, names, nameLens, values, valueLens unsafe.Pointer, n uintptr) uintptr
	streamQueryN         func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format string, formatLen uintptr) uintptr
	streamQueryParamsN   func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format string, formatLen uintptr, names, nameLens, values, valueLens unsafe.Pointer, n uintptr) uintptr
	streamFetch          func(conn uintptr, result uintptr) uintptr
	streamCancel         func(conn uintptr, result uintptr)
	destroyResult        func(result uintptr)
	resultBuffer         func(result uintptr) unsafe.Pointer
	resultLength         func(result uintptr) uintptr
	resultError          func(result uintptr) string
	resultRowsRead       func(result uintptr) uint64
	resultRowsWritten    func(result uintptr) uint64
	resultStorageRowRead func(result uintptr) uint64
	insertStart          func(conn uintptr, query unsafe.Pointer, queryLen uintptr, format string, formatLen uintptr) uintptr
	insertError          func(stream uintptr) string
	insertAppend         func(stream uintptr, data unsafe.Pointer, n uintptr) int32
	insertDone           func(stream uintptr) uintptr
	insertDestroy        func(stream uintptr)
}

var (
	loadMu sync.Mutex
	loaded = map[string]*Lib{}
)

// LibraryPath resolves where libchdb.so is expected: CHDB_LIB_PATH (a file
// or the folder holding it) when set, else the cache folder `make deps`
// installs into.
func LibraryPath() string {
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return filepath.Join(p, "libchdb.so")
		}
		return p
	}
	return filepath.Join(CacheDir(), "chdb", Version, "libchdb.so")
}

// CacheDir is the per-user cache root shared with deploy/chdb/install.sh:
// APIMETER_CACHE_DIR, else $XDG_CACHE_HOME/apimeter, else ~/.cache/apimeter.
func CacheDir() string {
	if d := os.Getenv("APIMETER_CACHE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "apimeter")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "apimeter-cache")
	}
	return filepath.Join(home, ".cache", "apimeter")
}

// Load opens the library at path (LibraryPath() when empty). The library is
// opened once per path for the life of the process: the engine inside it is
// process-wide and is not meant to be unloaded.
func Load(path string) (*Lib, error) {
	if path == "" {
		path = LibraryPath()
	}
	loadMu.Lock()
	defer loadMu.Unlock()
	if l, ok := loaded[path]; ok {
		return l, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w (looked for %s)", ErrLibraryMissing, path)
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("chdb: open %s: %w", path, err)
	}
	l := &Lib{path: path}
	if err := l.bind(h); err != nil {
		return nil, fmt.Errorf("chdb: %s: %w", path, err)
	}
	// The engine's own handlers for SIGINT, SIGTERM and the fault signals
	// would take them from the Go runtime: graceful shutdown and Go's
	// preemption depend on Go keeping them.
	l.setSignalHandlers(0)
	loaded[path] = l
	return l, nil
}

func (l *Lib) bind(h uintptr) (err error) {
	defer func() {
		// RegisterLibFunc panics on a missing symbol: an older library.
		if r := recover(); r != nil {
			err = fmt.Errorf("incompatible libchdb (want %s): %v", Version, r)
		}
	}()
	purego.RegisterLibFunc(&l.version, h, "chdb_version")
	purego.RegisterLibFunc(&l.setSignalHandlers, h, "chdb_set_signal_handlers_enabled")
	purego.RegisterLibFunc(&l.connect, h, "chdb_connect")
	purego.RegisterLibFunc(&l.closeConn, h, "chdb_close_conn")
	purego.RegisterLibFunc(&l.queryN, h, "chdb_query_n")
	purego.RegisterLibFunc(&l.queryWithParamsN, h, "chdb_query_with_params_n")
	purego.RegisterLibFunc(&l.streamQueryN, h, "chdb_stream_query_n")
	purego.RegisterLibFunc(&l.streamQueryParamsN, h, "chdb_stream_query_with_params_n")
	purego.RegisterLibFunc(&l.streamFetch, h, "chdb_stream_fetch_result")
	purego.RegisterLibFunc(&l.streamCancel, h, "chdb_stream_cancel_query")
	purego.RegisterLibFunc(&l.destroyResult, h, "chdb_destroy_query_result")
	purego.RegisterLibFunc(&l.resultBuffer, h, "chdb_result_buffer")
	purego.RegisterLibFunc(&l.resultLength, h, "chdb_result_length")
	purego.RegisterLibFunc(&l.resultError, h, "chdb_result_error")
	purego.RegisterLibFunc(&l.resultRowsRead, h, "chdb_result_rows_read")
	purego.RegisterLibFunc(&l.resultRowsWritten, h, "chdb_result_rows_written")
	purego.RegisterLibFunc(&l.resultStorageRowRead, h, "chdb_result_storage_rows_read")
	purego.RegisterLibFunc(&l.insertStart, h, "chdb_stream_insert_n")
	purego.RegisterLibFunc(&l.insertError, h, "chdb_stream_insert_error")
	purego.RegisterLibFunc(&l.insertAppend, h, "chdb_stream_append")
	purego.RegisterLibFunc(&l.insertDone, h, "chdb_stream_done")
	purego.RegisterLibFunc(&l.insertDestroy, h, "chdb_destroy_insert_stream")
	return nil
}

// Path is the file the library was loaded from.
func (l *Lib) Path() string { return l.path }

// EngineVersion is the library's own version string.
func (l *Lib) EngineVersion() string { return l.version() }

// Conn is one connection to the engine. A connection runs one statement at
// a time; Conn serializes its callers.
type Conn struct {
	lib  *Lib
	mu   sync.Mutex
	pp   *uintptr // chdb_connection* as returned by chdb_connect
	conn uintptr  // *pp, the handle the query calls take
}

// EngineDir is the data directory of the running engine and the number of
// connections open on it ("", 0 when none is open).
func (l *Lib) EngineDir() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.enginePath, l.openConns
}

// Connect opens a connection on the data directory dir ("" keeps data in
// memory). extra are further engine arguments such as "--max_threads=2".
// All open connections of a process share one directory.
func (l *Lib) Connect(dir string, extra ...string) (*Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.openConns > 0 && dir != l.enginePath {
		return nil, fmt.Errorf("chdb: the engine is open on %q in this process; close it before opening %q", l.enginePath, dir)
	}
	argv := []string{"clickhouse"}
	if dir != "" {
		argv = append(argv, "--path="+dir)
	}
	argv = append(argv, extra...)
	cstrs := make([][]byte, len(argv))
	ptrs := make([]uintptr, len(argv)+1)
	for i, a := range argv {
		cstrs[i] = append([]byte(a), 0)
		ptrs[i] = uintptr(unsafe.Pointer(&cstrs[i][0]))
	}
	pp := l.connect(int32(len(argv)), unsafe.Pointer(&ptrs[0]))
	runtime.KeepAlive(cstrs)
	runtime.KeepAlive(ptrs)
	if pp == nil {
		return nil, errors.New("chdb: connect failed")
	}
	conn := *pp
	if conn == 0 {
		return nil, errors.New("chdb: connect returned no connection")
	}
	l.enginePath = dir
	l.openConns++
	return &Conn{lib: l, pp: pp, conn: conn}, nil
}

// Close closes the connection. Closing a process's last connection shuts
// the engine down.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pp == nil {
		return nil
	}
	c.lib.mu.Lock()
	c.lib.closeConn(c.pp)
	c.lib.openConns--
	c.lib.mu.Unlock()
	c.pp, c.conn = nil, 0
	return nil
}

// Param binds a {name:Type} placeholder. Value is the text form of the
// value; the placeholder's type parses it on the engine side.
type Param struct {
	Name  string
	Value string
}

// Error is an error reported by the engine for a statement.
type Error struct {
	Message string
}

func (e *Error) Error() string { return e.Message }

// Result is a fully buffered query result.
type Result struct {
	Data         []byte
	RowsRead     uint64
	RowsWritten  uint64
	StorageRowsR uint64
}

var errClosed = errors.New("chdb: connection closed")

const releaseQuery = "SELECT 1"

// Query runs a statement and returns its whole output in format. query may
// hold binary data (for example an INSERT … FORMAT Native with its rows).
func (c *Conn) Query(query []byte, format string, params []Param) (*Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == 0 {
		return nil, errClosed
	}
	var res uintptr
	if len(params) == 0 {
		res = c.lib.queryN(c.conn, bytesPtr(query), uintptr(len(query)), format, uintptr(len(format)))
	} else {
		p := packParams(params)
		res = c.lib.queryWithParamsN(c.conn, bytesPtr(query), uintptr(len(query)), format, uintptr(len(format)),
			p.names(), p.nameLens(), p.values(), p.valueLens(), uintptr(len(params)))
		runtime.KeepAlive(p)
	}
	runtime.KeepAlive(query)
	if res == 0 {
		return nil, errors.New("chdb: query returned no result")
	}
	defer c.lib.destroyResult(res)
	if err := c.lib.resultErr(res); err != nil {
		return nil, err
	}
	return &Result{
		Data:         c.lib.copyBuffer(res),
		RowsRead:     c.lib.resultRowsRead(res),
		RowsWritten:  c.lib.resultRowsWritten(res),
		StorageRowsR: c.lib.resultStorageRowRead(res),
	}, nil
}

// Insert runs an INSERT statement (without FORMAT or data) and feeds it
// chunks of data in format. Data travels apart from the statement text, so
// binary formats need no care about how the SQL parser treats the bytes
// after FORMAT. It returns the rows written, views included.
func (c *Conn) Insert(query, format string, chunks ...[]byte) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == 0 {
		return 0, errClosed
	}
	l := c.lib
	q := []byte(query)
	st := l.insertStart(c.conn, bytesPtr(q), uintptr(len(q)), format, uintptr(len(format)))
	runtime.KeepAlive(q)
	if st == 0 {
		return 0, errors.New("chdb: insert returned no stream")
	}
	defer l.insertDestroy(st)
	if msg := l.insertError(st); msg != "" {
		return 0, &Error{Message: msg}
	}
	for _, ch := range chunks {
		if len(ch) == 0 {
			continue
		}
		rc := l.insertAppend(st, unsafe.Pointer(&ch[0]), uintptr(len(ch)))
		runtime.KeepAlive(ch)
		if rc != 0 {
			if msg := l.insertError(st); msg != "" {
				return 0, &Error{Message: msg}
			}
			return 0, errors.New("chdb: insert append failed")
		}
	}
	res := l.insertDone(st)
	if res == 0 {
		if msg := l.insertError(st); msg != "" {
			return 0, &Error{Message: msg}
		}
		return 0, errors.New("chdb: insert finish returned no result")
	}
	defer l.destroyResult(res)
	if err := l.resultErr(res); err != nil {
		return 0, err
	}
	return l.resultRowsWritten(res), nil
}

func (l *Lib) resultErr(res uintptr) error {
	if msg := l.resultError(res); msg != "" {
		return &Error{Message: msg}
	}
	return nil
}

func (l *Lib) copyBuffer(res uintptr) []byte {
	n := l.resultLength(res)
	if n == 0 {
		return nil
	}
	buf := l.resultBuffer(res)
	if buf == nil {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(buf), n)...)
}

// Stream is a query whose output arrives in chunks. The connection runs
// nothing else until the stream is closed.
type Stream struct {
	c      *Conn
	res    uintptr
	ended  bool // the engine sent the end of the output
	failed bool
	closed bool
}

// StreamQuery starts a streaming query. The caller must Close the stream;
// the connection stays locked until then.
func (c *Conn) StreamQuery(query []byte, format string, params []Param) (*Stream, error) {
	c.mu.Lock()
	if c.conn == 0 {
		c.mu.Unlock()
		return nil, errClosed
	}
	var res uintptr
	if len(params) == 0 {
		res = c.lib.streamQueryN(c.conn, bytesPtr(query), uintptr(len(query)), format, uintptr(len(format)))
	} else {
		p := packParams(params)
		res = c.lib.streamQueryParamsN(c.conn, bytesPtr(query), uintptr(len(query)), format, uintptr(len(format)),
			p.names(), p.nameLens(), p.values(), p.valueLens(), uintptr(len(params)))
		runtime.KeepAlive(p)
	}
	runtime.KeepAlive(query)
	if res == 0 {
		c.mu.Unlock()
		return nil, errors.New("chdb: stream query returned no result")
	}
	if err := c.lib.resultErr(res); err != nil {
		c.lib.destroyResult(res)
		c.mu.Unlock()
		return nil, err
	}
	return &Stream{c: c, res: res}, nil
}

// Next returns the next chunk of output, or nil at the end of the stream.
func (s *Stream) Next() ([]byte, error) {
	if s.ended || s.failed || s.closed {
		return nil, nil
	}
	l := s.c.lib
	chunk := l.streamFetch(s.c.conn, s.res)
	if chunk == 0 {
		s.failed = true
		return nil, errors.New("chdb: stream fetch returned no result")
	}
	defer l.destroyResult(chunk)
	if err := l.resultErr(chunk); err != nil {
		s.failed = true
		return nil, err
	}
	data := l.copyBuffer(chunk)
	if len(data) == 0 {
		// An empty chunk ends the stream.
		s.ended = true
		return nil, nil
	}
	return data, nil
}

// Close ends the stream, cancelling the query when output remains, and
// releases the connection.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	// Cancelling after an error too releases what the failed pipeline
	// still holds (a DROP … SYNC would otherwise wait on it).
	if !s.ended {
		s.c.lib.streamCancel(s.c.conn, s.res)
	}
	s.c.lib.destroyResult(s.res)
	if !s.ended {
		// A stopped or failed stream keeps its query's hold on the tables
		// it read until the connection runs its next statement; run one
		// now so that a DROP … SYNC elsewhere does not wait on it.
		if r := s.c.lib.queryN(s.c.conn, unsafe.Pointer(unsafe.StringData(releaseQuery)), uintptr(len(releaseQuery)), "TSV", 3); r != 0 {
			s.c.lib.destroyResult(r)
		}
	}
	s.c.mu.Unlock()
	return nil
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return unsafe.Pointer(&zeroByte)
	}
	return unsafe.Pointer(&b[0])
}

var zeroByte byte

// packedParams keeps the name and value bytes reachable for the call.
type packedParams struct {
	bufs  [][]byte
	nptrs []uintptr
	nlens []uintptr
	vptrs []uintptr
	vlens []uintptr
}

func packParams(params []Param) *packedParams {
	p := &packedParams{
		nptrs: make([]uintptr, len(params)),
		nlens: make([]uintptr, len(params)),
		vptrs: make([]uintptr, len(params)),
		vlens: make([]uintptr, len(params)),
	}
	for i, prm := range params {
		n := append([]byte(prm.Name), 0)
		v := append([]byte(prm.Value), 0)
		p.bufs = append(p.bufs, n, v)
		p.nptrs[i] = uintptr(unsafe.Pointer(&n[0]))
		p.nlens[i] = uintptr(len(prm.Name))
		p.vptrs[i] = uintptr(unsafe.Pointer(&v[0]))
		p.vlens[i] = uintptr(len(prm.Value))
	}
	return p
}

func (p *packedParams) names() unsafe.Pointer     { return unsafe.Pointer(&p.nptrs[0]) }
func (p *packedParams) nameLens() unsafe.Pointer  { return unsafe.Pointer(&p.nlens[0]) }
func (p *packedParams) values() unsafe.Pointer    { return unsafe.Pointer(&p.vptrs[0]) }
func (p *packedParams) valueLens() unsafe.Pointer { return unsafe.Pointer(&p.vlens[0]) }
