package schema

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"github.com/apimeter/apimeter/store"
)

// Layout says how the DDL is rendered: for one server (and the embedded
// engine), or for a ClickHouse cluster.
//
// On a cluster every table is created ON CLUSTER as a Replicated* local
// table named <name>_local; sharded tables (raw records and their rollups)
// get a Distributed table under the plain name, sharded by tenant and user,
// so every query keeps using the plain names. Small shared tables
// (accounts, keys, incidents, the migration ledger) are replicated to every
// node in full. Materialized views read and write the local tables of their
// node.
type Layout struct {
	// Cluster is the cluster name from the servers' remote_servers
	// configuration; empty for a single server.
	Cluster string
	// DedupWindow is how many recent insert blocks a table remembers for
	// deduplication. Default: 10000.
	DedupWindow int
}

// Single is the layout for one server or the embedded engine.
var Single = Layout{}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the cluster name is a plain identifier.
func (l Layout) Validate() error {
	if l.Cluster != "" && !identRE.MatchString(l.Cluster) {
		return fmt.Errorf("cluster name %q: want letters, digits and underscores", l.Cluster)
	}
	return nil
}

func (l Layout) dedupWindow() int {
	if l.DedupWindow > 0 {
		return l.DedupWindow
	}
	return 10000
}

// Table is the name DDL creates for a table: the local table on a
// cluster. Queries use the plain name (the Distributed table there).
func (l Layout) Table(name string) string {
	if l.Cluster != "" {
		return name + "_local"
	}
	return name
}

// funcs are the template functions the .sql files use.
func (l Layout) funcs() template.FuncMap {
	cluster := l.Cluster != ""
	return template.FuncMap{
		"table": l.Table,
		"onCluster": func() string {
			if cluster {
				return "ON CLUSTER " + l.Cluster
			}
			return ""
		},
		// sharded is the engine of a table split across shards.
		"sharded": func(name, engine string, args ...string) string {
			return l.engine("{shard}", name, engine, args)
		},
		// replicated is the engine of a table every node holds in full.
		"replicated": func(name, engine string, args ...string) string {
			return l.engine("all", name, engine, args)
		},
		"dedupWindow": func() string {
			if cluster {
				return fmt.Sprintf("replicated_deduplication_window = %d", l.dedupWindow())
			}
			return fmt.Sprintf("non_replicated_deduplication_window = %d", l.dedupWindow())
		},
		// alterDistributed repeats, on a cluster, an ALTER of a local
		// table on the distributed table queries use.
		"alterDistributed": func(name, clauses string) string {
			if !cluster {
				return ""
			}
			return fmt.Sprintf("ALTER TABLE %s ON CLUSTER %s %s;", name, l.Cluster, clauses)
		},
		// distributed creates, on a cluster, the table queries use.
		"distributed": func(name, key string) string {
			if !cluster {
				return ""
			}
			return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s_local\nENGINE = Distributed(%s, currentDatabase(), %s_local, %s);",
				name, l.Cluster, name, l.Cluster, name, key)
		},
	}
}

func (l Layout) engine(shard, name, engine string, args []string) string {
	if l.Cluster == "" {
		if len(args) == 0 {
			return engine
		}
		return engine + "(" + strings.Join(args, ", ") + ")"
	}
	zk := fmt.Sprintf("'/clickhouse/tables/%s/{database}/%s_local', '{replica}'", shard, name)
	return "Replicated" + engine + "(" + strings.Join(append([]string{zk}, args...), ", ") + ")"
}

// render executes one template file for the layout.
func (l Layout) render(name, text string) (string, error) {
	t, err := template.New(name).Funcs(l.funcs()).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// splitStatements splits SQL text on semicolons outside quotes and
// comments, dropping empty statements and comment-only ones.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	hasCode := false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" && hasCode {
			out = append(out, s)
		}
		cur.Reset()
		hasCode = false
	}
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			end := strings.IndexByte(sql[i:], '\n')
			if end < 0 {
				end = len(sql) - i
			}
			cur.WriteString(sql[i : i+end])
			i += end - 1
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				end = len(sql) - i - 2
			}
			cur.WriteString(sql[i : i+2+end+2])
			i += 2 + end + 1
		case c == '\'' || c == '"' || c == '`':
			j := i + 1
			for j < len(sql) && sql[j] != c {
				if sql[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(sql) {
				j = len(sql) - 1
			}
			cur.WriteString(sql[i : j+1])
			hasCode = true
			i = j
		case c == ';':
			flush()
		default:
			cur.WriteByte(c)
			if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
				hasCode = true
			}
		}
	}
	flush()
	return out
}

// InsertSettings are the settings of every insert the ingester makes
// exactly once (records, feature uses, rejections, the ledger), besides
// its deduplication token. One server needs none: the insert returns
// once the part is in the table. On a cluster the plain names are
// Distributed tables, which by default return as soon as the rows sit in
// the receiving node's queue, before any shard holds them; so (DESIGN.md,
// "Exactly once, and why"):
//
//   - distributed_foreground_insert: the insert returns only after every
//     shard's replica took its rows; the query's settings, the token
//     included, travel with them, so each shard's local table (and the
//     views on it) deduplicates a replay by itself;
//   - insert_quorum 'auto': that replica returns only after a majority of
//     its shard's replicas hold the part, so losing one node loses no
//     acknowledged insert (with one replica per shard it is 1: no quorum,
//     as there is no second copy to wait for);
//   - insert_quorum_parallel: loads of several partitions run at once;
//     without it the second would be refused while the first waits;
//   - insert_quorum_timeout 60 s: a replica that stops answering mid-way
//     fails the insert within a minute, to be retried with backoff,
//     rather than after the default ten.
func (l Layout) InsertSettings() []store.Setting {
	if l.Cluster == "" {
		return nil
	}
	return []store.Setting{
		{Name: "distributed_foreground_insert", Value: "1"},
		{Name: "insert_quorum", Value: "auto"},
		{Name: "insert_quorum_parallel", Value: "1"},
		{Name: "insert_quorum_timeout", Value: "60000"},
	}
}
