package query

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/apimeter/apimeter/ingest"
)

// rowsOnly hides the store's own output formats, so exports go through
// the Go encoders (what a ClickHouse server store does).
type rowsOnly struct{ DB }

var allFormats = []Format{FormatArrow, FormatCSV, FormatJSON, FormatNDJSON}

// exportPaths are the two ways an export is encoded: the engine's own
// writer (cut into small blocks, so the chunks must be joined) and the
// Go encoders.
func exportPaths(fx *fixture) map[string]*Service {
	engine := New(fx.db, Limits{})
	engine.exportBlockRows = 997
	return map[string]*Service{"engine": engine, "go": New(rowsOnly{fx.db}, Limits{})}
}

// readExport decodes an export into rows of field name → value, with
// numbers as float64, times as Unix milliseconds and maps as
// map[string]string, whatever the format.
func readExport(t *testing.T, f Format, data []byte) (names []string, rows []map[string]any) {
	t.Helper()
	switch f {
	case FormatArrow:
		r, err := ipc.NewReader(bytes.NewReader(data))
		require.NoError(t, err)
		defer r.Release()
		for _, fl := range r.Schema().Fields() {
			names = append(names, fl.Name)
		}
		for r.Next() {
			rec := r.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				row := map[string]any{}
				for c, col := range rec.Columns() {
					row[names[c]] = arrowValue(t, col, i)
				}
				rows = append(rows, row)
			}
		}
		require.NoError(t, r.Err())
	case FormatCSV:
		recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		require.NoError(t, err)
		require.NotEmpty(t, recs, "a CSV export has a header row")
		names = recs[0]
		for _, rec := range recs[1:] {
			row := map[string]any{}
			for i, cell := range rec {
				row[names[i]] = textValue(t, names[i], cell)
			}
			rows = append(rows, row)
		}
	case FormatJSON, FormatNDJSON:
		var objs []json.RawMessage
		if f == FormatJSON {
			require.NoError(t, json.Unmarshal(data, &objs))
		} else {
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				objs = append(objs, append(json.RawMessage(nil), sc.Bytes()...))
			}
			require.NoError(t, sc.Err())
			require.Equal(t, len(objs), bytes.Count(data, []byte("\n")), "one object a line")
		}
		for _, o := range objs {
			// Field order is part of the format: read the keys in order.
			dec := json.NewDecoder(bytes.NewReader(o))
			dec.UseNumber()
			_, err := dec.Token()
			require.NoError(t, err)
			var keys []string
			row := map[string]any{}
			for dec.More() {
				k, err := dec.Token()
				require.NoError(t, err)
				var v any
				require.NoError(t, dec.Decode(&v))
				keys = append(keys, k.(string))
				row[k.(string)] = jsonTestValue(t, k.(string), v)
			}
			if names == nil {
				names = keys
			}
			require.Equal(t, names, keys)
			rows = append(rows, row)
		}
	}
	return names, rows
}

var timeFields = map[string]bool{"timestamp": true, "ingestedAt": true, "storedAt": true, "bucket": true}

func textValue(t *testing.T, name, s string) any {
	t.Helper()
	switch {
	case timeFields[name]:
		ts, err := time.Parse(rfc3339Millis, s)
		require.NoError(t, err, name)
		return ts.UnixMilli()
	case name == "metadata":
		var m map[string]string
		require.NoError(t, json.Unmarshal([]byte(s), &m), s)
		return m
	}
	if x, err := strconv.ParseFloat(s, 64); err == nil && name != "id" && name != "userId" && name != "apiKeyId" {
		return x
	}
	return s
}

func jsonTestValue(t *testing.T, name string, v any) any {
	t.Helper()
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		require.NoError(t, err)
		return f
	case string:
		if timeFields[name] {
			ts, err := time.Parse(rfc3339Millis, x)
			require.NoError(t, err, name)
			return ts.UnixMilli()
		}
		return x
	case map[string]any:
		m := map[string]string{}
		for k, v := range x {
			m[k] = v.(string)
		}
		return m
	}
	t.Fatalf("%s: unexpected JSON value %T", name, v)
	return nil
}

func arrowValue(t *testing.T, col arrow.Array, i int) any {
	t.Helper()
	switch c := col.(type) {
	case *array.String:
		return c.Value(i)
	case *array.Uint16:
		return float64(c.Value(i))
	case *array.Uint64:
		return float64(c.Value(i))
	case *array.Float64:
		return c.Value(i)
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		require.Equal(t, arrow.Millisecond, unit)
		return int64(c.Value(i))
	case *array.Map:
		m := map[string]string{}
		start, end := c.ValueOffsets(i)
		keys, items := c.Keys().(*array.String), c.Items().(*array.String)
		for j := start; j < end; j++ {
			m[keys.Value(int(j))] = items.Value(int(j))
		}
		return m
	}
	t.Fatalf("unexpected Arrow column %T", col)
	return nil
}

