package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// spool carries one export from the engine to its client, so that the
// engine writes at its own speed and its connection is free again long
// before a slow client has read everything. The writer (the engine's
// side) appends segments; the reader (the client's side) follows it, each
// byte as soon as it is written, and drops each segment once read.
//
// A segment is kept in memory while the reader keeps up — a little per
// export, from a memory budget shared by all exports; the writer waits
// for a reader that drains it as fast as it fills — and otherwise, once
// the reader has fallen behind, in a file under the spool's directory,
// paid for from a disk budget shared by all exports. When the disk budget is spent the writer waits for readers
// to free some, so the spool never holds more than the two budgets,
// whatever the clients do; a fast client's export never touches the disk.
type spool struct {
	dir     string
	segSize int64 // a file segment's size
	disk    *semaphore.Weighted
	mem     *semaphore.Weighted // nil: files only
	memMax  int64               // bytes this export may hold in memory
	onDisk  func(delta int64)   // bytes on disk went up or down

	mu    sync.Mutex
	cond  sync.Cond
	freed chan struct{} // a memory segment was read (the writer may wait for one)
	segs  []*segment    // not yet dropped, oldest first
	inMem int64         // bytes held in memory segments
	// spilled: the reader fell behind and the export went to files; it
	// stays there (memory freed by the reader would otherwise cut the
	// files into slivers).
	spilled bool
	next    int   // number of the next segment file
	done    bool  // the writer finished
	err     error // why it stopped early

	w *os.File // the file segment being written

	// reader state (one reader)
	rf  *os.File
	off int64
}

type segment struct {
	path   string // a file segment's, "" for memory
	buf    []byte // a memory segment's bytes (capacity fixed at creation)
	size   int64  // bytes written (and paid for)
	sealed bool   // no more bytes come to this segment
}

// memSegment is a memory segment's capacity.
const memSegment = 256 << 10

// memBuffers recycles memory segments: a fast export passes gigabytes
// through a few of them.
var memBuffers = sync.Pool{New: func() any { return new([memSegment]byte) }}

func newSpool(dir string, segSize int64, disk, mem *semaphore.Weighted, memMax int64, onDisk func(int64)) *spool {
	if onDisk == nil {
		onDisk = func(int64) {}
	}
	s := &spool{dir: dir, segSize: segSize, disk: disk, mem: mem, memMax: memMax, onDisk: onDisk, freed: make(chan struct{}, 1)}
	s.cond.L = &s.mu
	return s
}

// writer returns the engine side of the spool; ctx bounds its waits for
// disk budget (the export's context: the client leaving ends them).
func (s *spool) writer(ctx context.Context) io.Writer { return spoolWriter{s, ctx} }

type spoolWriter struct {
	s   *spool
	ctx context.Context
}

func (w spoolWriter) Write(p []byte) (int, error) { return w.s.write(w.ctx, p) }

