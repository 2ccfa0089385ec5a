package producer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// spool is a bounded, ordered, on-disk queue of encoded records: segment
// files of length- and checksum-framed entries, and a cursor file naming
// the first entry not yet sent. Appends go to the last segment; sending
// reads from the cursor. A torn entry at the end (a crash mid-append) is
// cut off when the spool is opened.
type spool struct {
	dir      string
	maxBytes int64
	segBytes int64

	mu      sync.Mutex
	segs    []int64 // segment numbers, oldest first
	size    int64   // bytes on disk in all segments
	w       *os.File
	wbuf    *bufio.Writer
	wsize   int64 // bytes in the last segment
	cursor  position
	pending int // entries not yet acknowledged
}

// position is an entry's place: segment number and byte offset.
type position struct {
	seg int64
	off int64
}

var errSpoolFull = errors.New("producer: spool full")

const (
	segSuffix  = ".spool"
	cursorFile = "cursor"
	frameHead  = 8 // uint32 length, uint32 CRC-32C
	maxEntry   = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("producer: spool: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: min(16<<20, max(maxBytes/4, 1<<20))}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), segSuffix); ok {
			if seg, err := strconv.ParseInt(n, 10, 64); err == nil {
				s.segs = append(s.segs, seg)
			}
		}
	}
	sort.Slice(s.segs, func(i, j int) bool { return s.segs[i] < s.segs[j] })
	if err := s.readCursor(); err != nil {
		return nil, err
	}
	// Count what is left, repairing a torn tail, and drop segments the
	// cursor has passed.
	kept := s.segs[:0]
	for i, seg := range s.segs {
		if seg < s.cursor.seg {
			os.Remove(s.segPath(seg))
			continue
		}
		start := int64(0)
		if seg == s.cursor.seg {
			start = s.cursor.off
		}
		n, end, err := s.scan(seg, start)
		if err != nil {
			return nil, err
		}
		if i == len(s.segs)-1 {
			if err := os.Truncate(s.segPath(seg), end); err != nil {
				return nil, err
			}
		}
		st, err := os.Stat(s.segPath(seg))
		if err != nil {
			return nil, err
		}
		s.size += st.Size()
		s.pending += n
		kept = append(kept, seg)
	}
	s.segs = kept
	if len(s.segs) == 0 {
		s.segs = []int64{max(s.cursor.seg, 1)}
		s.cursor = position{seg: s.segs[0]}
	}
	if s.cursor.seg < s.segs[0] {
		s.cursor = position{seg: s.segs[0]}
	}
	return s, s.openWriter()
}

func (s *spool) segPath(seg int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%012d%s", seg, segSuffix))
}

func (s *spool) readCursor() error {
	b, err := os.ReadFile(filepath.Join(s.dir, cursorFile))
	if errors.Is(err, os.ErrNotExist) {
		if len(s.segs) > 0 {
			s.cursor = position{seg: s.segs[0]}
		}
		return nil
	}
	if err != nil {
		return err
	}
	var p position
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d %d", &p.seg, &p.off); err != nil {
		return fmt.Errorf("producer: spool cursor %q: %w", b, err)
	}
	s.cursor = p
	return nil
}

func (s *spool) writeCursor() error {
	tmp := filepath.Join(s.dir, cursorFile+".tmp")
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %d\n", s.cursor.seg, s.cursor.off)), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir, cursorFile))
}

// scan counts the whole entries of a segment from start and returns where
// the last one ends.
func (s *spool) scan(seg, start int64) (n int, end int64, err error) {
	f, err := os.Open(s.segPath(seg))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(f, 1<<16)
	end = start
	for {
		data, err := readFrame(r)
		if err != nil {
			return n, end, nil // EOF or a torn entry: the valid part ends here
		}
		n++
		end += frameHead + int64(len(data))
	}
}

