package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/shopspring/decimal"

	"github.com/apimeter/apimeter/accounts"
	"github.com/apimeter/apimeter/auth"
	"github.com/apimeter/apimeter/limits"
	"github.com/apimeter/apimeter/monitor"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/schema"
)

// The OpenAPI 3 document is built from the handlers' own request and
// response types, so it cannot drift from what they send; the routes and
// their parameters are listed here, and a test checks them against the
// router and real responses.

type apiRoute struct {
	method, path, summary string
	// who may call: "user" (any key), "admin" (tenant and global
	// admins), "global" (global admins), "public" (no key needed).
	who      string
	params   []apiParam
	body     any // request body type, nil for none
	resp     any // 200/201 response type
	status   int
	download bool // a streamed file
	// bodyOptional: the route takes no body as well as one.
	bodyOptional bool
	// refusal, when set, is the body of the route's own 429 (a decision
	// that refuses the call), sent with the limit headers.
	refusal any
}

type apiParam struct {
	name, in, desc, typ string
	required            bool
	enum                []string
	// min and max bound an integer parameter (both 0: unbounded).
	min, max int64
}

// dateRule is the span every date and time of a request is held to
// (schema.InDateSpan), as the document states it.
var dateRule = schema.DateSpan + " (the date as written: in timezone, or in the time's own offset)"

var (
	pRange = []apiParam{
		{name: "startDate", in: "query", typ: "string", desc: "RFC 3339, or YYYY-MM-DD in timezone, " + dateRule + "; default 30 days before endDate"},
		{name: "endDate", in: "query", typ: "string", desc: "RFC 3339, or YYYY-MM-DD in timezone (that whole day included), " + dateRule + "; default the end of today"},
		{name: "timezone", in: "query", typ: "string", desc: "IANA time zone of dates and buckets; default UTC"},
	}
	pScope = []apiParam{
		{name: "tenantId", in: "query", typ: "string", desc: "global admins: narrow to one tenant"},
		{name: "userId", in: "query", typ: "string", desc: "admins: narrow to one user"},
	}
	// pBodyScope: routes with a JSON body also take the scope from the
	// query string; given in both places, it must agree. Any other query
	// parameter is a 400.
	pBodyScope = []apiParam{
		{name: "tenantId", in: "query", typ: "string", desc: "as the body's tenantId (the same value if both are given)"},
		{name: "userId", in: "query", typ: "string", desc: "as the body's userId (the same value if both are given)"},
	}
	pFilters = []apiParam{
		{name: "endpoint", in: "query", typ: "string", desc: "comma-separated or repeated"},
		{name: "method", in: "query", typ: "string", desc: "comma-separated or repeated"},
		{name: "statusCode", in: "query", typ: "string", desc: "comma-separated or repeated, 100-599"},
		{name: "statusClass", in: "query", typ: "string", desc: "comma-separated or repeated, 1-5 (2 = 2xx)"},
	}
)

func init() {
	for _, m := range ForwardAuthMethods {
		apiRoutes = append(apiRoutes, apiRoute{method: m, path: "/limits/forward-auth", who: "customer",
			summary: "The gateway check (NGINX auth_request, Caddy forward_auth, Traefik ForwardAuth, Envoy ext_authz): " +
				"decide the original call, named by X-Original-Method and X-Original-URI (or X-Forwarded-Method and X-Forwarded-Uri); " +
				"200 with the limit headers and X-Apimeter-Tenant, X-Apimeter-User and X-Apimeter-Decision for the upstream, 401 for a missing or unknown key, 429 (or 403 with X-Apimeter-Refused) when refused",
			params: []apiParam{
				{name: "X-Original-URI", in: "header", typ: "string", desc: "the original call's path and query (or X-Forwarded-Uri); required"},
				{name: "X-Original-Method", in: "header", typ: "string", desc: "the original call's method (or X-Forwarded-Method); default this request's"},
				{name: "X-Forwarded-Uri", in: "header", typ: "string", desc: "the original call's path and query, when X-Original-URI is absent"},
				{name: "X-Forwarded-Method", in: "header", typ: "string", desc: "the original call's method, when X-Original-Method is absent"},
				{name: "refusedStatus", in: "query", typ: "string", enum: []string{"429", "403"},
					desc: "the status of a refusal: 429 (default), or 403 with X-Apimeter-Refused for NGINX auth_request, which passes on only 2xx, 401 and 403"},
			},
			resp: ForwardAuthResponse{}, refusal: limits.Refusal{}})
	}
}

