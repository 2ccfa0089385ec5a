package query

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/apimeter/apimeter/store"
)

// rfc3339Millis is how exports write times (Arrow has its own type).
const rfc3339Millis = "2006-01-02T15:04:05.000Z"

// arrowBatchRows is how many rows the Go Arrow encoder puts in a batch.
const arrowBatchRows = 64 << 10

// encodeRows writes rows (nil: none) in format, for stores that cannot
// write the format themselves. The rows hold the fields' typed
// expressions, except for CSV, which holds their CSV text.
func encodeRows(rows store.Rows, format Format, fields []field, w io.Writer) error {
	next := func() ([]any, bool) {
		if rows == nil || !rows.Next() {
			return nil, false
		}
		return rows.Values(), true
	}
	rowsErr := func() error {
		if rows == nil {
			return nil
		}
		return rows.Err()
	}
	switch format {
	case FormatArrow:
		return encodeArrow(next, rowsErr, fields, w)
	case FormatCSV:
		cw := csv.NewWriter(w)
		rec := make([]string, len(fields))
		for i, f := range fields {
			rec[i] = f.name
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
		for vals, ok := next(); ok; vals, ok = next() {
			for i, v := range vals {
				rec[i] = csvText(v)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return rowsErr()
	case FormatJSON, FormatNDJSON:
		bw := bufio.NewWriterSize(w, 64<<10)
		array := format == FormatJSON
		obj := make(map[string]any, len(fields))
		n := 0
		for vals, ok := next(); ok; vals, ok = next() {
			switch {
			case array && n == 0:
				bw.WriteString("[\n")
			case array:
				bw.WriteString(",\n")
			}
			for i, f := range fields {
				obj[f.name] = jsonValue(vals[i])
			}
			b, err := marshalOrdered(fields, obj)
			if err != nil {
				return err
			}
			bw.Write(b)
			if !array {
				bw.WriteByte('\n')
			}
			n++
		}
		switch {
		case array && n == 0:
			bw.WriteString("[]\n")
		case array:
			bw.WriteString("\n]\n")
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return rowsErr()
	}
	return fmt.Errorf("export: no encoder for %q", format)
}

// marshalOrdered writes obj with its keys in the fields' order.
func marshalOrdered(fields []field, obj map[string]any) ([]byte, error) {
	b := []byte{'{'}
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.name)
		b = append(b, ':')
		v, err := json.Marshal(obj[f.name])
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, '}'), nil
}

// jsonValue is v as the export's JSON shows it: times in RFC 3339 with
// milliseconds, in UTC.
func jsonValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(rfc3339Millis)
	}
	return v
}

// csvText is v as one CSV cell.
func csvText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(rfc3339Millis)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// encodeArrow writes an Arrow IPC stream with the fields' schema.
func encodeArrow(next func() ([]any, bool), rowsErr func() error, fields []field, w io.Writer) error {
	fs := make([]arrow.Field, len(fields))
	for i, f := range fields {
		fs[i] = arrow.Field{Name: f.name, Type: f.arrow}
	}
	schema := arrow.NewSchema(fs, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	aw := ipc.NewWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		return aw.Write(rec)
	}
	n := 0
	for vals, ok := next(); ok; vals, ok = next() {
		for i, v := range vals {
			if err := appendArrow(b.Field(i), v); err != nil {
				aw.Close()
				return fmt.Errorf("export: field %s: %w", fields[i].name, err)
			}
		}
		if n++; n == arrowBatchRows {
			if err := flush(); err != nil {
				aw.Close()
				return err
			}
			n = 0
		}
	}
	if n > 0 {
		if err := flush(); err != nil {
			aw.Close()
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	return rowsErr()
}

// appendArrow appends one canonical store value to an Arrow builder.
func appendArrow(b array.Builder, v any) error {
	if v == nil {
		b.AppendNull()
		return nil
	}
	switch bb := b.(type) {
	case *array.StringBuilder:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", v)
		}
		bb.Append(s)
	case *array.Uint16Builder:
		var x uint64
		if err := store.Assign(&x, v); err != nil {
			return err
		}
		bb.Append(uint16(x))
	case *array.Uint64Builder:
		var x uint64
		if err := store.Assign(&x, v); err != nil {
			return err
		}
		bb.Append(x)
	case *array.Float64Builder:
		var x float64
		if err := store.Assign(&x, v); err != nil {
			return err
		}
		bb.Append(x)
	case *array.TimestampBuilder:
		t, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("want a time, got %T", v)
		}
		bb.Append(arrow.Timestamp(t.UnixMilli()))
	case *array.MapBuilder:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("want a map, got %T", v)
		}
		bb.Append(true)
		kb := bb.KeyBuilder().(*array.StringBuilder)
		ib := bb.ItemBuilder()
		for _, k := range slices.Sorted(maps.Keys(m)) {
			kb.Append(k)
			if err := appendArrow(ib, m[k]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("no Arrow builder for %T", b)
	}
	return nil
}
