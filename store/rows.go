package store

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"time"
)

// Rows is a streamed query result. Values come in one canonical set of Go
// types whichever driver produced them: int64, uint64, float64, bool,
// string, time.Time, nil (NULL), []any (Array, Tuple) and map[string]any
// (Map). Scan converts them into the caller's variables.
type Rows interface {
	// Columns names the result's columns.
	Columns() []string
	// Types gives each column's ClickHouse type.
	Types() []string
	// Next advances to the next row; false at the end or on error.
	Next() bool
	// Values is the current row. The slice is reused by Next.
	Values() []any
	// Scan copies the current row into dest, one pointer per column.
	Scan(dest ...any) error
	// Err is the error that ended iteration, if any.
	Err() error
	// Close releases the result; it cancels a query still producing rows.
	Close() error
}

// scanRow is the Scan shared by both drivers.
func scanRow(cols []string, vals []any, dest []any) error {
	if len(dest) != len(vals) {
		return fmt.Errorf("store: scan: %d destinations for %d columns", len(dest), len(vals))
	}
	for i, d := range dest {
		if err := Assign(d, vals[i]); err != nil {
			return fmt.Errorf("store: scan column %s: %w", cols[i], err)
		}
	}
	return nil
}

// Assign stores a canonical value v in the variable dest points to,
// converting between numeric kinds when the value fits.
func Assign(dest, v any) error {
	if v == nil {
		return assignNull(dest)
	}
	switch d := dest.(type) {
	case *any:
		*d = v
		return nil
	case *string:
		switch x := v.(type) {
		case string:
			*d = x
			return nil
		case time.Time:
			*d = x.UTC().Format(time.RFC3339Nano)
			return nil
		}
	case *int64:
		n, err := toInt64(v)
		*d = n
		return err
	case *int:
		n, err := toInt64(v)
		*d = int(n)
		return err
	case *int32:
		n, err := toInt64(v)
		if err == nil && (n < math.MinInt32 || n > math.MaxInt32) {
			err = fmt.Errorf("%d overflows int32", n)
		}
		*d = int32(n)
		return err
	case *uint64:
		n, err := toUint64(v)
		*d = n
		return err
	case *uint32:
		n, err := toUint64(v)
		if err == nil && n > math.MaxUint32 {
			err = fmt.Errorf("%d overflows uint32", n)
		}
		*d = uint32(n)
		return err
	case *uint16:
		n, err := toUint64(v)
		if err == nil && n > math.MaxUint16 {
			err = fmt.Errorf("%d overflows uint16", n)
		}
		*d = uint16(n)
		return err
	case *uint8:
		n, err := toUint64(v)
		if err == nil && n > math.MaxUint8 {
			err = fmt.Errorf("%d overflows uint8", n)
		}
		*d = uint8(n)
		return err
	case *float64:
		f, err := toFloat64(v)
		*d = f
		return err
	case *float32:
		f, err := toFloat64(v)
		*d = float32(f)
		return err
	case *bool:
		switch x := v.(type) {
		case bool:
			*d = x
			return nil
		case uint64:
			*d = x != 0
			return nil
		}
	case *time.Time:
		if t, ok := v.(time.Time); ok {
			*d = t
			return nil
		}
	case *[]any:
		if a, ok := v.([]any); ok {
			*d = a
			return nil
		}
	case *[]float64:
		if a, ok := v.([]any); ok {
			out := make([]float64, len(a))
			for i, e := range a {
				f, err := toFloat64(e)
				if err != nil {
					return err
				}
				out[i] = f
			}
			*d = out
			return nil
		}
	case *[]string:
		if a, ok := v.([]any); ok {
			out := make([]string, len(a))
			for i, e := range a {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("cannot assign %T element to string", e)
				}
				out[i] = s
			}
			*d = out
			return nil
		}
	case *map[string]string:
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]string, len(m))
			for k, e := range m {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("cannot assign %T map value to string", e)
				}
				out[k] = s
			}
			*d = out
			return nil
		}
	case *map[string]any:
		if m, ok := v.(map[string]any); ok {
			*d = m
			return nil
		}
	}
	return fmt.Errorf("cannot assign %T to %T", v, dest)
}

func assignNull(dest any) error {
	rv := reflect.ValueOf(dest)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("destination %T is not a pointer", dest)
	}
	rv.Elem().Set(reflect.Zero(rv.Elem().Type()))
	return nil
}

func toInt64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d overflows int64", x)
		}
		return int64(x), nil
	case float64:
		if x != math.Trunc(x) || x < math.MinInt64 || x > math.MaxInt64 {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("cannot assign %T to an integer", v)
}

func toUint64(v any) (uint64, error) {
	switch x := v.(type) {
	case uint64:
		return x, nil
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("%d is negative", x)
		}
		return uint64(x), nil
	case float64:
		if x != math.Trunc(x) || x < 0 || x > math.MaxUint64 {
			return 0, fmt.Errorf("%v is not an unsigned integer", x)
		}
		return uint64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("cannot assign %T to an unsigned integer", v)
}

func toFloat64(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	}
	return 0, fmt.Errorf("cannot assign %T to a float", v)
}

// canonical turns a value a driver produced into the canonical set.
func canonical(v any) any {
	switch x := v.(type) {
	case nil, int64, uint64, float64, bool, string, time.Time:
		return x
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint:
		return uint64(x)
	case uint8:
		return uint64(x)
	case uint16:
		return uint64(x)
	case uint32:
		return uint64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return canonical(rv.Elem().Interface())
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = canonical(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[fmt.Sprint(canonical(it.Key().Interface()))] = canonical(it.Value().Interface())
		}
		return out
	case reflect.String:
		return rv.String()
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return v
}

// Querier runs queries (every Driver does).
type Querier interface {
	Query(ctx context.Context, query string, params ...Param) (Rows, error)
}

// QueryUint64 runs a query whose first column of its first row is a
// count; no row reads as 0.
func QueryUint64(ctx context.Context, db Querier, query string, params ...Param) (uint64, error) {
	rows, err := db.Query(ctx, query, params...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		err = rows.Scan(&n)
	}
	if err == nil {
		err = rows.Err()
	}
	return n, err
}
