package schema

import (
	"fmt"
	"time"
)

// The years of the dates apimeter accepts wherever a request, a key or a
// command names a time. Rollup buckets are DateTime('UTC') (1970-01-01 to
// 2106-02-07 06:28:15); raw times and every query parameter are
// DateTime64(3, 'UTC') (1900 to 2299). Ending with 2105 leaves room for a
// time zone's offset (under a day) and for the month and a day a billing
// export reads beyond its range: the instants a query is given stay inside
// DateTime64 and before the last DateTime bucket, and reach before 1970
// by at most a zone's offset, where no bucket can be.
const (
	FirstYear = 1970
	LastYear  = 2105
)

// DateSpan says the accepted span in messages and documents.
var DateSpan = fmt.Sprintf("%d-01-01 to %d-12-31", FirstYear, LastYear)

// InDateSpan reports whether t's date, in t's own location (the request's
// time zone for a date, the offset written for an RFC 3339 time), falls in
// the accepted years.
func InDateSpan(t time.Time) bool {
	return t.Year() >= FirstYear && t.Year() <= LastYear
}
