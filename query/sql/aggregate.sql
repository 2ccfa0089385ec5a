{{- /*
Aggregates usage for one plan (plan.go chooses the source, the bucket and
dimension expressions, from fixed lists). Every value a request brings is a
{name:Type} parameter.
*/ -}}
SELECT
    {{.Bucket}} AS bucket_start
{{- range .Dims}},
    {{.Expr}} AS {{.Alias}}
{{- end}},
    {{.Agg.Requests}} AS agg_requests
{{- with .Agg.Errors4xx}},
    {{.}} AS agg_4xx
{{- end}}
{{- with .Agg.Errors5xx}},
    {{.}} AS agg_5xx
{{- end}}
{{- with .Agg.TimeSum}},
    {{.}} AS agg_time_sum
{{- end}}
{{- with .Agg.TimeMax}},
    {{.}} AS agg_time_max
{{- end}}
{{- with .Agg.RequestBytes}},
    {{.}} AS agg_request_bytes
{{- end}}
{{- with .Agg.ResponseBytes}},
    {{.}} AS agg_response_bytes
{{- end}}
{{- with .Agg.Cost}},
    {{.}} AS agg_cost
{{- end}}
{{- if .Latency}},
    {{.Agg.Latency}} AS agg_latency
{{- end}}
{{- if .Users}},
    {{.Agg.Users}} AS agg_users
{{- end}}
FROM {{.Table}}
WHERE {{.TimeCol}} >= {start:DateTime64(3, 'UTC')} AND {{.TimeCol}} < {end:DateTime64(3, 'UTC')}
{{- if .Tenant}}
  AND tenant_id = {tenant:String}
{{- end}}
{{- if .User}}
  AND user_id = {user:String}
{{- end}}
{{- range .Filters}}
  AND {{.Expr}} IN {{"{"}}{{.Param}}:{{.Type}}{{"}"}}
{{- end}}
{{- range .Conds}}
  AND {{.}}
{{- end}}
GROUP BY bucket_start{{range .Dims}}, {{.Alias}}{{end}}
{{- if .OrderBy}}
ORDER BY {{.OrderBy}}
{{- end}}
{{- if .Limit}}
LIMIT {{.Limit}}
{{- end}}
{{- if .Settings}}
SETTINGS {{.Settings}}
{{- end}}
