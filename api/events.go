package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/apimeter/apimeter/ingest"
)

// EventSink takes validated records on to Kafka (a *producer.Producer).
type EventSink interface {
	TrackRaw(data []byte)
}

// Limits of POST /events.
const (
	maxEventsBody    = 10 << 20
	maxEventsRecords = 10_000
)

// rejected is one refused record of a POST /events body.
type rejected struct {
	Index   int    `json:"index"`
	Reason  string `json:"reason"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// MountEvents adds POST /api/api-usage/events: one record or an array,
// checked with the ingester's decoder, the valid ones passed to sink (so
// producers without a Kafka client can send records). It answers 202
// with the number accepted and the records refused, with their reasons;
// 400 when none is accepted. auth is normally KeyAuth(keys, true): a
// tenant admin's key sends records of its own tenant only.
func (s *Server) MountEvents(sink EventSink, policy ingest.Policy, auth echo.MiddlewareFunc) {
	dec := ingest.NewDecoder(policy)
	s.echo.POST("/api/api-usage/events", func(c echo.Context) error {
		if err := jsonContentType(c); err != nil {
			return err
		}
		body, err := readBody(c, maxEventsBody)
		if err != nil {
			return err
		}
		items, err := splitRecords(body)
		if err != nil {
			return err
		}
		now := time.Now().UnixMilli()
		var refused []rejected
		var valid [][]byte
		var r ingest.Record
		for i, item := range items {
			src := ingest.Source{Topic: "http", Partition: -1, Offset: int64(i), TimestampMs: now}
			if rej := dec.Decode(item, src, &r); rej != nil {
				refused = append(refused, rejected{Index: i, Reason: string(rej.Reason), Field: rej.Field, Message: rej.Detail})
				continue
			}
			if p, ok := principal(c); ok && !p.Global() && r.TenantID != p.Tenant {
				refused = append(refused, rejected{Index: i, Reason: "forbidden_tenant", Field: "tenantId",
					Message: fmt.Sprintf("this key sends records of tenant %q only", p.Tenant)})
				continue
			}
			valid = append(valid, item)
		}
		if len(valid) == 0 {
			return &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Message: "no record was accepted", Details: refused}
		}
		for _, v := range valid {
			sink.TrackRaw(v)
		}
		if refused == nil {
			refused = []rejected{}
		}
		return c.JSON(http.StatusAccepted, map[string]any{"accepted": len(valid), "rejected": refused})
	}, auth)
}

// splitRecords reads a body holding one JSON object or an array of them.
func splitRecords(body []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, BadRequest("the body is empty: send a record or an array of records")
	}
	if trimmed[0] != '[' {
		return [][]byte{trimmed}, nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, BadRequest("the body is not a JSON array of records: %v", err)
	}
	if len(raw) == 0 {
		return nil, BadRequest("the array is empty")
	}
	if len(raw) > maxEventsRecords {
		return nil, BadRequest("%d records: at most %d in one request", len(raw), maxEventsRecords)
	}
	out := make([][]byte, len(raw))
	for i, r := range raw {
		out[i] = r
	}
	return out, nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}
