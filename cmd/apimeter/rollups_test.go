package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// --from and --to name dates the rollups can hold (1970-01-01 to
// 2105-12-31); others are a usage error before any store is opened.
func TestRollupsRebuildRefusesDatesTheStoreCannotHold(t *testing.T) {
	// A store that cannot be reached: reaching it would be a different error.
	t.Setenv("CLICKHOUSE_URL", "clickhouse://127.0.0.1:1/none")
	for _, c := range []struct{ from, to, flag string }{
		{"1969-12-31", "2026-01-01", "--from"},
		{"1900-01-01T00:00:00Z", "2026-01-01", "--from"},
		{"2026-01-01", "9999-12-31", "--to"},
		{"2026-01-01", "2106-01-01T00:00:00Z", "--to"},
	} {
		var stdout, stderr bytes.Buffer
		err := dispatch(context.Background(), []string{"rollups", "rebuild", "--from", c.from, "--to", c.to, "--force"}, &stdout, &stderr)
		require.Equal(t, exitCode(2), err, "%+v: %s", c, stderr.String())
		require.Contains(t, stderr.String(), c.flag, "%+v", c)
		require.Contains(t, stderr.String(), "1970-01-01 to 2105-12-31", "%+v", c)
	}
}

// generate writes records straight into the store: its traffic must lie
// in the span the rollups hold too.
func TestGenerateRefusesTrafficTheStoreCannotHold(t *testing.T) {
	t.Setenv("CLICKHOUSE_URL", "clickhouse://127.0.0.1:1/none")
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--end", "9999-01-01T00:00:00Z"}, "--end"},
		{[]string{"--end", "2106-01-01T00:00:00Z", "--days", "1"}, "--end"},
		{[]string{"--end", "1970-01-03T00:00:00Z", "--days", "7"}, "--days"},
	} {
		var stdout, stderr bytes.Buffer
		err := dispatch(context.Background(), append([]string{"generate"}, c.args...), &stdout, &stderr)
		require.Equal(t, exitCode(2), err, "%v: %s", c.args, stderr.String())
		require.Contains(t, stderr.String(), c.flag, "%v", c.args)
		require.Contains(t, stderr.String(), "1970-01-01 to 2105-12-31", "%v", c.args)
	}
}