func (s *spool) write(ctx context.Context, p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n, err := s.writeMemory(ctx, p)
		if err != nil {
			return written, err
		}
		if n == 0 {
			var err error
			if n, err = s.writeFile(ctx, p); err != nil {
				return written + n, err
			}
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// writeMemory puts the start of p in a memory segment if this export and
// the shared budget have room; it returns how much it took (0: none, the
// export goes to files). When this export's share is full it waits for
// the reader — a client that keeps up frees it within milliseconds — but
// no longer than spillAfter without the reader freeing any.
func (s *spool) writeMemory(ctx context.Context, p []byte) (int, error) {
	if s.mem == nil {
		return 0, nil
	}
	for {
		n, full := s.tryMemory(p)
		if !full {
			return n, nil
		}
		t := time.NewTimer(spillAfter)
		select {
		case <-s.freed:
			t.Stop()
		case <-t.C:
			s.mu.Lock()
			s.spilled = true // the reader fell behind
			s.mu.Unlock()
			return 0, nil
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		}
	}
}

// spillAfter is how long a writer whose memory share is full waits for
// its reader before the export goes to files.
const spillAfter = 50 * time.Millisecond

// tryMemory copies what fits of p into memory; full says the export's own
// share is used up (worth waiting for the reader), as opposed to the
// shared budget being spent (go to files now).
func (s *spool) tryMemory(p []byte) (n int, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spilled {
		return 0, false
	}
	if s.inMem >= s.memMax {
		return 0, true
	}
	var seg *segment
	if n := len(s.segs); n > 0 && s.segs[n-1].path == "" && !s.segs[n-1].sealed && s.segs[n-1].size < memSegment {
		seg = s.segs[n-1]
	}
	room := int64(memSegment)
	if seg != nil {
		room -= seg.size
	}
	m := min(int64(len(p)), room, s.memMax-s.inMem)
	if !s.mem.TryAcquire(m) {
		return 0, false
	}
	if seg == nil {
		seg = &segment{buf: memBuffers.Get().(*[memSegment]byte)[:]}
		s.push(seg)
	}
	// The reader reads only below seg.size: the bytes past it are the
	// writer's until size moves.
	copy(seg.buf[seg.size:], p[:m])
	seg.size += m
	s.inMem += m
	s.cond.Broadcast()
	return int(m), false
}

// writeFile appends the start of p to a file segment, waiting for disk
// budget; it returns how much it wrote.
func (s *spool) writeFile(ctx context.Context, p []byte) (int, error) {
	seg, err := s.fileSegment()
	if err != nil {
		return 0, err
	}
	n := min(int64(len(p)), s.segSize-seg.size)
	if err := s.disk.Acquire(ctx, n); err != nil {
		return 0, err
	}
	m, err := s.w.Write(p[:n])
	if m < int(n) {
		s.disk.Release(n - int64(m))
	}
	s.onDisk(int64(m))
	s.mu.Lock()
	seg.size += int64(m)
	s.cond.Broadcast()
	s.mu.Unlock()
	if err != nil {
		return m, fmt.Errorf("export spool: %w", err)
	}
	return m, nil
}

// fileSegment is the file segment to append to, opening a new one when
// the last segment is full, sealed or in memory.
func (s *spool) fileSegment() (*segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.segs); n > 0 && s.segs[n-1].path != "" && !s.segs[n-1].sealed && s.segs[n-1].size < s.segSize {
		return s.segs[n-1], nil
	}
	s.spilled = true
	if s.next == 0 {
		if err := os.MkdirAll(s.dir, 0o700); err != nil {
			return nil, fmt.Errorf("export spool: %w", err)
		}
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%06d", s.next))
	s.next++
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("export spool: %w", err)
	}
	seg := &segment{path: path}
	s.push(seg)
	s.w = f
	return seg, nil
}

// push ends the last segment (nothing more is written to it) and starts
// seg after it. Called with mu.
func (s *spool) push(seg *segment) {
	s.seal()
	s.segs = append(s.segs, seg)
}

// seal ends the last segment, closing its file if it has one. Called with
// mu.
func (s *spool) seal() {
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	if n := len(s.segs); n > 0 {
		s.segs[n-1].sealed = true
	}
	s.cond.Broadcast()
}

// buffered is how much is written and not yet read.
func (s *spool) buffered() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, seg := range s.segs {
		n += seg.size
	}
	return n - s.off
}

// finish ends the writer's side: err nil means the export is complete.
func (s *spool) finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seal()
	s.done, s.err = true, err
	s.cond.Broadcast()
}

// Read is the client's side: it returns bytes as soon as the writer has
// written them, io.EOF after the last, or the writer's error.
func (s *spool) Read(p []byte) (int, error) {
	s.mu.Lock()
	for {
		if s.done && s.err != nil { // a failed export: the client gets no more
			err := s.err
			s.mu.Unlock()
			return 0, err
		}
		if len(s.segs) == 0 {
			if s.done {
				s.mu.Unlock()
				return 0, io.EOF
			}
			s.cond.Wait()
			continue
		}
		seg := s.segs[0]
		if avail := seg.size - s.off; avail > 0 {
			want := min(int64(len(p)), avail)
			if seg.path == "" {
				n := copy(p[:want], seg.buf[s.off:])
				s.off += int64(n)
				s.mu.Unlock()
				return n, nil
			}
			s.mu.Unlock()
			return s.readFile(seg, p[:want])
		}
		if !seg.sealed {
			s.cond.Wait()
			continue
		}
		// Read to its end: the segment goes, and so does its cost.
		s.segs = s.segs[1:]
		s.drop(seg)
	}
}

func (s *spool) readFile(seg *segment, p []byte) (int, error) {
	if s.rf == nil || s.rf.Name() != seg.path {
		f, err := os.Open(seg.path)
		if err != nil {
			return 0, fmt.Errorf("export spool: %w", err)
		}
		s.rf = f
	}
	n, err := s.rf.ReadAt(p, s.off)
	s.mu.Lock()
	s.off += int64(n)
	s.mu.Unlock()
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// drop deletes a segment the reader is done with (or nobody will read)
// and pays its bytes back. Called with mu.
func (s *spool) drop(seg *segment) {
	s.off = 0
	if seg.path == "" {
		s.inMem -= seg.size
		s.mem.Release(seg.size)
		memBuffers.Put((*[memSegment]byte)(seg.buf))
		seg.buf = nil
		select {
		case s.freed <- struct{}{}:
		default:
		}
		return
	}
	if s.rf != nil && s.rf.Name() == seg.path {
		s.rf.Close()
		s.rf = nil
	}
	os.Remove(seg.path)
	s.disk.Release(seg.size)
	s.onDisk(-seg.size)
}

// close deletes what is left, once the writer has stopped.
func (s *spool) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		s.drop(seg)
	}
	s.segs = nil
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	os.Remove(s.dir)
}
