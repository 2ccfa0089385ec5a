package chdb

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMissingLibraryNamesTheFix(t *testing.T) {
	_, err := Load("/nonexistent/libchdb.so")
	require.ErrorIs(t, err, ErrLibraryMissing)
	require.Contains(t, err.Error(), "make deps")
	require.Contains(t, err.Error(), "CHDB_LIB_PATH")
}

func TestLibraryPathFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CHDB_LIB_PATH", dir)
	require.Equal(t, dir+"/libchdb.so", LibraryPath())
	t.Setenv("CHDB_LIB_PATH", "")
	t.Setenv("APIMETER_CACHE_DIR", "/c")
	require.Equal(t, "/c/chdb/"+Version+"/libchdb.so", LibraryPath())
}

func TestConnQueryStreamInsert(t *testing.T) {
	l, err := Load("")
	require.NoError(t, err)
	dir := t.TempDir()
	c, err := l.Connect(dir)
	require.NoError(t, err)
	defer c.Close()

	// One engine directory per process.
	_, err = l.Connect(t.TempDir())
	require.ErrorContains(t, err, "close it before opening")

	res, err := c.Query([]byte("SELECT {a:UInt8} + 1"), "TSV", []Param{{Name: "a", Value: "41"}})
	require.NoError(t, err)
	require.Equal(t, "42\n", string(res.Data))

	_, err = c.Query([]byte("SELECT nope"), "TSV", nil)
	var ce *Error
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Contains(t, ce.Message, "Code: 47")

	_, err = c.Query([]byte("CREATE TABLE t (a UInt32, s String) ENGINE = MergeTree ORDER BY a"), "TSV", nil)
	require.NoError(t, err)
	n, err := c.Insert("INSERT INTO t", "CSV", []byte("1,x\n2,y\n"), []byte("3,\"z,\"\n"))
	require.NoError(t, err)
	require.Equal(t, uint64(3), n)
	_, err = c.Insert("INSERT INTO t", "CSV", []byte("not-a-number,x\n"))
	require.Error(t, err)

	s, err := c.StreamQuery([]byte("SELECT number FROM numbers(10000000)"), "TSV", nil)
	require.NoError(t, err)
	chunk, err := s.Next()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(chunk), "0\n1\n"))
	require.NoError(t, s.Close()) // cancels the rest

	res, err = c.Query([]byte("SELECT sum(a), groupArray(s) FROM t"), "TSV", nil)
	require.NoError(t, err)
	require.Equal(t, "6\t['x','y','z,']\n", string(res.Data))
}
