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
    {{.Agg.Requests}} AS requests,
    {{.Agg.Errors4xx}} AS errors_4xx,
    {{.Agg.Errors5xx}} AS errors_5xx,
    {{.Agg.TimeSum}} AS time_sum_us,
    {{.Agg.TimeMax}} AS time_max_us,
    {{.Agg.RequestBytes}} AS request_bytes,
    {{.Agg.ResponseBytes}} AS response_bytes
{{- if .Latency}},
    {{.Agg.Latency}} AS latency_us
{{- end}}
{{- if .Users}},
    {{.Agg.Users}} AS users
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
GROUP BY bucket_start{{range .Dims}}, {{.Alias}}{{end}}
{{- if .OrderBy}}
ORDER BY {{.OrderBy}}
{{- end}}
{{- if .Limit}}
LIMIT {{.Limit}}
{{- end}}
