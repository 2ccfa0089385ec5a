package sla

import (
	"fmt"
	"time"

	"github.com/apimeter/apimeter/schema"
)

// Month is a calendar month; its days are those of a time zone.
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth reads YYYY-MM, in the years the store holds (schema.FirstYear
// to schema.LastYear).
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != len("2006-01") {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM, such as 2026-11", s)
	}
	if !schema.InDateSpan(t) {
		return Month{}, fmt.Errorf("month %q: out of range: months go from %d-01 to %d-12", s, schema.FirstYear, schema.LastYear)
	}
	return Month{t.Year(), t.Month()}, nil
}

// MonthOf is the month t falls in, in loc.
func MonthOf(t time.Time, loc *time.Location) Month {
	l := t.In(loc)
	return Month{l.Year(), l.Month()}
}

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Range is the month in loc: from its first midnight to the next month's.
func (m Month) Range(loc *time.Location) (start, end time.Time) {
	start = time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
	return start, start.AddDate(0, 1, 0)
}

// Next is the month after m.
func (m Month) Next() Month {
	t := time.Date(m.Year, m.Month+1, 1, 0, 0, 0, 0, time.UTC)
	return Month{t.Year(), t.Month()}
}

// Before says m comes before o.
func (m Month) Before(o Month) bool {
	return m.Year < o.Year || m.Year == o.Year && m.Month < o.Month
}
