package query

import (
	"context"
	"time"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/store"
)

// DimensionValue is one value of a custom dimension and its requests.
type DimensionValue struct {
	Value    string `json:"value"`
	Requests uint64 `json:"requests"`
}

// DimensionUse is how a declared dimension was used in a range: its
// busiest values, how many distinct values were kept, and the requests
// whose value was folded.
type DimensionUse struct {
	dims.Spec
	// Requests counts the records that had the dimension.
	Requests uint64 `json:"requests"`
	// DistinctValues counts the values kept (neither folded nor invalid).
	DistinctValues uint64 `json:"distinctValues"`
	// OtherRequests were past the cap (stored as __other__);
	// InvalidRequests not of the type (__invalid__).
	OtherRequests   uint64           `json:"otherRequests"`
	InvalidRequests uint64           `json:"invalidRequests"`
	Values          []DimensionValue `json:"values"`
}

// DimensionUses reports every declared dimension over the whole UTC hours
// covering r (dimension_hourly), in the scope, with its top values (at
// most limit each, busiest first, ties by value).
func (s *Service) DimensionUses(ctx context.Context, sc Scope, r Range, limit int) ([]DimensionUse, error) {
	if err := s.checkRange(r, GrainNone); err != nil {
		return nil, err
	}
	start := r.Start.UTC().Truncate(time.Hour)
	end := r.End.UTC().Truncate(time.Hour)
	if end.Before(r.End) {
		end = end.Add(time.Hour)
	}
	out := make([]DimensionUse, len(s.dims))
	at := map[string]*DimensionUse{}
	for i, sp := range s.dims {
		out[i] = DimensionUse{Spec: sp, Values: []DimensionValue{}}
		at[sp.Name] = &out[i]
	}
	if len(s.dims) == 0 {
		return out, nil
	}
	params := []store.Param{store.Named("start", start), store.Named("end", end), store.Named("tenant", sc.Tenant),
		store.Named("user", sc.User), store.Named("dims", dims.Names(s.dims)), store.Named("limit", uint32(limit)),
		store.Named("other", dims.Other), store.Named("invalid", dims.Invalid)}
	const where = `FROM dimension_hourly
		WHERE bucket >= {start:DateTime64(3, 'UTC')} AND bucket < {end:DateTime64(3, 'UTC')}
		  AND ({tenant:String} = '' OR tenant_id = {tenant:String}) AND ({user:String} = '' OR user_id = {user:String})
		  AND dimension IN {dims:Array(String)}`
	rows, err := s.db.Query(ctx, `SELECT toString(dimension), sum(requests),
			uniqExactIf(value, value NOT IN ({other:String}, {invalid:String})),
			sumIf(requests, value = {other:String}), sumIf(requests, value = {invalid:String}) `+where+`
		GROUP BY dimension`, params...)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var name string
		var u DimensionUse
		if err := rows.Scan(&name, &u.Requests, &u.DistinctValues, &u.OtherRequests, &u.InvalidRequests); err != nil {
			rows.Close()
			return nil, err
		}
		if d := at[name]; d != nil {
			d.Requests, d.DistinctValues, d.OtherRequests, d.InvalidRequests = u.Requests, u.DistinctValues, u.OtherRequests, u.InvalidRequests
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.Query(ctx, `SELECT toString(dimension) AS d, value, sum(requests) AS n `+where+`
		GROUP BY d, value ORDER BY d, n DESC, value LIMIT {limit:UInt32} BY d`, params...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v DimensionValue
		if err := rows.Scan(&name, &v.Value, &v.Requests); err != nil {
			return nil, err
		}
		if d := at[name]; d != nil {
			d.Values = append(d.Values, v)
		}
	}
	return out, rows.Err()
}
