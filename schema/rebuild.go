package schema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/apimeter/apimeter/store"
)

//go:embed rollups/*.sql
var rollupFiles embed.FS

// Rollups are the tables fed by materialized views, in rebuild order.
var Rollups = []string{"usage_hourly", "usage_daily", "user_hourly", "user_daily", "endpoint_minute", "endpoint_hourly", "endpoint_daily", "dimension_hourly", "feature_usage_daily"}

// RebuildRange is the span a rebuild covers.
type RebuildRange struct {
	From, To time.Time // whole UTC days, From inclusive, To exclusive
}

// DayRange widens [from, to) to whole UTC days, the unit rollups are
// rebuilt in (a daily bucket is only right when its whole day is).
func DayRange(from, to time.Time) RebuildRange {
	f := from.UTC().Truncate(24 * time.Hour)
	t := to.UTC().Truncate(24 * time.Hour)
	if t.Before(to.UTC()) {
		t = t.Add(24 * time.Hour)
	}
	return RebuildRange{From: f, To: t}
}

// RecentGuard is how close to now a rebuild may reach unless forced:
// records still arriving for those hours would be counted by the views
// and by the rebuild's own read, or lost between its delete and insert.
const RecentGuard = 15 * time.Minute

// Rebuild recomputes every rollup for the whole UTC days covering
// [from, to) from the raw tables: each rollup's rows in the range are
// deleted, then aggregated again from raw records. Readers may see the
// range empty while it runs. It refuses a range reaching later than
// now - RecentGuard unless force is set.
func Rebuild(ctx context.Context, db DB, l Layout, from, to, now time.Time, force bool) (RebuildRange, error) {
	if !to.After(from) {
		return RebuildRange{}, errors.New("rebuild: --to must be after --from")
	}
	r := DayRange(from, to)
	if !force && r.To.After(now.Add(-RecentGuard)) {
		return r, fmt.Errorf("rebuild: the range ends %s, after now - %s: records may still arrive for it; rebuild up to %s, or pass --force with ingestion stopped",
			r.To.Format(time.RFC3339), RecentGuard, now.Add(-RecentGuard).UTC().Truncate(24*time.Hour).Format(time.RFC3339))
	}
	params := []store.Param{store.Named("from", r.From), store.Named("to", r.To)}
	for _, name := range Rollups {
		b, err := rollupFiles.ReadFile("rollups/" + name + ".sql")
		if err != nil {
			return r, err
		}
		text, err := l.render(name, string(b))
		if err != nil {
			return r, err
		}
		for _, stmt := range splitStatements(text) {
			if err := db.Exec(ctx, stmt, params...); err != nil {
				return r, fmt.Errorf("rebuild %s: %w", name, err)
			}
		}
	}
	return r, nil
}
