package query

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Past the last year of the zone tables, Go's ZoneBounds answers the last
// day of a leap year with an end that does not lie ahead; walking a zone's
// offsets must still end (it once looped forever on such ranges).
func TestZoneWalksEndPastTheTables(t *testing.T) {
	for _, c := range []struct {
		zone      string
		wholeHour bool // every offset a whole number of hours
	}{
		{"Europe/Berlin", true}, {"America/New_York", true}, {"Australia/Sydney", true}, {"Australia/Adelaide", false}, {"UTC", true},
	} {
		loc, err := time.LoadLocation(c.zone)
		require.NoError(t, err)
		for _, year := range []int{2040, 2104} {
			r := Range{Start: time.Date(year, 12, 1, 0, 0, 0, 0, loc), End: time.Date(year+1, 2, 1, 0, 0, 0, 0, loc), Loc: loc}
			done := make(chan [2]bool, 1)
			go func() { done <- [2]bool{offsetsMultipleOf(r, time.Hour), fixedOffset(r, 0)} }()
			select {
			case got := <-done:
				require.Equal(t, c.wholeHour, got[0], "%s %d", c.zone, year)
				require.Equal(t, c.zone == "UTC", got[1], "%s %d", c.zone, year)
			case <-time.After(30 * time.Second):
				t.Fatalf("%s %d: the walk over the zone's offsets did not end", c.zone, year)
			}
		}
	}
}

// A range too long for a time.Duration is refused with its span and the
// cap in days.
func TestRangeCapSaysDays(t *testing.T) {
	s := New(nil, Limits{})
	for _, c := range []struct{ start, end time.Time }{
		{time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 2, 5, 12, 0, 0, 0, time.UTC)},
	} {
		secs := c.end.Unix() - c.start.Unix()
		want := fmt.Sprint(secs / 86400)
		if secs%86400 != 0 {
			want = fmt.Sprintf("%d.5", secs/86400) // the second case ends at noon
		}
		_, err := s.Series(context.Background(), SeriesRequest{Range: Range{Start: c.start, End: c.end, Loc: time.UTC}, Granularity: GrainMonth})
		require.True(t, IsInvalid(err), "%v", err)
		require.Equal(t, "the range spans "+want+" days: at most 400 days", err.Error())
		require.False(t, strings.Contains(err.Error(), "h"+"0m"))
	}
}