func readFrame(r io.Reader) ([]byte, error) {
	var head [frameHead]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(head[:4])
	if n > maxEntry {
		return nil, errors.New("producer: spool entry too large")
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
		return nil, errors.New("producer: spool entry checksum mismatch")
	}
	return data, nil
}

func (s *spool) openWriter() error {
	last := s.segs[len(s.segs)-1]
	f, err := os.OpenFile(s.segPath(last), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	s.w, s.wbuf, s.wsize = f, bufio.NewWriterSize(f, 1<<16), st.Size()
	return nil
}

// Append adds entries at the end; it refuses (errSpoolFull) the entries
// that do not fit in maxBytes.
func (s *spool) Append(entries ...[]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range entries {
		size := int64(frameHead + len(e))
		if len(e) > maxEntry || s.size+size > s.maxBytes {
			return i, errSpoolFull
		}
		if s.wsize+size > s.segBytes && s.wsize > 0 {
			if err := s.roll(); err != nil {
				return i, err
			}
		}
		var head [frameHead]byte
		binary.LittleEndian.PutUint32(head[:4], uint32(len(e)))
		binary.LittleEndian.PutUint32(head[4:], crc32.Checksum(e, castagnoli))
		s.wbuf.Write(head[:])
		if _, err := s.wbuf.Write(e); err != nil {
			return i, err
		}
		s.wsize += size
		s.size += size
		s.pending++
	}
	return len(entries), s.wbuf.Flush()
}

func (s *spool) roll() error {
	if err := s.wbuf.Flush(); err != nil {
		return err
	}
	if err := s.w.Close(); err != nil {
		return err
	}
	s.segs = append(s.segs, s.segs[len(s.segs)-1]+1)
	return s.openWriter()
}

// Len is the number of entries waiting.
func (s *spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Peek reads up to n entries from the cursor without consuming them; it
// returns them and the position after the last one.
func (s *spool) Peek(n int) ([][]byte, position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.wbuf.Flush(); err != nil {
		return nil, s.cursor, err
	}
	var out [][]byte
	pos := s.cursor
	for len(out) < n {
		f, err := os.Open(s.segPath(pos.seg))
		if err != nil {
			return out, pos, err
		}
		if _, err := f.Seek(pos.off, io.SeekStart); err != nil {
			f.Close()
			return out, pos, err
		}
		r := bufio.NewReaderSize(f, 1<<16)
		for len(out) < n {
			data, err := readFrame(r)
			if err != nil {
				break
			}
			out = append(out, data)
			pos.off += frameHead + int64(len(data))
		}
		f.Close()
		if len(out) == n || pos.seg == s.segs[len(s.segs)-1] {
			break
		}
		pos = position{seg: pos.seg + 1}
	}
	return out, pos, nil
}

// Ack consumes the entries up to pos (what Peek returned), count of them.
func (s *spool) Ack(pos position, count int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = pos
	s.pending -= count
	if err := s.writeCursor(); err != nil {
		return err
	}
	// Remove the segments left behind.
	for len(s.segs) > 1 && s.segs[0] < s.cursor.seg {
		st, err := os.Stat(s.segPath(s.segs[0]))
		if err == nil {
			s.size -= st.Size()
		}
		os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
	}
	// An emptied spool starts over in a fresh segment.
	if s.pending == 0 && s.cursor.seg == s.segs[len(s.segs)-1] && s.cursor.off == s.wsize && s.wsize > 0 {
		if err := s.roll(); err != nil {
			return err
		}
		st, err := os.Stat(s.segPath(s.segs[0]))
		if err == nil {
			s.size -= st.Size()
		}
		os.Remove(s.segPath(s.segs[0]))
		s.segs = s.segs[1:]
		s.cursor = position{seg: s.segs[0]}
		return s.writeCursor()
	}
	return nil
}

// Sync makes appended entries durable.
func (s *spool) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.wbuf.Flush(); err != nil {
		return err
	}
	return s.w.Sync()
}

func (s *spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.wbuf.Flush()
	return errors.Join(err, s.w.Sync(), s.w.Close())
}
