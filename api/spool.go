package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sync/semaphore"
)

// spool carries one export from the engine to its client through files,
// so that the engine writes at its own speed and its connection is free
// again long before a slow client has read everything. The writer (the
// engine's side) appends to segment files; the reader (the client's side)
// follows it, byte for byte as soon as they are written, and deletes each
// segment once read. Every byte on disk is paid for from a budget shared
// by all exports: when it is spent the writer waits for readers to free
// some, so the disk holds at most the budget whatever the clients do.
type spool struct {
	dir     string
	segSize int64
	budget  *semaphore.Weighted
	onDisk  func(delta int64) // bytes on disk went up or down

	mu   sync.Mutex
	cond sync.Cond
	segs []*segment // not yet deleted, oldest first
	next int        // number of the next segment file
	done bool       // the writer finished
	err  error      // why it stopped early

	w *os.File // the segment being written

	// reader state (one reader)
	rf  *os.File
	off int64
}

type segment struct {
	path   string
	size   int64 // bytes written (and paid for)
	sealed bool  // no more bytes come to this segment
}

func newSpool(dir string, segSize int64, budget *semaphore.Weighted, onDisk func(int64)) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("export spool: %w", err)
	}
	if onDisk == nil {
		onDisk = func(int64) {}
	}
	s := &spool{dir: dir, segSize: segSize, budget: budget, onDisk: onDisk}
	s.cond.L = &s.mu
	return s, nil
}

// writer returns the engine side of the spool; ctx bounds its waits for
// budget (the export's context: the client leaving ends them).
func (s *spool) writer(ctx context.Context) io.Writer { return spoolWriter{s, ctx} }

type spoolWriter struct {
	s   *spool
	ctx context.Context
}

func (w spoolWriter) Write(p []byte) (int, error) { return w.s.write(w.ctx, p) }

func (s *spool) write(ctx context.Context, p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		seg, err := s.current()
		if err != nil {
			return written, err
		}
		n := min(int64(len(p)), s.segSize-seg.size)
		if err := s.budget.Acquire(ctx, n); err != nil {
			return written, err
		}
		m, err := s.w.Write(p[:n])
		if m < int(n) {
			s.budget.Release(n - int64(m))
		}
		s.onDisk(int64(m))
		s.mu.Lock()
		seg.size += int64(m)
		s.cond.Broadcast()
		s.mu.Unlock()
		written += m
		p = p[m:]
		if err != nil {
			return written, fmt.Errorf("export spool: %w", err)
		}
	}
	return written, nil
}

// current is the segment to append to, opening a new one when the last
// is full.
func (s *spool) current() (*segment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.segs); n > 0 && !s.segs[n-1].sealed && s.segs[n-1].size < s.segSize {
		return s.segs[n-1], nil
	}
	if s.w != nil {
		s.w.Close()
		s.segs[len(s.segs)-1].sealed = true
		s.cond.Broadcast()
	}
	path := filepath.Join(s.dir, fmt.Sprintf("%06d", s.next))
	s.next++
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("export spool: %w", err)
	}
	s.w = f
	seg := &segment{path: path}
	s.segs = append(s.segs, seg)
	return seg, nil
}

// finish ends the writer's side: err nil means the export is complete.
func (s *spool) finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		s.w.Close()
		s.w = nil
		s.segs[len(s.segs)-1].sealed = true
	}
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
				err := s.err
				s.mu.Unlock()
				if err == nil {
					err = io.EOF
				}
				return 0, err
			}
			s.cond.Wait()
			continue
		}
		seg := s.segs[0]
		if avail := seg.size - s.off; avail > 0 {
			s.mu.Unlock()
			return s.readAt(seg, p[:min(int64(len(p)), avail)])
		}
		if !seg.sealed {
			s.cond.Wait()
			continue
		}
		// Read to its end: the segment goes, and so does its cost.
		s.segs = s.segs[1:]
		s.mu.Unlock()
		s.drop(seg)
		s.mu.Lock()
	}
}

func (s *spool) readAt(seg *segment, p []byte) (int, error) {
	if s.rf == nil || s.rf.Name() != seg.path {
		f, err := os.Open(seg.path)
		if err != nil {
			return 0, fmt.Errorf("export spool: %w", err)
		}
		s.rf = f
	}
	n, err := s.rf.ReadAt(p, s.off)
	s.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// drop deletes a segment the reader is done with and pays its bytes back.
func (s *spool) drop(seg *segment) {
	if s.rf != nil && s.rf.Name() == seg.path {
		s.rf.Close()
		s.rf = nil
	}
	s.off = 0
	os.Remove(seg.path)
	s.budget.Release(seg.size)
	s.onDisk(-seg.size)
}

// close deletes what is left, once the writer has stopped.
func (s *spool) close() {
	s.mu.Lock()
	segs := s.segs
	s.segs = nil
	s.mu.Unlock()
	for _, seg := range segs {
		s.drop(seg)
	}
	os.Remove(s.dir)
}
