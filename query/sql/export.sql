{{- /*
An export of one dataset (export.go lists the fields and their
expressions per format). Rows come in storage order, part after part, so
memory stays flat however large the export (export.go says why).
*/ -}}
SELECT
{{- range $i, $f := .Fields}}{{if $i}},{{end}}
    {{$f.Expr}} AS `{{$f.Name}}`
{{- end}}
FROM {{.Table}}{{if .Final}} FINAL{{end}}
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
{{- if .OrderBy}}
ORDER BY {{.OrderBy}}
{{- end}}
{{- if .Settings}}
SETTINGS {{.Settings}}
{{- end}}