// recordRow is a raw record as the events dataset shows it.
func recordRow(r *ingest.Record) map[string]any {
	md := map[string]string{}
	maps.Copy(md, r.Metadata)
	return map[string]any{
		"id": r.ID, "timestamp": r.EventTimeMs, "tenantId": r.TenantID, "userId": r.UserID, "apiKeyId": r.APIKeyID,
		"endpoint": r.Endpoint, "method": r.Method, "statusCode": float64(r.StatusCode),
		"responseTimeMs": float64(r.ResponseTimeUs) / 1000, "requestBytes": float64(r.RequestBytes),
		"responseBytes": float64(r.ResponseBytes), "metadata": md, "ingestedAt": r.IngestedAtMs,
	}
}

func runExport(t *testing.T, svc *Service, req ExportRequest) ([]byte, *Export) {
	t.Helper()
	e, err := svc.PrepareExport(context.Background(), req)
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, e.WriteTo(context.Background(), &b))
	return b.Bytes(), e
}

func TestExportEventsEqualTheRawRecords(t *testing.T) {
	fx := loadFixture(t)
	sc := Scope{Tenant: fx.records[0].TenantID}
	rng := Range{fx.start.Add(11 * time.Hour), fx.start.Add(59 * time.Hour), time.UTC}
	want := map[string]map[string]any{}
	for i := range fx.records {
		if matches(&fx.records[i], sc, Filters{}, rng) {
			want[fx.records[i].ID] = recordRow(&fx.records[i])
		}
	}
	require.Greater(t, len(want), 5000, "the range holds many blocks of rows")
	for path, svc := range exportPaths(fx) {
		for _, f := range allFormats {
			t.Run(path+"/"+string(f), func(t *testing.T) {
				data, e := runExport(t, svc, ExportRequest{Scope: sc, Range: rng, Dataset: DatasetEvents, Format: f})
				require.EqualValues(t, len(want), e.Rows)
				if path == "engine" {
					require.Greater(t, e.chunks, 1, "the engine's output came in several chunks")
				}
				names, rows := readExport(t, f, data)
				require.Equal(t, FieldNames(DatasetEvents), names)
				require.Len(t, rows, len(want))
				seen := map[string]bool{}
				for _, row := range rows {
					id := row["id"].(string)
					exp, ok := want[id]
					require.True(t, ok, "row %s is not in the scope and range", id)
					require.False(t, seen[id], "row %s twice", id)
					seen[id] = true
					stored := row["storedAt"].(int64)
					require.GreaterOrEqual(t, stored, int64(0))
					for k, v := range exp {
						if x, ok := v.(float64); ok {
							require.InDelta(t, x, row[k], 1e-9*max(1, math.Abs(x)), "%s.%s", id, k)
						} else {
							require.Equal(t, v, row[k], "%s.%s", id, k)
						}
					}
				}
			})
		}
	}
}

func TestExportRollupsSumToTheRecords(t *testing.T) {
	fx := loadFixture(t)
	sc := Scope{Tenant: fx.records[1].TenantID, User: fx.records[1].UserID}
	berlin := mustLoc(t, "Europe/Berlin")
	rng := Range{fx.start, fx.end, berlin}
	for _, ds := range []Dataset{DatasetHourly, DatasetDaily} {
		grain := map[Dataset]time.Duration{DatasetHourly: time.Hour, DatasetDaily: 24 * time.Hour}[ds]
		want := map[string]*expected{}
		for i := range fx.records {
			r := &fx.records[i]
			if !matches(r, sc, Filters{}, rng) {
				continue
			}
			b := time.UnixMilli(r.EventTimeMs).UTC().Truncate(grain).UnixMilli()
			k := fmt.Sprintf("%d|%s|%s|%d", b, r.Endpoint, r.Method, r.StatusCode)
			if want[k] == nil {
				want[k] = &expected{}
			}
			want[k].add(r)
		}
		for path, svc := range exportPaths(fx) {
			for _, f := range allFormats {
				t.Run(string(ds)+"/"+path+"/"+string(f), func(t *testing.T) {
					data, _ := runExport(t, svc, ExportRequest{Scope: sc, Range: rng, Dataset: ds, Format: f})
					names, rows := readExport(t, f, data)
					require.Equal(t, FieldNames(ds), names)
					require.Len(t, rows, len(want))
					for _, row := range rows {
						k := fmt.Sprintf("%d|%s|%s|%v", row["bucket"], row["endpoint"], row["method"], row["statusCode"])
						e := want[k]
						require.NotNil(t, e, k)
						require.Equal(t, sc.User, row["userId"])
						require.Equal(t, float64(e.requests), row["requests"], k)
						require.Equal(t, float64(e.e5), row["errors"], k)
						require.Equal(t, float64(e.e4), row["clientErrors"], k)
						require.InDelta(t, float64(e.sum)/1000, row["responseTimeSumMs"], 1e-6, k)
						require.InDelta(t, float64(e.max)/1000, row["maxResponseTimeMs"], 1e-9, k)
						require.InDelta(t, float64(e.sum)/float64(e.requests)/1000, row["averageResponseTimeMs"], 1e-6, k)
						require.Equal(t, float64(e.req), row["requestBytes"], k)
						require.Equal(t, float64(e.resp), row["responseBytes"], k)
					}
				})
			}
		}
	}
}

