package query

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/template"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/apimeter/apimeter/store"
)

var exportSQL = template.Must(template.ParseFS(sqlFiles, "sql/export.sql"))

// Dataset is what an export reads.
type Dataset string

const (
	DatasetEvents Dataset = "events" // raw records
	DatasetHourly Dataset = "hourly" // usage_hourly
	DatasetDaily  Dataset = "daily"  // usage_daily
	// DatasetDimensions is dimension_hourly: per custom dimension and
	// value, user and hour.
	DatasetDimensions Dataset = "dimensions"
)

// Format is an export's encoding.
type Format string

const (
	FormatCSV    Format = "csv"    // RFC 4180, header row
	FormatJSON   Format = "json"   // one JSON array
	FormatNDJSON Format = "ndjson" // one JSON object a line
	FormatArrow  Format = "arrow"  // Arrow IPC stream
)

// ContentType is the media type of a format.
func (f Format) ContentType() string {
	return map[Format]string{
		FormatCSV: "text/csv; charset=utf-8", FormatJSON: "application/json", FormatNDJSON: "application/x-ndjson",
		FormatArrow: "application/vnd.apache.arrow.stream",
	}[f]
}

// Extension is a file name extension for a format.
func (f Format) Extension() string {
	return map[Format]string{FormatCSV: "csv", FormatJSON: "json", FormatNDJSON: "ndjson", FormatArrow: "arrow"}[f]
}

// field is an exported column: its expression when the consumer wants
// types (Arrow, and the Go encoders), as JSON, and as CSV text.
type field struct {
	name        string
	typed, json string
	csv         string
	arrow       arrow.DataType
}

func (f field) expr(fmt Format) string {
	switch fmt {
	case FormatCSV:
		if f.csv != "" {
			return f.csv
		}
		return f.expr(FormatJSON)
	case FormatJSON, FormatNDJSON:
		if f.json != "" {
			return f.json
		}
	}
	return f.typed
}

var (
	tsType  = &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}
	strType = arrow.BinaryTypes.String
	u64     = arrow.PrimitiveTypes.Uint64
	f64     = arrow.PrimitiveTypes.Float64
)

func timestampField(name, col string) field {
	return field{name: name, typed: col, json: "concat(replaceOne(toString(" + col + "), ' ', 'T'), 'Z')", arrow: tsType}
}

func bucketField() field {
	return field{name: "bucket", typed: "toDateTime64(bucket, 3, 'UTC')", json: "concat(replaceOne(toString(toDateTime64(bucket, 3, 'UTC')), ' ', 'T'), 'Z')", arrow: tsType}
}

var datasetFields = map[Dataset][]field{
	DatasetEvents: {
		{name: "id", typed: "id", arrow: strType},
		timestampField("timestamp", "event_time"),
		{name: "tenantId", typed: "toString(tenant_id)", arrow: strType},
		{name: "userId", typed: "user_id", arrow: strType},
		{name: "apiKeyId", typed: "api_key_id", arrow: strType},
		{name: "endpoint", typed: "toString(endpoint)", arrow: strType},
		{name: "method", typed: "toString(method)", arrow: strType},
		{name: "statusCode", typed: "status_code", arrow: arrow.PrimitiveTypes.Uint16},
		{name: "responseTimeMs", typed: "response_time_us / 1000", arrow: f64},
		{name: "requestBytes", typed: "request_bytes", arrow: u64},
		{name: "responseBytes", typed: "response_bytes", arrow: u64},
		{name: "cost", typed: "toUInt64(cost)", arrow: u64},
		{name: "metadata", typed: "CAST(metadata, 'Map(String, String)')", csv: "toJSONString(metadata)", arrow: arrow.MapOf(strType, strType)},
		{name: "dimensions", typed: "CAST(dimensions, 'Map(String, String)')", csv: "toJSONString(dimensions)", arrow: arrow.MapOf(strType, strType)},
		timestampField("ingestedAt", "ingested_at"),
		timestampField("storedAt", "stored_at"),
	},
	DatasetHourly:     append(slices.Clone(rollupFields), costField),
	DatasetDaily:      append(slices.Clone(rollupFields), costField),
	DatasetDimensions: dimensionFields(),
}

