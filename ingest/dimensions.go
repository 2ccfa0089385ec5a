package ingest

import (
	"context"
	"fmt"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/store"
)

// SeedDimensions tells f the values each tenant's dimensions took in the
// last days, first used first, so that a restarted ingester keeps the
// values it kept before and folds the rest. Values are read from
// dimension_hourly, at most a dimension's cap per tenant.
func SeedDimensions(ctx context.Context, db store.Querier, f *dims.Folder, days int) error {
	for _, s := range f.Specs() {
		rows, err := db.Query(ctx, `SELECT tenant_id, groupArray({cap:UInt32})(value) FROM (
				SELECT tenant_id, value, min(bucket) AS first FROM dimension_hourly
				WHERE dimension = {dim:String} AND bucket >= now() - toIntervalDay({days:UInt32})
				  AND value NOT IN ('__other__', '__invalid__')
				GROUP BY tenant_id, value ORDER BY tenant_id, first, value)
			GROUP BY tenant_id`,
			store.Named("dim", s.Name), store.Named("cap", uint32(s.Cap)), store.Named("days", uint32(days)))
		if err != nil {
			return fmt.Errorf("seed dimension %s: %w", s.Name, err)
		}
		for rows.Next() {
			var tenant string
			var values []string
			if err := rows.Scan(&tenant, &values); err != nil {
				rows.Close()
				return fmt.Errorf("seed dimension %s: %w", s.Name, err)
			}
			f.Seed(tenant, s.Name, values)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("seed dimension %s: %w", s.Name, err)
		}
	}
	return nil
}
