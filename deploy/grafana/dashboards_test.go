package grafana

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/ingest"
	"github.com/apimeter/apimeter/schema"
	"github.com/apimeter/apimeter/store"
	"github.com/apimeter/apimeter/store/storetest"
)

// The dashboards cannot be loaded into Grafana here, so these tests check
// their structure and run every query: each panel's SQL is expanded the way
// the ClickHouse data source expands it for a fixed time range and fixed
// variable values, then executed against generated data.

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string         `json:"refId"`
	Datasource *datasourceRef `json:"datasource"`
	RawSQL     string         `json:"rawSql"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	Targets    []target       `json:"targets"`
	Panels     []panel        `json:"panels"`
}

type variable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Datasource *datasourceRef `json:"datasource"`
	Query      string         `json:"query"`
	IncludeAll bool           `json:"includeAll"`
	Multi      bool           `json:"multi"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// flat lists the panels with those nested in rows.
func (d *dashboard) flat() []panel {
	var out []panel
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func provisionedUID(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("provisioning/datasources/clickhouse.yaml")
	require.NoError(t, err)
	var f struct {
		Datasources []struct {
			Type     string            `yaml:"type"`
			UID      string            `yaml:"uid"`
			JSONData map[string]string `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &f))
	require.Len(t, f.Datasources, 1)
	ds := f.Datasources[0]
	require.Equal(t, "grafana-clickhouse-datasource", ds.Type)
	require.Equal(t, "native", ds.JSONData["protocol"])
	require.Equal(t, "${CLICKHOUSE_HOST}", ds.JSONData["host"])
	require.Equal(t, "${CLICKHOUSE_PORT}", ds.JSONData["port"])
	require.Equal(t, "${CLICKHOUSE_DATABASE}", ds.JSONData["defaultDatabase"])
	require.NotEmpty(t, ds.UID)
	return ds.UID
}

func loadDashboards(t *testing.T) map[string]*dashboard {
	t.Helper()
	files, err := filepath.Glob("dashboards/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]*dashboard{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		d := &dashboard{}
		require.NoError(t, json.Unmarshal(raw, d), f)
		out[filepath.Base(f)] = d
	}
	return out
}

func TestDashboardProvider(t *testing.T) {
	raw, err := os.ReadFile("provisioning/dashboards/apimeter.yaml")
	require.NoError(t, err)
	var f struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &f))
	require.Len(t, f.Providers, 1)
	require.Equal(t, "file", f.Providers[0].Type)
	require.Equal(t, "/var/lib/grafana/dashboards/apimeter", f.Providers[0].Options.Path)
}

func TestDashboardStructure(t *testing.T) {
	uid := provisionedUID(t)
	uids := map[string]string{}
	for name, d := range loadDashboards(t) {
		require.NotEmpty(t, d.UID, name)
		require.Empty(t, uids[d.UID], "%s: dashboard uid %q also in %s", name, d.UID, uids[d.UID])
		uids[d.UID] = name

		ids := map[int]string{}
		queries := 0
		for _, p := range d.flat() {
			require.NotZero(t, p.ID, "%s: panel %q has no id", name, p.Title)
			require.Empty(t, ids[p.ID], "%s: panel id %d used by %q and %q", name, p.ID, ids[p.ID], p.Title)
			ids[p.ID] = p.Title
			if p.Type == "row" {
				require.Empty(t, p.Targets, "%s: row %q", name, p.Title)
				continue
			}
			require.NotNil(t, p.Datasource, "%s: panel %q", name, p.Title)
			require.Equal(t, uid, p.Datasource.UID, "%s: panel %q", name, p.Title)
			require.NotEmpty(t, p.Targets, "%s: panel %q has no query", name, p.Title)
			for _, tg := range p.Targets {
				require.NotNil(t, tg.Datasource, "%s: panel %q target %s", name, p.Title, tg.RefID)
				require.Equal(t, uid, tg.Datasource.UID, "%s: panel %q target %s", name, p.Title, tg.RefID)
				require.NotEmpty(t, strings.TrimSpace(tg.RawSQL), "%s: panel %q target %s", name, p.Title, tg.RefID)
				queries++
			}
		}
		require.NotZero(t, queries, name)

		vars := map[string]variable{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v
		}
		for _, want := range []string{"tenant", "user", "endpoint"} {
			v, ok := vars[want]
			require.True(t, ok, "%s: no template variable %q", name, want)
			require.Equal(t, "query", v.Type, "%s: variable %s", name, want)
			require.True(t, v.IncludeAll, "%s: variable %s has no All option", name, want)
			require.NotNil(t, v.Datasource, "%s: variable %s", name, want)
			require.Equal(t, uid, v.Datasource.UID, "%s: variable %s", name, want)
			require.NotEmpty(t, v.Query, "%s: variable %s", name, want)
		}
	}
}

// expander rewrites a query the way the data source does before sending it.
type expander struct {
	from, to time.Time
	interval time.Duration
	// values holds every variable's values; chosen the selection, nil for
	// All.
	values map[string][]string
	chosen map[string][]string
}

func (e *expander) all(name string) bool { return e.chosen[name] == nil }

// args splits the arguments of a macro call starting at s[open] == '('
// at its top-level commas and returns them with the index past ')'.
func args(s string, open int) ([]string, int, error) {
	depth, start := 0, open+1
	var out []string
	inQuote := false
	for i := open; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && (i == 0 || s[i-1] != '\\'):
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				return out, i + 1, nil
			}
		case c == ',' && depth == 1:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return nil, 0, fmt.Errorf("unbalanced macro call at %q", s[open:])
}

// replaceCalls replaces every call of macro (name including "$__") by
// what fn returns for its arguments.
func replaceCalls(s, macro string, fn func(a []string) (string, error)) (string, error) {
	for {
		i := strings.Index(s, macro+"(")
		if i < 0 {
			return s, nil
		}
		a, end, err := args(s, i+len(macro))
		if err != nil {
			return "", err
		}
		rep, err := fn(a)
		if err != nil {
			return "", fmt.Errorf("%s: %w", macro, err)
		}
		s = s[:i] + rep + s[end:]
	}
}

var varRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

func quote(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return strings.Join(q, ",")
}

func (e *expander) expand(sql string) (string, error) {
	var err error
	// $__conditionalAll(condition, $var): the condition, or 1=1 when the
	// variable is set to All.
	sql, err = replaceCalls(sql, "$__conditionalAll", func(a []string) (string, error) {
		if len(a) < 2 {
			return "", fmt.Errorf("want a condition and a variable, got %q", a)
		}
		name := strings.Trim(strings.TrimPrefix(a[len(a)-1], "$"), "{}")
		if _, ok := e.values[name]; !ok {
			return "", fmt.Errorf("unknown variable %q", name)
		}
		if e.all(name) {
			return "1=1", nil
		}
		return strings.Join(a[:len(a)-1], ", "), nil
	})
	if err != nil {
		return "", err
	}
	from, to := strconv.FormatInt(e.from.Unix(), 10), strconv.FormatInt(e.to.Unix(), 10)
	secs := strconv.FormatInt(int64(e.interval/time.Second), 10)
	sql, err = replaceCalls(sql, "$__timeFilter", func(a []string) (string, error) {
		if len(a) != 1 {
			return "", fmt.Errorf("want one column, got %q", a)
		}
		return fmt.Sprintf("%s >= toDateTime(%s) AND %s <= toDateTime(%s)", a[0], from, a[0], to), nil
	})
	if err != nil {
		return "", err
	}
	sql, err = replaceCalls(sql, "$__timeInterval", func(a []string) (string, error) {
		if len(a) != 1 {
			return "", fmt.Errorf("want one column, got %q", a)
		}
		return fmt.Sprintf("toStartOfInterval(toDateTime(%s), INTERVAL %s second)", a[0], secs), nil
	})
	if err != nil {
		return "", err
	}
	sql = strings.NewReplacer(
		"$__fromTime", "toDateTime("+from+")",
		"$__toTime", "toDateTime("+to+")",
		"$__interval_s", secs,
	).Replace(sql)
	var bad error
	sql = varRef.ReplaceAllStringFunc(sql, func(m string) string {
		sub := varRef.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		vals, ok := e.values[name]
		if !ok {
			if bad == nil {
				bad = fmt.Errorf("unknown variable or macro %q", m)
			}
			return m
		}
		if !e.all(name) {
			vals = e.chosen[name]
		}
		if len(vals) == 0 {
			// Grafana sends an empty selection as no value.
			return "''"
		}
		return quote(vals)
	})
	if bad != nil {
		return "", bad
	}
	if i := strings.Index(sql, "$"); i >= 0 {
		return "", fmt.Errorf("unexpanded %q", sql[i:min(len(sql), i+30)])
	}
	return sql, nil
}

var (
	rangeFrom = time.Date(2026, 11, 19, 6, 0, 0, 0, time.UTC)
	rangeTo   = time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC)
	dataStart = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
)

// seed loads generated records and the other tables the panels read; it
// returns how many (tenant, user) pairs the records have.
func seed(t *testing.T, db store.Driver) int {
	t.Helper()
	ctx := context.Background()
	g := ingest.NewGenerator(ingest.GeneratorConfig{Seed: 11, Tenants: 3, Users: 12, Endpoints: 6, Start: dataStart, Span: 24 * time.Hour, Count: 6000})
	var cols ingest.UsageColumns
	var r ingest.Record
	// Custom dimensions as the ingester folds them: the generator's four
	// regions under a cap of three per tenant, so __other__ shows too.
	folder := dims.NewFolder([]dims.Spec{{Name: "region", Type: dims.TypeString, Cap: 3}}, nil)
	pairs := map[[2]string]bool{}
	for g.Next(&r) {
		if r.Type != ingest.TypeFeature {
			r.Dimensions = folder.Fold(r.TenantID, r.Metadata)
			cols.Append(&r)
			pairs[[2]string{r.TenantID, r.UserID}] = true
		}
	}
	require.NotZero(t, cols.Len())
	require.NoError(t, db.Insert(ctx, "usage_events", cols.Block(), store.InsertOptions{DedupToken: "x"}))

	// Accounts for some users of every tenant (the rest default to free),
	// one replaced by a newer version and one deleted.
	var tenants []string
	rows, err := db.Query(ctx, "SELECT DISTINCT tenant_id FROM usage_events ORDER BY tenant_id")
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		tenants = append(tenants, s)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	require.NotEmpty(t, tenants)
	var accounts []string
	for i, tenant := range tenants {
		accounts = append(accounts, fmt.Sprintf(`
			SELECT '%[1]s', user_id, ['starter', 'pro', 'enterprise', 'free'][(rowNumberInAllBlocks() %% 4) + 1], %[2]d, 'hard',
			       now64(3), now64(3), 1, 0
			FROM (SELECT DISTINCT user_id FROM usage_events WHERE tenant_id = '%[1]s' ORDER BY user_id LIMIT 4)`, tenant, 1+i*9))
	}
	require.NoError(t, db.Exec(ctx, `INSERT INTO accounts (tenant_id, user_id, plan, billing_anchor_day, quota_mode, created_at, updated_at, version, deleted)
		`+strings.Join(accounts, " UNION ALL ")))
	require.NoError(t, db.Exec(ctx, `INSERT INTO accounts (tenant_id, user_id, plan, billing_anchor_day, quota_mode, created_at, updated_at, version, deleted)
		SELECT tenant_id, user_id, 'pro', billing_anchor_day, quota_mode, created_at, now64(3), 2, user_id = (SELECT min(user_id) FROM accounts)
		FROM accounts FINAL LIMIT 2`))

	require.NoError(t, db.Exec(ctx, fmt.Sprintf(`INSERT INTO incidents (id, tenant_id, title, description, severity, status, scope, endpoint, dedup_key, started_at, resolved_at, updated_at, version) VALUES
		('inc-1', '', 'API error rate above 10 %%', '', 'major', 'investigating', 'global', '', 'global', '2026-11-20 10:00:00', NULL, '2026-11-20 10:00:00', 1),
		('inc-1', '', 'API error rate above 10 %%', '', 'major', 'resolved', 'global', '', 'global', '2026-11-20 10:00:00', '2026-11-20 10:40:00', '2026-11-20 10:40:00', 2),
		('inc-2', '%[1]s', 'Slow endpoint', '', 'minor', 'monitoring', 'endpoint',
		 (SELECT any(endpoint) FROM usage_events), 'endpoint', '2026-11-20 14:00:00', NULL, '2026-11-20 14:00:00', 1),
		('inc-3', '', 'Long resolved', '', 'minor', 'resolved', 'global', '', 'old', '2026-10-01 00:00:00', '2026-10-02 00:00:00', '2026-10-02 00:00:00', 1)`, tenants[0])))
	require.NoError(t, db.Exec(ctx, `INSERT INTO health_states (subject, scope, endpoint, method, status, since, degraded_checks, incident_id, error_rate, avg_response_ms, requests, version)
		SELECT 'global', 'global', '', '', 'healthy', '2026-11-20 10:40:00', 0, '', 1.5, 120, 5000, 2
		UNION ALL
		SELECT concat('endpoint:', method, ' ', endpoint), 'endpoint', endpoint, method, if(rowNumberInAllBlocks() = 0, 'degraded', 'healthy'),
		       '2026-11-20 14:00:00', 2, '', 4.2, 300, 40, 1
		FROM (SELECT DISTINCT endpoint, method FROM usage_events ORDER BY endpoint, method)`))
	require.NoError(t, db.Exec(ctx, `INSERT INTO ingest_batches (kafka_topic, kafka_partition, first_offset, last_offset, messages, records, features, rejected, duplicates, bytes, min_event_time, max_event_time, load_ms, replay, loaded_at)
		SELECT 'api-usage', number % 4, number * 100, number * 100 + 99, 100, 97, 1, 1, 1, 50000,
		       toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + toIntervalMinute(number * 10),
		       toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + toIntervalMinute(number * 10 + 9),
		       40 + number % 17, number % 50 = 7,
		       toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + toIntervalSecond(number * 600 + 600 + number % 30)
		FROM numbers(144)`))
	require.NoError(t, db.Exec(ctx, `INSERT INTO ingest_rejections (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, reason, field, detail, size, sample, rejected_at)
		SELECT 'api-usage', number % 4, number * 100 + 5, toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + toIntervalMinute(number * 10),
		       ['invalid_json', 'missing_field', 'bad_value'][number % 3 + 1], ['', 'user_id', 'status_code'][number % 3 + 1],
		       'cannot read the record', 120, '{"tenant_id":', toDateTime64('2026-11-20 00:00:00', 3, 'UTC') + toIntervalMinute(number * 10 + 1)
		FROM numbers(30)`))
	return len(pairs)
}

// run executes sql and returns the number of rows.
func run(t *testing.T, db store.Driver, sql string) (int, [][]any) {
	t.Helper()
	rows, err := db.Query(context.Background(), sql)
	require.NoError(t, err, sql)
	defer rows.Close()
	n := 0
	var first [][]any
	for rows.Next() {
		if n < 3 {
			first = append(first, append([]any(nil), rows.Values()...))
		}
		n++
	}
	require.NoError(t, rows.Err(), sql)
	return n, first
}

func TestDashboardQueriesRun(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	m, err := schema.NewMigrator(db, schema.Single, nil)
	require.NoError(t, err)
	_, err = m.Apply(ctx)
	require.NoError(t, err)
	pairs := seed(t, db)

	type selection map[string][]string
	for name, d := range loadDashboards(t) {
		// Variables in dashboard order; each may read the ones before it.
		values := func(sel selection) *expander {
			e := &expander{from: rangeFrom, to: rangeTo, interval: 10 * time.Minute,
				values: map[string][]string{}, chosen: map[string][]string{}}
			for _, v := range d.Templating.List {
				e.values[v.Name] = nil
			}
			for _, v := range d.Templating.List {
				if v.Type != "query" {
					continue
				}
				sql, err := e.expand(v.Query)
				require.NoError(t, err, "%s: variable %s", name, v.Name)
				rows, err := db.Query(ctx, sql)
				require.NoError(t, err, "%s: variable %s: %s", name, v.Name, sql)
				var vals []string
				for rows.Next() {
					var s string
					require.NoError(t, rows.Scan(&s))
					vals = append(vals, s)
				}
				require.NoError(t, rows.Err())
				rows.Close()
				require.NotEmpty(t, vals, "%s: variable %s has no values: %s", name, v.Name, sql)
				e.values[v.Name] = vals
				if pick, ok := sel[v.Name]; ok {
					if pick == nil {
						pick = vals[:1] // the first value offered
					}
					e.chosen[v.Name] = pick
				}
			}
			return e
		}
		cases := []struct {
			name string
			sel  selection
		}{
			{"all", selection{}},
			{"one tenant", selection{"tenant": nil}},
			{"tenant user endpoint", selection{"tenant": nil, "user": nil, "endpoint": nil}},
		}
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				e := values(c.sel)
				if c.name == "tenant user endpoint" {
					// The user's most used endpoint, so every panel has rows.
					sql := fmt.Sprintf(`SELECT endpoint FROM usage_events WHERE tenant_id = %s AND user_id = %s
						GROUP BY endpoint ORDER BY count() DESC, endpoint LIMIT 1`, quote(e.chosen["tenant"]), quote(e.chosen["user"]))
					n, first := run(t, db, sql)
					require.Equal(t, 1, n)
					e.chosen["endpoint"] = []string{first[0][0].(string)}
				}
				for _, p := range d.flat() {
					for _, tg := range p.Targets {
						sql, err := e.expand(tg.RawSQL)
						require.NoError(t, err, "panel %q", p.Title)
						n, first := run(t, db, sql)
						require.NotZero(t, n, "panel %q returned no rows:\n%s", p.Title, sql)
						if p.Title == "Totals" && c.name == "all" {
							// Tenants share user ids: every record is in the range,
							// and active users are (tenant, user) pairs.
							require.EqualValues(t, pairs, first[0][3], "active users")
						}
						t.Logf("%s: %d rows, first %v", p.Title, n, first[0])
					}
				}
			})
		}
	}
}

func TestExpander(t *testing.T) {
	e := &expander{from: time.Unix(100, 0), to: time.Unix(200, 0), interval: time.Minute,
		values: map[string][]string{"tenant": {"a", "b'c"}, "user": {"u"}},
		chosen: map[string][]string{"user": {"u"}}}
	got, err := e.expand(`SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND $__conditionalAll(tenant_id IN ($tenant), $tenant)
		AND $__conditionalAll(user_id IN (${user}), $user) AND f(g(1, 2), $__interval_s) < $__toTime AND tenant_id IN ($tenant)`)
	require.NoError(t, err)
	require.Equal(t, `SELECT toStartOfInterval(toDateTime(t), INTERVAL 60 second) AS time FROM x WHERE t >= toDateTime(100) AND t <= toDateTime(200) AND 1=1
		AND user_id IN ('u') AND f(g(1, 2), 60) < toDateTime(200) AND tenant_id IN ('a','b\'c')`, got)
	_, err = e.expand("SELECT $__timeFilter_ms(t)")
	require.Error(t, err)
	_, err = e.expand("SELECT $nope")
	require.Error(t, err)
}