var costField = field{name: "cost", typed: "cost", arrow: u64}

// dimensionFields are dimension_hourly's: the rollup's without endpoint,
// method and status, with the dimension and its value.
func dimensionFields() []field {
	out := []field{bucketField(),
		{name: "tenantId", typed: "toString(tenant_id)", arrow: strType},
		{name: "userId", typed: "user_id", arrow: strType},
		{name: "dimension", typed: "toString(dimension)", arrow: strType},
		{name: "value", typed: "value", arrow: strType},
	}
	for _, f := range rollupFields {
		switch f.name {
		case "bucket", "tenantId", "userId", "endpoint", "method", "statusCode":
		default:
			out = append(out, f)
		}
	}
	return append(out, costField)
}

var rollupFields = []field{
	bucketField(),
	{name: "tenantId", typed: "toString(tenant_id)", arrow: strType},
	{name: "userId", typed: "user_id", arrow: strType},
	{name: "endpoint", typed: "toString(endpoint)", arrow: strType},
	{name: "method", typed: "toString(method)", arrow: strType},
	{name: "statusCode", typed: "status_code", arrow: arrow.PrimitiveTypes.Uint16},
	{name: "requests", typed: "requests", arrow: u64},
	{name: "errors", typed: "errors_5xx", arrow: u64},
	{name: "clientErrors", typed: "errors_4xx", arrow: u64},
	{name: "responseTimeSumMs", typed: "response_time_sum_us / 1000", arrow: f64},
	{name: "averageResponseTimeMs", typed: "if(requests = 0, 0, response_time_sum_us / requests / 1000)", arrow: f64},
	{name: "maxResponseTimeMs", typed: "response_time_max_us / 1000", arrow: f64},
	{name: "requestBytes", typed: "request_bytes", arrow: u64},
	{name: "responseBytes", typed: "response_bytes", arrow: u64},
}

// FieldNames lists a dataset's fields, in export order.
func FieldNames(d Dataset) []string {
	var out []string
	for _, f := range datasetFields[d] {
		out = append(out, f.name)
	}
	return out
}

var datasetSource = map[Dataset]source{DatasetEvents: srcRaw, DatasetHourly: srcUsageHourly, DatasetDaily: srcUsageDaily, DatasetDimensions: srcDimension}

// ExportRequest asks for an export.
type ExportRequest struct {
	Scope   Scope
	Range   Range
	Dataset Dataset
	Fields  []string // empty: every field
	Filters Filters
	Format  Format
	MaxRows uint64 // refuse exports larger than this
}

// Export is a checked export, ready to stream.
type Export struct {
	Rows   uint64 // how many rows it holds
	format Format
	fields []field
	sql    string
	params []store.Param
	db     DB
	// engineFormat is set when the store can write the format itself.
	engineFormat bool
	chunks       int // engine chunks joined (tests)
}

// FormatDB is a store that can stream a result in a ClickHouse output
// format; exports then pass the engine's own encoding through.
type FormatDB interface {
	QueryFormat(ctx context.Context, query, format string, params ...store.Param) (store.Chunks, error)
}

