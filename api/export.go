package api

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/query"
	"github.com/apimeter/apimeter/store"
)

// ExportBody is POST /export.
type ExportBody struct {
	bodyRequest
	Format  string     `json:"format"`
	Dataset string     `json:"dataset"`
	Fields  stringList `json:"fields"`
}

// export streams a dataset as a download. Everything that can be refused
// (fields, range, the row cap, one export too many) is checked before the
// first byte; a fault after that cuts the connection, so a client never
// mistakes a truncated file for a whole one.
func (a *Analytics) export(c echo.Context) error {
	var b ExportBody
	if err := decodeBody(c, &b); err != nil {
		return err
	}
	p, sc, rng, f, err := a.readBody(c, &b.bodyRequest)
	if err != nil {
		return err
	}
	if err := checkUserAccess(p, f, nil); err != nil {
		return err
	}
	if b.Dataset == "" {
		b.Dataset = string(query.DatasetEvents)
	}
	if b.Format == "" {
		return BadRequest("format: want csv, json, ndjson or arrow")
	}
	release, err := a.dl.admit(p)
	if err != nil {
		return err
	}
	defer release()
	if b.Dataset == "billing" {
		return a.exportBilling(c, b, sc, rng, f)
	}
	if b.Dataset == "sla" {
		return a.exportSLA(c, b, sc, rng, f)
	}
	// Exports use the engine's share for downloads: they never hold the
	// connections interactive requests need.
	ctx := store.WithClass(c.Request().Context(), store.Export)
	e, err := a.Query.PrepareExport(ctx, query.ExportRequest{Scope: sc, Range: rng, Dataset: query.Dataset(b.Dataset),
		Fields: b.Fields, Filters: f, Format: query.Format(strings.ToLower(b.Format)), MaxRows: a.ExportMaxRows})
	if err != nil {
		return queryError(err)
	}
	format := query.Format(strings.ToLower(b.Format))
	name := fmt.Sprintf("apimeter-%s-%s-%s.%s", b.Dataset, rng.Start.In(rng.Loc).Format("20060102T1504"),
		rng.End.In(rng.Loc).Format("20060102T1504"), format.Extension())
	h := downloadHeaders(c, format, name, e.Rows)
	h.Add(echo.HeaderVary, echo.HeaderAcceptEncoding)
	var w io.Writer = c.Response()
	var gz *gzip.Writer
	if acceptsGzip(c.Request().Header.Get(echo.HeaderAcceptEncoding)) {
		h.Set(echo.HeaderContentEncoding, "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		w = gz
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	c.Response().WriteHeader(http.StatusOK)
	err = a.dl.stream(ctx, e, bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("export stopped after the response began", "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// acceptsGzip reads Accept-Encoding: gzip unless its q is 0.
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// fixedExport checks an export of a report with fixed columns (bills,
// SLA reports): CSV, JSON or NDJSON, no field selection, no filters but
// the user. what names the report in messages, whole why filters do not
// apply.
func fixedExport(b ExportBody, f query.Filters, what string, columns []string, whole string) (query.Format, error) {
	format := query.Format(strings.ToLower(b.Format))
	switch format {
	case query.FormatCSV, query.FormatJSON, query.FormatNDJSON:
	default:
		return format, BadRequest("format %q: %s exports are csv, json or ndjson", b.Format, what)
	}
	if len(b.Fields) > 0 {
		return format, BadRequest("fields: %s exports have fixed columns: %s", what, strings.Join(columns, ", "))
	}
	if !f.Empty() {
		return format, BadRequest("filters: %s exports %s; name a user with userId", what, whole)
	}
	return format, nil
}

// downloadHeaders sets the headers of an export: its type, file name and
// row count, never cached.
func downloadHeaders(c echo.Context, format query.Format, name string, rows uint64) http.Header {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, format.ContentType())
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	h.Set("X-Export-Rows", strconv.FormatUint(rows, 10))
	h.Set("Cache-Control", "no-store")
	return h
}

// writeFixedExport sends n rows of a report with fixed columns: as CSV
// (the columns, then csvRow of each), a JSON array or NDJSON (jsonRow of
// each).
func writeFixedExport(c echo.Context, format query.Format, name string, columns []string, n int,
	csvRow func(i int) []string, jsonRow func(i int) []byte) error {
	downloadHeaders(c, format, name, uint64(n))
	c.Response().WriteHeader(http.StatusOK)
	w := bufio.NewWriter(c.Response())
	if format == query.FormatCSV {
		cw := csv.NewWriter(w)
		_ = cw.Write(columns)
		for i := range n {
			_ = cw.Write(csvRow(i))
		}
		cw.Flush()
		return w.Flush()
	}
	if format == query.FormatJSON {
		w.WriteString("[")
	}
	for i := range n {
		if format == query.FormatJSON && i > 0 {
			w.WriteString(",")
		}
		w.Write(jsonRow(i))
		if format == query.FormatNDJSON {
			w.WriteString("\n")
		}
	}
	if format == query.FormatJSON {
		w.WriteString("]")
	}
	return w.Flush()
}