func params(groups ...[]apiParam) []apiParam {
	var out []apiParam
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

var apiRoutes = []apiRoute{
	{method: "GET", path: "/stats", who: "user", summary: "Totals, status classes, top endpoints and an optional series",
		params: params(pRange, pScope, pFilters, []apiParam{
			{name: "groupBy", in: "query", typ: "string", enum: []string{"hour", "day", "week", "month"}, desc: "add a series with these buckets"},
			{name: "limit", in: "query", typ: "integer", min: 1, max: 100, desc: "top endpoints, 1-100, default 10"},
		}), resp: StatsResponse{}},
	{method: "POST", path: "/time-series", who: "user", summary: "Series of points, every bucket present: counts 0 where nothing happened, rates and latencies null (nothing measured)", params: pBodyScope, body: SeriesBody{}, resp: SeriesJSON{}},
	{method: "GET", path: "/rate-limit", who: "user", summary: "The hourly limit (a sliding hour) and the plan's endpoint limits, as the limit headers count them", params: pScope, resp: RateLimitResponse{}},
	{method: "GET", path: "/quota", who: "user", summary: "The quotas of the current billing period, with a forecast of the period's end", params: pScope, resp: []QuotaLimit{}},
	{method: "GET", path: "/costs", who: "user", summary: "Bills of the current billing period and the ones before it, per endpoint",
		params: params(pScope, []apiParam{{name: "periods", in: "query", typ: "integer", min: 1, max: 24, desc: "how many periods, 1-24, default 3"}}), resp: CostsResponse{}},
	{method: "GET", path: "/sla", who: "user", summary: "A month's attainment of the service-level objectives per objective, tenant and indicator: error budgets, burn rates, worst hours",
		params: params(pScope, []apiParam{
			{name: "month", in: "query", typ: "string", desc: fmt.Sprintf("YYYY-MM, %d-01 to %d-12, not after the current month; default the current month in timezone", schema.FirstYear, schema.LastYear)},
			{name: "timezone", in: "query", typ: "string", desc: "IANA time zone of the month's days and hours; default UTC"},
			{name: "objective", in: "query", typ: "string", desc: "one objective by name; default every objective that applies"},
		}), resp: SLAResponse{}},
	{method: "POST", path: "/export", who: "user", summary: "A streamed download in Arrow IPC stream, CSV, JSON or NDJSON", params: pBodyScope, body: ExportBody{}, download: true},
	{method: "GET", path: "/endpoints/{endpoint}/analytics", who: "user", summary: "One endpoint's latency, errors, status codes, methods and series",
		params: params([]apiParam{{name: "endpoint", in: "path", typ: "string", required: true, desc: "URL-encoded, e.g. %2Fapi%2Fusers%2F%3Aid"},
			{name: "granularity", in: "query", typ: "string", enum: []string{"minute", "hour", "day", "week", "month"}}},
			pRange, pScope, []apiParam{pFilters[1], pFilters[2], pFilters[3]}),
		resp: EndpointResponse{}},
	{method: "GET", path: "/top-users", who: "admin", summary: "Users ranked by requests, errors, response time or bytes",
		params: params(pRange, pScope[:1], pFilters, []apiParam{
			{name: "sortBy", in: "query", typ: "string", enum: []string{"requests", "errors", "responseTime", "bytes"}},
			{name: "limit", in: "query", typ: "integer", min: 1, max: 1000, desc: "1-1000, default 10"},
		}), resp: TopUsersResponse{}},
	{method: "GET", path: "/dimensions", who: "user", summary: "The declared custom dimensions: busiest values, distinct values kept, requests folded past the cap or invalid (whole UTC hours)",
		params: params(pRange, pScope, []apiParam{
			{name: "limit", in: "query", typ: "integer", min: 1, max: 100, desc: "values per dimension, 1-100, default 10"},
		}), resp: DimensionsResponse{}},
	{method: "GET", path: "/system-metrics", who: "admin", summary: "Traffic, active users and endpoints; for global admins also ingest, dead letters and storage",
		params: pScope, resp: SystemMetrics{}},
	{method: "GET", path: "/health", who: "public", summary: "Health from the last five minutes; a key narrows it to what the key reads",
		params: pScope, resp: HealthResponse{}},
	{method: "POST", path: "/limits/check", who: "service", summary: "Decide one call of any API: counted when allowed (200), refused with the limit and Retry-After (429)",
		params: pBodyScope, body: CheckBody{}, resp: CheckResponse{}, refusal: CheckResponse{}},
	{method: "POST", path: "/events", who: "service", summary: "Records to Kafka, one or an array", body: json.RawMessage{}, resp: EventsResponse{}, status: http.StatusAccepted},
	{method: "POST", path: "/admin/keys", who: "admin", summary: "Issue a key (its secret is shown once)", body: KeyBody{}, resp: CreatedKey{}, status: http.StatusCreated},
	{method: "GET", path: "/admin/keys", who: "admin", summary: "List keys", params: pScope, resp: KeyList{}},
	{method: "DELETE", path: "/admin/keys/{keyId}", who: "admin", summary: "Revoke a key",
		params: []apiParam{{name: "keyId", in: "path", typ: "string", required: true}}, resp: auth.Key{}},
	{method: "PUT", path: "/admin/accounts/{userId}", who: "global", summary: "Set a user's plan, billing-cycle anchor day and quota mode",
		params: []apiParam{{name: "userId", in: "path", typ: "string", required: true}, pBodyScope[0]}, body: AccountBody{}, resp: accounts.Account{}},
	{method: "GET", path: "/admin/accounts", who: "admin", summary: "List accounts",
		params: []apiParam{pScope[0], {name: "plan", in: "query", typ: "string", desc: "only the accounts on this plan"}}, resp: AccountList{}},
	{method: "GET", path: "/admin/accounts/{userId}", who: "admin", summary: "A user's account",
		params: []apiParam{{name: "userId", in: "path", typ: "string", required: true}, {name: "tenantId", in: "query", typ: "string", desc: "global admins: the account's tenant (required)"}}, resp: accounts.Account{}},
	{method: "DELETE", path: "/admin/accounts/{userId}", who: "global", summary: "Delete a user's account (the default plan applies again)",
		params: []apiParam{{name: "userId", in: "path", typ: "string", required: true}, {name: "tenantId", in: "query", typ: "string", desc: "global admins: the account's tenant (required)"}}, status: http.StatusNoContent},
	{method: "GET", path: "/admin/incidents", who: "global", summary: "Incidents, newest first (global admins)",
		params: []apiParam{{name: "status", in: "query", typ: "string", enum: []string{"open", "investigating", "identified", "monitoring", "resolved"}},
			{name: "limit", in: "query", typ: "integer", min: 1, max: 1000, desc: "1-1000, default 100"}}, resp: IncidentList{}},
	{method: "GET", path: "/admin/incidents/{id}", who: "global", summary: "An incident with its timeline (global admins)",
		params: []apiParam{{name: "id", in: "path", typ: "string", required: true}}, resp: monitor.Incident{}},
	{method: "POST", path: "/admin/incidents/{id}/updates", who: "global", summary: "Add a timeline entry, optionally with a new status (global admins)",
		params: []apiParam{{name: "id", in: "path", typ: "string", required: true}}, body: IncidentUpdateBody{}, resp: monitor.Incident{}},
	{method: "POST", path: "/admin/incidents/{id}/resolve", who: "global", summary: "Resolve an incident by hand (global admins)",
		params: []apiParam{{name: "id", in: "path", typ: "string", required: true}}, body: IncidentUpdateBody{}, bodyOptional: true, resp: monitor.Incident{}},
	{method: "GET", path: "/admin/jobs", who: "global", summary: "Background jobs, their next runs and recent runs (global admins)",
		params: []apiParam{{name: "job", in: "query", typ: "string", desc: "one job's runs"}, {name: "limit", in: "query", typ: "integer", min: 1, max: 1000, desc: "1-1000, default 50"}}, resp: JobsResponse{}},
	{method: "POST", path: "/admin/jobs/{name}/run", who: "global", summary: "Run a job now on this replica (global admins)",
		params: []apiParam{{name: "name", in: "path", typ: "string", required: true}}, resp: JobRunResponse{}},
	{method: "GET", path: "/openapi.json", who: "public", summary: "This document"},
}

// callers are the roles that may call a route of each kind, as the
// document's x-roles lists them; other keys get a 403.
var callers = map[string][]string{
	"service":  {"service key", "tenant admin", "global admin"},
	"customer": {"user key", "tenant admin"},
	"user":     {"user key", "tenant admin", "global admin"},
	"admin":    {"tenant admin", "global admin"},
	"global":   {"global admin"},
}

var callerNotes = map[string]string{
	"service":  "A service key or a tenant admin acts for its own tenant's users; a global admin names the tenant. A user key gets 403.",
	"customer": "The end customer's own key (Authorization: Bearer): the call is decided for that key's tenant and user. A key of every tenant or a service key gets 403.",
	"user":     "A user key reads its own usage, a tenant admin its tenant's (narrowed with userId), a global admin every tenant's (narrowed with tenantId).",
	"admin":    "A tenant admin acts on its own tenant; a user key gets 403.",
	"global":   "An admin key of tenant *; other keys get 403.",
}

// fieldDocs describe fields of request and response types, by the name
// of the struct that declares them and the field's JSON name.
var fieldDocs = map[string]string{
	"bodyRequest.startDate": "RFC 3339, or YYYY-MM-DD in timezone, " + dateRule + "; default 30 days before endDate",
	"bodyRequest.endDate":   "RFC 3339, or YYYY-MM-DD in timezone (that whole day included), " + dateRule + "; default the end of today",
	"KeyBody.expiresAt":     "RFC 3339, after now, " + dateRule + "; absent: the key does not expire",
	"SeriesItem.group": "the group's value of each groupBy dimension. User ids are each tenant's own: over several tenants " +
		"(a global admin without tenantId) grouping by userId also groups by tenant, and the group has tenantId beside userId, " +
		"as /top-users names a user",
}

// KeyList is GET /admin/keys.
type KeyList struct {
	Keys []auth.Key `json:"keys"`
}

// EventsResponse is POST /events.
type EventsResponse struct {
	Accepted int        `json:"accepted"`
	Rejected []rejected `json:"rejected"`
}

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
)

