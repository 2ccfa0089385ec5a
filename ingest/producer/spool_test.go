package producer

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func entries(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, []byte(fmt.Sprintf(`{"id":"%d","pad":"%0100d"}`, i, i)))
	}
	return out
}

func drainAll(t *testing.T, s *spool, batch int) []string {
	t.Helper()
	var got []string
	for {
		es, pos, err := s.Peek(batch)
		require.NoError(t, err)
		if len(es) == 0 {
			return got
		}
		for _, e := range es {
			got = append(got, string(e))
		}
		require.NoError(t, s.Ack(pos, len(es)))
	}
}

func TestSpoolKeepsOrderAcrossSegmentsAndRestarts(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 4<<20) // 1 MiB segments
	require.NoError(t, err)
	n, err := s.Append(entries(0, 15000)...)
	require.NoError(t, err)
	require.Equal(t, 15000, n)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	require.Greater(t, len(segs), 1, "the spool rolled segments")

	// Consume some, then "restart".
	es, pos, err := s.Peek(4000)
	require.NoError(t, err)
	require.Len(t, es, 4000)
	require.NoError(t, s.Ack(pos, len(es)))
	require.NoError(t, s.Close())

	s, err = openSpool(dir, 4<<20)
	require.NoError(t, err)
	require.Equal(t, 11000, s.Len())
	_, err = s.Append(entries(15000, 16000)...)
	require.NoError(t, err)
	got := drainAll(t, s, 777)
	want := entries(4000, 16000)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, string(want[i]), got[i])
	}
	require.Zero(t, s.Len())
	require.NoError(t, s.Close())
	segs, _ = filepath.Glob(filepath.Join(dir, "*.spool"))
	require.Len(t, segs, 1, "consumed segments are removed")
}

func TestSpoolRepairsTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := openSpool(dir, 1<<30)
	require.NoError(t, err)
	_, err = s.Append(entries(0, 10)...)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	segs, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	f.Write([]byte{200, 0, 0, 0, 1, 2}) // a frame cut short by a crash
	f.Close()

	s, err = openSpool(dir, 1<<30)
	require.NoError(t, err)
	require.Equal(t, 10, s.Len())
	_, err = s.Append(entries(10, 12)...)
	require.NoError(t, err)
	got := drainAll(t, s, 100)
	require.Len(t, got, 12)
	require.Equal(t, string(entries(11, 12)[0]), got[11])
}

func TestSpoolIsBounded(t *testing.T) {
	s, err := openSpool(t.TempDir(), 64<<10)
	require.NoError(t, err)
	n, err := s.Append(entries(0, 10000)...)
	require.ErrorIs(t, err, errSpoolFull)
	require.Greater(t, n, 100)
	require.Less(t, n, 10000)
	require.Equal(t, n, s.Len())
	// Room comes back once entries are sent.
	drainAll(t, s, 1000)
	_, err = s.Append(entries(0, 10)...)
	require.NoError(t, err)
}
