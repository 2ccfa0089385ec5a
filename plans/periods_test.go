package plans

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBillingPeriodFollowsTheAnchor(t *testing.T) {
	d := func(y int, m time.Month, day, h int) time.Time { return time.Date(y, m, day, h, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		now        time.Time
		anchor     int
		start, end time.Time
	}{
		{d(2026, 11, 27, 10), 1, d(2026, 11, 1, 0), d(2026, 12, 1, 0)}, // calendar month
		{d(2026, 12, 31, 23), 0, d(2026, 12, 1, 0), d(2027, 1, 1, 0)},  // 0 is the default, 1
		{d(2028, 2, 15, 0), 31, d(2028, 1, 31, 0), d(2028, 2, 29, 0)},  // leap February: the 29th
		{d(2028, 2, 29, 0), 31, d(2028, 2, 29, 0), d(2028, 3, 31, 0)},  // the period starting on the 29th
		{d(2027, 2, 28, 5), 31, d(2027, 2, 28, 0), d(2027, 3, 31, 0)},  // common year: the 28th
		{d(2027, 4, 30, 0), 31, d(2027, 4, 30, 0), d(2027, 5, 31, 0)},  // April has 30 days
		{d(2027, 1, 10, 0), 15, d(2026, 12, 15, 0), d(2027, 1, 15, 0)}, // across a year
		{d(2027, 1, 15, 0), 15, d(2027, 1, 15, 0), d(2027, 2, 15, 0)},  // on the anchor
		{d(2028, 2, 29, 12), 30, d(2028, 2, 29, 0), d(2028, 3, 30, 0)}, // 30th in February
	} {
		s, e := BillingPeriod(c.now, c.anchor)
		require.Equal(t, c.start, s, "start for %s anchor %d", c.now, c.anchor)
		require.Equal(t, c.end, e, "end for %s anchor %d", c.now, c.anchor)
	}
}

func TestPeriodsGoBackFromNow(t *testing.T) {
	ps := Periods(time.Date(2028, 3, 10, 0, 0, 0, 0, time.UTC), 31, 3)
	d := func(m time.Month, day int) time.Time { return time.Date(2028, m, day, 0, 0, 0, 0, time.UTC) }
	require.Equal(t, [][2]time.Time{{d(2, 29), d(3, 31)}, {d(1, 31), d(2, 29)}, {time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC), d(1, 31)}}, ps)
}
