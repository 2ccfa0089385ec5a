package ingest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// A field named in ms holds milliseconds (it held nanoseconds once).
func TestLastLoadIsInMilliseconds(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry())
	now := time.Now()
	m.loaded(&Batch{}, 1500*time.Millisecond+250*time.Microsecond, now)
	require.Equal(t, 1500.25, m.snapshot(now).LastLoadMs)
}
