package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/semaphore"
)

// dirBytes is what a directory's files hold.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

func TestSpoolCarriesEveryByteWithinItsBudget(t *testing.T) {
	const budget, seg = 4 << 20, 1 << 20
	sem := semaphore.NewWeighted(budget)
	dir := filepath.Join(t.TempDir(), "x")
	var onDisk int64
	var mu sync.Mutex
	sp := newSpool(dir, seg, sem, nil, 0, func(d int64) { mu.Lock(); onDisk += d; mu.Unlock() })

	data := make([]byte, 23<<20+12345) // not a whole number of segments
	rand.Read(data)
	go func() {
		w := sp.writer(context.Background())
		for p := data; len(p) > 0; {
			n := min(len(p), 300_001)
			if _, err := w.Write(p[:n]); err != nil {
				sp.finish(err)
				return
			}
			p = p[n:]
		}
		sp.finish(nil)
	}()
	// A slow reader: the writer runs ahead until the budget is spent,
	// and the files never hold more than the budget.
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	maxOnDisk := int64(0)
	for {
		n, err := sp.Read(buf)
		got.Write(buf[:n])
		maxOnDisk = max(maxOnDisk, dirBytes(t, dir))
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if got.Len()%(4<<20) < len(buf) {
			time.Sleep(5 * time.Millisecond) // let the writer fill the budget
		}
	}
	require.True(t, bytes.Equal(data, got.Bytes()), "the reader got exactly what was written")
	require.LessOrEqual(t, maxOnDisk, int64(budget))
	require.Greater(t, maxOnDisk, int64(budget/2), "the writer ran ahead of the reader")
	sp.close()
	_, err := os.Stat(dir)
	require.True(t, os.IsNotExist(err), "the spool's directory is gone")
	require.True(t, sem.TryAcquire(budget), "every byte of the budget came back")
	require.Zero(t, onDisk)
}

func TestSpoolWriterStopsWhenTheReaderLeaves(t *testing.T) {
	const budget = 2 << 20
	sem := semaphore.NewWeighted(budget)
	dir := filepath.Join(t.TempDir(), "x")
	sp := newSpool(dir, 1<<20, sem, nil, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() {
		w := sp.writer(ctx)
		chunk := make([]byte, 100_000)
		for {
			if _, err := w.Write(chunk); err != nil {
				sp.finish(err)
				stopped <- err
				return
			}
		}
	}()
	// Nobody reads: the writer spends the budget and waits.
	require.Eventually(t, func() bool { return dirBytes(t, dir) == budget }, 10*time.Second, time.Millisecond)
	select {
	case err := <-stopped:
		t.Fatalf("the writer stopped on its own: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel() // the client left
	require.ErrorIs(t, <-stopped, context.Canceled)
	_, err := sp.Read(make([]byte, 10))
	require.ErrorIs(t, err, context.Canceled, "the reader learns why the export stopped")
	sp.close()
	require.True(t, sem.TryAcquire(budget), "the budget is whole again")
}

func TestSpoolEmptyExport(t *testing.T) {
	sp := newSpool(filepath.Join(t.TempDir(), "x"), 1<<20, semaphore.NewWeighted(1<<20), semaphore.NewWeighted(1<<20), 1<<20, nil)
	sp.finish(nil)
	n, err := sp.Read(make([]byte, 10))
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF)
	sp.close()
}

// A reader that keeps up gets everything from memory: no file is made.
// One that falls behind spills to files past its memory share. Both get
// every byte, and both budgets come back whole.
func TestSpoolKeepsUpInMemoryAndSpillsWhenBehind(t *testing.T) {
	for _, slow := range []bool{false, true} {
		disk, mem := semaphore.NewWeighted(64<<20), semaphore.NewWeighted(2<<20)
		dir := filepath.Join(t.TempDir(), "x")
		sp := newSpool(dir, 1<<20, disk, mem, 1<<20, nil)
		data := make([]byte, 9<<20+777)
		rand.Read(data)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			w := sp.writer(context.Background())
			for p := data; len(p) > 0; {
				n := min(len(p), 100_000)
				if !slow {
					// The engine's pace: the reader keeps up.
					for sp.buffered() > 512<<10 {
						time.Sleep(time.Millisecond)
					}
				}
				w.Write(p[:n])
				p = p[n:]
			}
			sp.finish(nil)
		}()
		if slow {
			<-wrote // the reader starts once everything is written
		}
		got, err := io.ReadAll(sp)
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, got))
		<-wrote
		sp.close()
		if slow {
			require.Greater(t, sp.next, 0, "a slow reader's export went to files")
		} else {
			require.Zero(t, sp.next, "a reader that keeps up never makes a file")
		}
		require.True(t, mem.TryAcquire(2<<20), "the memory budget is whole")
		require.True(t, disk.TryAcquire(64<<20), "the disk budget is whole")
	}
}