func serveOpenAPI(c echo.Context) error {
	openAPIOnce.Do(func() { openAPIDoc, _ = json.MarshalIndent(OpenAPI(), "", "  ") })
	return c.JSONBlob(http.StatusOK, openAPIDoc)
}

// OpenAPI builds the document.
func OpenAPI() map[string]any {
	sg := &schemaGen{defs: map[string]any{}}
	paths := map[string]any{}
	for _, r := range apiRoutes {
		op := map[string]any{"summary": r.summary, "operationId": operationID(r)}
		if r.who == "public" {
			op["security"] = []any{}
		} else {
			roles := callers[r.who]
			op["x-roles"] = roles
			op["description"] = "Who may call: " + strings.Join(roles, " and ") + ". " + callerNotes[r.who]
		}
		var ps []any
		for _, p := range r.params {
			sch := map[string]any{"type": p.typ}
			if p.enum != nil {
				sch["enum"] = p.enum
			}
			if p.max > 0 {
				sch["minimum"], sch["maximum"] = p.min, p.max
			}
			ps = append(ps, map[string]any{"name": p.name, "in": p.in, "required": p.required, "description": p.desc, "schema": sch})
		}
		if ps != nil {
			op["parameters"] = ps
		}
		if r.body != nil {
			sg.request = true
			op["requestBody"] = map[string]any{"required": !r.bodyOptional, "content": map[string]any{"application/json": map[string]any{"schema": sg.schema(reflect.TypeOf(r.body))}}}
			sg.request = false
		}
		status := r.status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": "OK"}
		switch {
		case r.download:
			ok["content"] = map[string]any{
				"application/vnd.apache.arrow.stream": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}},
				"text/csv":                            map[string]any{"schema": map[string]any{"type": "string"}},
				"application/json":                    map[string]any{"schema": map[string]any{"type": "array", "items": map[string]any{"type": "object"}}},
				"application/x-ndjson":                map[string]any{"schema": map[string]any{"type": "string"}},
			}
			ok["headers"] = map[string]any{"X-Export-Rows": map[string]any{"schema": map[string]any{"type": "integer"}}}
		case status == http.StatusNoContent:
			ok["description"] = "Done; no body"
		case r.resp != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": sg.schema(reflect.TypeOf(r.resp))}}
		default:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		errRef := map[string]any{"description": "An error", "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorBody"}}}}
		responses := map[string]any{strconv.Itoa(status): ok, "4XX": errRef}
		if r.refusal != nil {
			refused := limitHeaders()
			refused["Retry-After"] = map[string]any{"description": "seconds until the call would fit", "schema": map[string]any{"type": "integer"}}
			ok["headers"] = limitHeaders()
			responses["429"] = map[string]any{"description": "A rate limit or the quota refuses the call", "headers": refused,
				"content": map[string]any{"application/json": map[string]any{"schema": sg.schema(reflect.TypeOf(r.refusal))}}}
			responses["503"] = map[string]any{"description": "The limits backend failed and APIMETER_LIMITS_FAIL=closed refuses calls meanwhile", "content": errRef["content"]}
		}
		if r.who == "user" || r.who == "public" { // limited routes (admins are exempt)
			headers := limitHeaders()
			if h, ok := ok["headers"].(map[string]any); ok {
				maps.Copy(headers, h)
			}
			ok["headers"] = headers
			refused := limitHeaders()
			refused["Retry-After"] = map[string]any{"description": "seconds until the request would fit", "schema": map[string]any{"type": "integer"}}
			// A plan's limit refuses with its Refusal body; the throttle of
			// invalid keys and the export caps with the plain error body.
			responses["429"] = map[string]any{"description": "A rate limit or the quota refused the request (the limit's body), " +
				"or, with the plain error body, this address sent too many invalid keys lately or (exports) the caller or the server runs as many exports as allowed",
				"headers": refused,
				"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"anyOf": []any{
					sg.schema(reflect.TypeOf(limits.Refusal{})), map[string]any{"$ref": "#/components/schemas/ErrorBody"}}}}}}
		}
		op["responses"] = responses
		item, _ := paths[r.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[r.path] = item
		}
		item[strings.ToLower(r.method)] = op
	}
	sg.defs["ErrorBody"] = map[string]any{"type": "object", "required": []string{"error"}, "properties": map[string]any{
		"error": map[string]any{"type": "object", "required": []string{"code", "message"}, "properties": map[string]any{
			"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}, "details": map[string]any{}}}}}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "apimeter analytics API", "version": "1"},
		"servers": []any{map[string]any{"url": BasePath}},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         sg.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an apimeter API key"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
}

// limitHeaders are the headers of a limited response.
func limitHeaders() map[string]any {
	h := map[string]any{}
	for name, desc := range map[string]string{
		limits.HeaderLimit: "the window's limit", limits.HeaderRemaining: "what is left of it", limits.HeaderReset: "when it next gives room back (ISO 8601 UTC)",
		limits.HeaderQuotaLimit: "the billing period's quota", limits.HeaderQuotaRemaining: "what is left of it", limits.HeaderQuotaReset: "when the period ends (ISO 8601 UTC)",
		limits.HeaderPolicy: "every policy: name;q=limit;w=window seconds", limits.HeaderRateLimit: "every policy: name;r=remaining;t=seconds to reset",
	} {
		h[name] = map[string]any{"description": desc, "schema": map[string]any{"type": "string"}}
	}
	return h
}

func operationID(r apiRoute) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(r.method))
	up := true
	for _, ch := range r.path {
		switch {
		case ch == '/' || ch == '-' || ch == '{' || ch == '}' || ch == '.':
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(ch)))
			up = false
		default:
			b.WriteRune(ch)
		}
	}
	return b.String()
}

