package schema

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/apimeter/apimeter/store"
)

// verified are the rollups checked against the raw records: every
// request is one count in each of them.
var verified = []string{"usage_hourly", "usage_daily", "user_hourly", "user_daily", "endpoint_hourly", "endpoint_daily"}

// Mismatch is a rollup's UTC day whose request count differs from the
// raw records'.
type Mismatch struct {
	Table  string
	Day    time.Time
	Raw    uint64
	Rollup uint64
}

// VerifyRollups compares, per UTC day of [from, to), the raw records'
// count with each rollup's sum of requests (through the plain names: the
// Distributed tables on a cluster).
func VerifyRollups(ctx context.Context, db DB, l Layout, from, to time.Time) ([]Mismatch, error) {
	r := DayRange(from, to)
	params := []store.Param{store.Named("from", r.From), store.Named("to", r.To)}
	counts := func(query string) (map[time.Time]uint64, error) {
		rows, err := db.Query(ctx, query, params...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[time.Time]uint64{}
		for rows.Next() {
			var day time.Time
			var n uint64
			if err := rows.Scan(&day, &n); err != nil {
				return nil, err
			}
			out[day.UTC()] = n
		}
		return out, rows.Err()
	}
	raw, err := counts(fmt.Sprintf(`SELECT toStartOfDay(event_time, 'UTC') AS d, count() FROM %s
		WHERE event_time >= {from:DateTime64(3, 'UTC')} AND event_time < {to:DateTime64(3, 'UTC')} GROUP BY d`, "usage_events"))
	if err != nil {
		return nil, fmt.Errorf("verify rollups: raw: %w", err)
	}
	var out []Mismatch
	for _, t := range verified {
		got, err := counts(fmt.Sprintf(`SELECT toStartOfDay(bucket, 'UTC') AS d, sum(requests) FROM %s
			WHERE bucket >= {from:DateTime64(3, 'UTC')} AND bucket < {to:DateTime64(3, 'UTC')} GROUP BY d`, t))
		if err != nil {
			return nil, fmt.Errorf("verify rollups: %s: %w", t, err)
		}
		for d := r.From; d.Before(r.To); d = d.Add(24 * time.Hour) {
			if raw[d] != got[d] {
				out = append(out, Mismatch{Table: t, Day: d, Raw: raw[d], Rollup: got[d]})
			}
		}
	}
	return out, nil
}

// Repair is what a verification found and did.
type Repair struct {
	Mismatches []Mismatch
	// Rebuilt are the days rebuilt from raw records: the mismatched days
	// that ended RecentGuard ago or more.
	Rebuilt []time.Time
	// Pending are mismatched days too recent to rebuild while records
	// still arrive; a later run repairs them once they are complete.
	Pending []time.Time
}

// VerifyAndRepair checks the days of the last span against the raw
// records and rebuilds each complete day that disagrees.
func VerifyAndRepair(ctx context.Context, db DB, l Layout, now time.Time, span time.Duration) (Repair, error) {
	var rep Repair
	ms, err := VerifyRollups(ctx, db, l, now.Add(-span), now)
	if err != nil {
		return rep, err
	}
	rep.Mismatches = ms
	days := map[time.Time]bool{}
	for _, m := range ms {
		days[m.Day] = true
	}
	for d := range days {
		if d.Add(24 * time.Hour).After(now.Add(-RecentGuard)) {
			rep.Pending = append(rep.Pending, d)
			continue
		}
		if _, err := Rebuild(ctx, db, l, d, d.Add(24*time.Hour), now, false); err != nil {
			return rep, err
		}
		rep.Rebuilt = append(rep.Rebuilt, d)
	}
	return rep, nil
}

var partitionID = regexp.MustCompile(`^[0-9]{6,8}$`)

// DropExpired drops the raw tables' daily partitions that lie wholly
// before now - days (a TTL deletes rows lazily, in merges; a dropped
// partition frees its disk at once). It returns the partitions dropped.
func DropExpired(ctx context.Context, db DB, l Layout, days int, now time.Time) ([]string, error) {
	cutoff := now.UTC().Add(-time.Duration(days) * 24 * time.Hour)
	var dropped []string
	for _, t := range rawTables {
		rows, err := db.Query(ctx, `SELECT partition_id FROM system.parts
			WHERE database = currentDatabase() AND table = {table:String} AND active
			GROUP BY partition_id HAVING max(max_time) < {cutoff:DateTime64(3, 'UTC')} ORDER BY partition_id`,
			store.Named("table", l.Table(t)), store.Named("cutoff", cutoff))
		if err != nil {
			return dropped, fmt.Errorf("cleanup: %s: %w", t, err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return dropped, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		for _, id := range ids {
			if !partitionID.MatchString(id) { // the engine names them; only digits are expected
				continue
			}
			on := ""
			if l.Cluster != "" {
				on = " ON CLUSTER " + l.Cluster
			}
			if err := db.Exec(ctx, fmt.Sprintf("ALTER TABLE %s%s DROP PARTITION ID '%s'", l.Table(t), on, id)); err != nil {
				return dropped, fmt.Errorf("cleanup: drop %s partition %s: %w", t, id, err)
			}
			dropped = append(dropped, t+"/"+id)
		}
	}
	return dropped, nil
}
