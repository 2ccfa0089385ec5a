package schema

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/apimeter/apimeter/store"
)

// rawTables keep records for API_USAGE_RETENTION_DAYS; rollups are kept.
var rawTables = []string{"usage_events", "feature_usage"}

var ttlDaysRE = regexp.MustCompile(`TTL toDateTime\(event_time\) \+ toIntervalDay\((\d+)\)`)

// EnsureRetention sets the raw tables' TTL to days when it differs. The
// migrations create them with 90 days; the setting lives in the table, so
// changing API_USAGE_RETENTION_DAYS takes effect here rather than by
// editing a migration. It returns the tables it changed.
func EnsureRetention(ctx context.Context, db DB, l Layout, days int) ([]string, error) {
	if days < 1 || days > 36500 {
		return nil, fmt.Errorf("retention of %d days: want 1 to 36500", days)
	}
	var changed []string
	for _, t := range rawTables {
		name := l.Table(t)
		cur, err := ttlDays(ctx, db, name)
		if err != nil {
			return changed, err
		}
		if cur == days {
			continue
		}
		on := ""
		if l.Cluster != "" {
			on = " ON CLUSTER " + l.Cluster
		}
		stmt := fmt.Sprintf("ALTER TABLE %s%s MODIFY TTL toDateTime(event_time) + toIntervalDay(%d)", name, on, days)
		if err := db.Exec(ctx, stmt); err != nil {
			return changed, fmt.Errorf("retention: %s: %w", name, err)
		}
		changed = append(changed, t)
	}
	return changed, nil
}

// RetentionDays reads the raw records' TTL, in days, from usage_events.
func RetentionDays(ctx context.Context, db DB, l Layout) (int, error) {
	return ttlDays(ctx, db, l.Table("usage_events"))
}

// ttlDays is a raw table's TTL in days, 0 when it has none.
func ttlDays(ctx context.Context, db DB, table string) (int, error) {
	rows, err := db.Query(ctx, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {name:String}", store.Named("name", table))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("retention: table %s does not exist; run migrations first", table)
	}
	var engine string
	if err := rows.Scan(&engine); err != nil {
		return 0, err
	}
	m := ttlDaysRE.FindStringSubmatch(engine)
	if m == nil {
		return 0, nil
	}
	return strconv.Atoi(m[1])
}