// schemaGen turns Go types into JSON schemas, named structs into
// components.
type schemaGen struct {
	defs map[string]any
	// request marks the types of request bodies, whose fields are all
	// optional.
	request bool
}

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
	listType     = reflect.TypeFor[stringList]()
	pointType    = reflect.TypeFor[Point]()
)

var decimalType, moneyType = reflect.TypeOf(decimal.Decimal{}), reflect.TypeOf(plans.Money{})

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case rawType:
		return map[string]any{"description": "a JSON record or an array of records"}
	case decimalType, moneyType:
		return map[string]any{"type": "string", "format": "decimal", "description": "an exact decimal number, such as 12.50"}
	case pointType:
		return map[string]any{"type": "object", "required": []string{"time"},
			"properties": map[string]any{"time": map[string]any{"type": "string", "format": "date-time"}},
			"additionalProperties": map[string]any{"type": "number", "nullable": true,
				"description": "a metric's value in the bucket: counts are 0 where nothing happened; rates and latencies are null there (nothing was measured)"}}
	case listType:
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := g.schema(t.Elem())
		if _, ref := s["$ref"]; ref {
			return map[string]any{"allOf": []any{s}, "nullable": true}
		}
		s["nullable"] = true
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if name == "" { // an anonymous struct: inline, it has no name to share
			return g.object(t)
		}
		if _, done := g.defs[name]; !done {
			g.defs[name] = nil // break cycles
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// object is the schema of a struct's fields.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props, required := map[string]any{}, []string{}
	g.fields(t, props, &required)
	def := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		def["required"] = required
	}
	if g.request { // request bodies are decoded refusing unknown fields
		def["additionalProperties"] = false
	}
	return def
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			if f.Anonymous {
				g.fields(f.Type, props, required)
			}
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			g.fields(f.Type, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		for _, bound := range []string{"minimum", "maximum"} {
			if v := f.Tag.Get(bound); v != "" {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					panic(fmt.Sprintf("openapi: %s.%s: %s %q", t.Name(), name, bound, v))
				}
				props[name].(map[string]any)[bound] = n
			}
		}
		if d, ok := fieldDocs[t.Name()+"."+name]; ok {
			p := props[name].(map[string]any)
			if _, ref := p["$ref"]; ref {
				p = map[string]any{"allOf": []any{p}}
				props[name] = p
			}
			p["description"] = d
		}
		if g.request && f.Tag.Get("openapi") == "required" ||
			!g.request && !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}