func TestExportFieldsFiltersEmptyAndRefusals(t *testing.T) {
	fx := loadFixture(t)
	ctx := context.Background()
	sc := Scope{Tenant: fx.records[2].TenantID}
	rng := Range{fx.start, fx.end, time.UTC}
	filters := Filters{Endpoint: []string{fx.records[2].Endpoint}, StatusClass: []int{2}}
	n := 0
	for i := range fx.records {
		if matches(&fx.records[i], sc, filters, rng) {
			n++
		}
	}
	require.Positive(t, n)
	for path, svc := range exportPaths(fx) {
		for _, f := range allFormats {
			t.Run(path+"/"+string(f), func(t *testing.T) {
				data, _ := runExport(t, svc, ExportRequest{Scope: sc, Range: rng, Dataset: DatasetEvents, Format: f,
					Fields: []string{"statusCode", "id", "endpoint"}, Filters: filters})
				names, rows := readExport(t, f, data)
				require.Equal(t, []string{"statusCode", "id", "endpoint"}, names)
				require.Len(t, rows, n)
				for _, row := range rows {
					require.Equal(t, filters.Endpoint[0], row["endpoint"])
					require.EqualValues(t, 2, int(row["statusCode"].(float64))/100)
				}

				// Nothing in range: still a well-formed document.
				empty := Range{fx.start.AddDate(-1, 0, 0), fx.start.AddDate(-1, 0, 1), time.UTC}
				data, e := runExport(t, svc, ExportRequest{Scope: sc, Range: empty, Dataset: DatasetDaily, Format: f})
				require.Zero(t, e.Rows)
				names, rows = readExport(t, f, data)
				require.Empty(t, rows)
				if f == FormatArrow || f == FormatCSV {
					require.Equal(t, FieldNames(DatasetDaily), names)
				}
			})
		}
	}
	svc := New(fx.db, Limits{})
	for name, req := range map[string]ExportRequest{
		"unknown field":   {Dataset: DatasetEvents, Format: FormatCSV, Fields: []string{"password"}},
		"field twice":     {Dataset: DatasetEvents, Format: FormatCSV, Fields: []string{"id", "id"}},
		"rollup field":    {Dataset: DatasetEvents, Format: FormatCSV, Fields: []string{"requests"}},
		"unknown dataset": {Dataset: "minutes", Format: FormatCSV},
		"unknown format":  {Dataset: DatasetEvents, Format: "xlsx"},
		"over the cap":    {Dataset: DatasetEvents, Format: FormatArrow, MaxRows: uint64(n) - 1, Filters: filters},
	} {
		req.Scope, req.Range = sc, rng
		_, err := svc.PrepareExport(ctx, req)
		require.Error(t, err, name)
		require.True(t, IsInvalid(err), "%s: %v", name, err)
	}
	_, err := svc.PrepareExport(ctx, ExportRequest{Scope: sc, Range: rng, Dataset: DatasetEvents, Format: FormatArrow, MaxRows: uint64(n), Filters: filters})
	require.NoError(t, err, "exactly at the cap")
}

// stopAfter fails writes after limit bytes, the way a client that went
// away does, and cancels the request's context.
type stopAfter struct {
	limit, n int
	cancel   context.CancelFunc
}

func (s *stopAfter) Write(p []byte) (int, error) {
	s.n += len(p)
	if s.n > s.limit {
		s.cancel()
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

func TestExportStopsWhenTheClientGoesAway(t *testing.T) {
	fx := loadFixture(t)
	for path, svc := range exportPaths(fx) {
		for _, f := range allFormats {
			t.Run(path+"/"+string(f), func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				req := ExportRequest{Range: Range{fx.start, fx.end, time.UTC}, Dataset: DatasetEvents, Format: f}
				whole, _ := runExport(t, svc, req)
				e, err := svc.PrepareExport(ctx, req)
				require.NoError(t, err)
				w := &stopAfter{limit: 64 << 10, cancel: cancel}
				err = e.WriteTo(ctx, w)
				require.Error(t, err)
				require.Less(t, w.n, len(whole)/2, "the export stopped soon after the client left")
				// The store is still usable: the connection went back.
				for range 5 {
					rows, err := fx.db.Query(context.Background(), "SELECT count() FROM usage_events")
					require.NoError(t, err)
					require.True(t, rows.Next())
					rows.Close()
				}
			})
		}
	}
}

func TestArrowChunksMustBeFramedStreams(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("not arrow at all"), append(bytes.Repeat([]byte{0xff}, 12), arrowEOS...)} {
		_, err := arrowMessages(b, false)
		require.Error(t, err, "%x", b)
	}
	// A schema message whose length runs past the chunk.
	cut := append([]byte{0xff, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0}, arrowEOS...)
	_, err := arrowMessages(cut, false)
	require.Error(t, err)
	msgs, err := arrowMessages(cut, true)
	require.NoError(t, err, "the first chunk keeps everything but its end marker")
	require.Equal(t, cut[:8], msgs)
}
