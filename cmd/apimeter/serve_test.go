package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/auth"
)

// apimeter's own calls are recorded under "tenant:user": the id must
// pass the name rule the ingester applies, however long its parts are.
func TestOwnUsageNamesPassTheNameRule(t *testing.T) {
	short := shortName("acme:alice")
	require.Equal(t, "acme:alice", short)
	long := shortName(strings.Repeat("t", 128) + ":" + strings.Repeat("ü", 100))
	require.True(t, auth.ValidName(long), "%q", long)
	other := shortName(strings.Repeat("t", 128) + ":" + strings.Repeat("ü", 99) + "x")
	require.NotEqual(t, long, other, "long ids stay apart")
	require.True(t, strings.HasPrefix(long, strings.Repeat("t", 100)))
}