// PrepareExport checks an export request and counts its rows, so a
// refusal (a bad field, too many rows) comes before any byte is sent.
func (s *Service) PrepareExport(ctx context.Context, req ExportRequest) (*Export, error) {
	if err := s.checkRange(req.Range, GrainNone); err != nil {
		return nil, err
	}
	all, ok := datasetFields[req.Dataset]
	if !ok {
		return nil, invalid("dataset %q: want events, hourly, daily or dimensions", req.Dataset)
	}
	if err := s.checkCustom(nil, &req.Filters); err != nil {
		return nil, err
	}
	if req.Format.ContentType() == "" {
		return nil, invalid("format %q: want csv, json, ndjson or arrow", req.Format)
	}
	fields := all
	if len(req.Fields) > 0 {
		fields = nil
		for _, name := range req.Fields {
			i := slices.IndexFunc(all, func(f field) bool { return f.name == name })
			if i < 0 {
				return nil, invalid("field %q: %s has %s", name, req.Dataset, strings.Join(FieldNames(req.Dataset), ", "))
			}
			if slices.ContainsFunc(fields, func(f field) bool { return f.name == name }) {
				return nil, invalid("field %q given twice", name)
			}
			fields = append(fields, all[i])
		}
	}
	src := datasetSource[req.Dataset]
	p, err := planFrom(src, need{scope: req.Scope, rng: req.Range, filters: req.Filters, now: s.now()})
	if err != nil {
		return nil, err
	}
	_, engine := s.db.(FormatDB)
	e := &Export{format: req.Format, fields: fields, params: p.params, db: s.db, engineFormat: engine}
	render := func(exprs []field, f Format, order, settings string) (string, error) {
		type col struct{ Name, Expr string }
		var cols []col
		for _, x := range exprs {
			cols = append(cols, col{x.name, x.expr(f)})
		}
		var b bytes.Buffer
		err := exportSQL.Execute(&b, map[string]any{
			"Fields": cols, "Table": p.Table, "Final": !src.raw, "TimeCol": p.TimeCol,
			"Tenant": p.Tenant, "User": p.User, "Filters": p.Filters, "Conds": p.Conds, "OrderBy": order, "Settings": settings,
		})
		return b.String(), err
	}
	count, err := render([]field{{name: "n", typed: "count()"}}, FormatArrow, "", "")
	if err != nil {
		return nil, err
	}
	if e.Rows, err = store.QueryUint64(ctx, s.db, count, p.params...); err != nil {
		return nil, err
	}
	if req.MaxRows > 0 && e.Rows > req.MaxRows {
		return nil, invalid("the export holds %d rows, over the limit of %d: narrow the range or add filters", e.Rows, req.MaxRows)
	}
	// Output names such as bucket and endpoint are also column names:
	// WHERE and ORDER BY mean the columns.
	settings := "prefer_column_name_to_alias = 1"
	if s.exportBlockRows > 0 {
		settings += fmt.Sprintf(", max_block_size = %d", s.exportBlockRows)
	}
	add := func(more string) { settings += ", " + more }
	if engine {
		switch req.Format {
		case FormatJSON:
			add("output_format_json_quote_64bit_integers = 0, output_format_json_array_of_rows = 1")
		case FormatNDJSON:
			add("output_format_json_quote_64bit_integers = 0")
		case FormatArrow:
			add("output_format_arrow_string_as_string = 1, output_format_arrow_low_cardinality_as_dictionary = 0")
		}
	}
	exprFormat := req.Format
	if !engine && req.Format != FormatCSV {
		exprFormat = FormatArrow // the Go encoders want typed values
	}
	// No ORDER BY: sorting, or reading in key order, which merges every
	// part at once with a buffer per part and column, takes memory that
	// grows with the table (1.3 GB for 10 M rows here); parts read one
	// after another keep it flat. Every row carries its time.
	e.sql, err = render(fields, exprFormat, "", settings)
	return e, err
}

// engineFormats are the ClickHouse formats that produce each export.
var engineFormats = map[Format]string{FormatCSV: "CSVWithNames", FormatJSON: "JSONEachRow", FormatNDJSON: "JSONEachRow", FormatArrow: "ArrowStream"}

// WriteTo streams the export to w. ctx ending (the client went away)
// stops the query.
func (e *Export) WriteTo(ctx context.Context, w io.Writer) error {
	if e.engineFormat {
		return e.passThrough(ctx, w)
	}
	rows, err := e.db.Query(ctx, e.sql, e.params...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return encodeRows(rows, e.format, e.fields, w)
}

// passThrough copies the engine's encoding. The engine frames every chunk
// on its own, so chunks are joined: Arrow streams into one (see
// arrowMessages), CSV headers after the first dropped, JSON arrays merged.
func (e *Export) passThrough(ctx context.Context, w io.Writer) error {
	chunks, err := e.db.(FormatDB).QueryFormat(ctx, e.sql, engineFormats[e.format], e.params...)
	if err != nil {
		return err
	}
	defer chunks.Close()
	started := false // something was written
	for {
		b, err := chunks.Next()
		if err != nil {
			return err
		}
		if b == nil {
			break
		}
		e.chunks++
		switch e.format {
		case FormatArrow:
			msgs, err := arrowMessages(b, !started)
			if err != nil {
				return err
			}
			if _, err := w.Write(msgs); err != nil {
				return err
			}
			started = true
		case FormatCSV:
			if started { // later chunks repeat the header row
				if i := bytes.IndexByte(b, '\n'); i >= 0 {
					b = b[i+1:]
				}
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			started = true
		case FormatJSON:
			// "[\n{…},\n{…}\n]\n" per chunk: keep the objects.
			b = bytes.TrimSpace(b)
			b = bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimPrefix(b, []byte("[")), []byte("]")))
			if len(b) == 0 {
				continue
			}
			sep := ",\n"
			if !started {
				sep = "[\n"
			}
			if _, err := io.WriteString(w, sep); err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			started = true
		default:
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	switch {
	case e.format == FormatArrow && !started:
		// No rows: an empty stream with the export's schema.
		return encodeRows(nil, FormatArrow, e.fields, w)
	case e.format == FormatArrow:
		_, err = w.Write(arrowEOS)
	case e.format == FormatJSON && !started:
		_, err = io.WriteString(w, "[]\n")
	case e.format == FormatJSON:
		_, err = io.WriteString(w, "\n]\n")
	case e.format == FormatCSV && !started:
		return encodeRows(nil, FormatCSV, e.fields, w)
	}
	return err
}

// WriteEngineOutput copies the engine's own output for the export's query
// and format to w, chunks as they come (not joined into one document):
// the speed bound an export is measured against.
func (e *Export) WriteEngineOutput(ctx context.Context, w io.Writer) error {
	fdb, ok := e.db.(FormatDB)
	if !ok {
		return fmt.Errorf("export: the store cannot write %s itself", e.format)
	}
	chunks, err := fdb.QueryFormat(ctx, e.sql, engineFormats[e.format], e.params...)
	if err != nil {
		return err
	}
	defer chunks.Close()
	for {
		b, err := chunks.Next()
		if err != nil || b == nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
}

// arrowEOS ends an Arrow IPC stream: a continuation marker and a zero
// length.
var arrowEOS = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}

// arrowMessages cuts one chunk of the engine's ArrowStream output — a
// whole IPC stream: schema message, record batches, end marker — down to
// what joins it to the previous chunks: the first chunk keeps its schema,
// the others start at their first record batch, and none keeps its end
// marker. Every chunk of one query carries the same schema, and the
// engine is told not to write dictionaries, so no message needs decoding:
// the batches are copied as they are.
func arrowMessages(b []byte, first bool) ([]byte, error) {
	if len(b) < 16 || binary.LittleEndian.Uint32(b) != 0xffffffff || !bytes.Equal(b[len(b)-8:], arrowEOS) {
		return nil, fmt.Errorf("export: the engine's Arrow chunk is not a framed IPC stream")
	}
	if first {
		return b[:len(b)-8], nil
	}
	// The schema message: marker, metadata length, metadata (padded to 8
	// bytes); a schema has no body.
	end := 8 + int(int32(binary.LittleEndian.Uint32(b[4:])))
	if end < 8 || end > len(b)-8 {
		return nil, fmt.Errorf("export: the engine's Arrow schema message is cut")
	}
	return b[end : len(b)-8], nil
}
