package manifests

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// deployDir is deploy/, the parent of this package's directory.
const deployDir = ".."

var repoRoot = filepath.Join(deployDir, "..")

// yamlFiles lists the .yaml and .yml files under deploy/<sub>.
func yamlFiles(t *testing.T, sub string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join(deployDir, sub), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, files, "no YAML files under deploy/%s", sub)
	sort.Strings(files)
	return files
}

// documents decodes every YAML document of a file (merge keys resolved).
func documents(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	require.NotEmpty(t, docs, "%s holds no document", path)
	return docs
}

func mapAt(v any, keys ...string) map[string]any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	m, _ := v.(map[string]any)
	return m
}

func strAt(v any, keys ...string) string {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	default:
		return fmt.Sprint(s)
	}
}

func listAt(v any, keys ...string) []any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	l, _ := v.([]any)
	return l
}

// words turns a command given as a list or a string into its words.
func words(v any) []string {
	switch c := v.(type) {
	case string:
		return strings.Fields(c)
	case []any:
		var out []string
		for _, w := range c {
			out = append(out, fmt.Sprint(w))
		}
		return out
	}
	return nil
}

// knownVariables reads the backticked names in the first column of the
// table under README.md's "## Configuration".
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	defer f.Close()
	name := regexp.MustCompile("^\\|\\s*`([A-Z][A-Z0-9_]*)`\\s*\\|")
	vars := map[string]bool{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Configuration"
			continue
		}
		if m := name.FindStringSubmatch(line); in && m != nil {
			vars[m[1]] = true
		}
	}
	require.NoError(t, sc.Err())
	require.Greater(t, len(vars), 20, "README.md's configuration table was not found")
	for _, v := range []string{"CLICKHOUSE_URL", "KAFKA_BROKERS", "REDIS_URL", "APIMETER_ADMIN_KEY", "CLICKHOUSE_CLUSTER"} {
		require.True(t, vars[v], "README.md's configuration table lacks %s", v)
	}
	return vars
}

func TestKnownVariablesParsed(t *testing.T) {
	vars := knownVariables(t)
	require.False(t, vars["GF_INSTALL_PLUGINS"])
	require.True(t, vars["ALERT_WEBHOOK_SECRET"])
}

// ---- Compose ----

type composeFile struct {
	path     string
	services map[string]map[string]any
}

func loadCompose(t *testing.T) []composeFile {
	t.Helper()
	var out []composeFile
	for _, path := range yamlFiles(t, "compose") {
		docs := documents(t, path)
		require.Len(t, docs, 1, "%s: one document", path)
		raw := mapAt(docs[0], "services")
		require.NotEmpty(t, raw, "%s has no services", path)
		cf := composeFile{path: path, services: map[string]map[string]any{}}
		for name, svc := range raw {
			m, ok := svc.(map[string]any)
			require.True(t, ok, "%s: service %s is not a mapping", path, name)
			cf.services[name] = m
		}
		out = append(out, cf)
	}
	return out
}

func dependsOn(svc map[string]any) []string {
	switch d := svc["depends_on"].(type) {
	case []any:
		return words(d)
	case map[string]any:
		var names []string
		for n := range d {
			names = append(names, n)
		}
		sort.Strings(names)
		return names
	}
	return nil
}

// isApimeter says whether a service runs the apimeter image.
func isApimeter(svc map[string]any) bool {
	return strings.Contains(strAt(svc, "build", "dockerfile"), "deploy/docker/Dockerfile") ||
		strings.HasPrefix(strAt(svc, "image"), "apimeter/")
}

func replicas(svc map[string]any) int {
	if r := strAt(svc, "deploy", "replicas"); r != "" {
		var n int
		_, err := fmt.Sscan(r, &n)
		if err == nil {
			return n
		}
	}
	return 1
}

// environment returns a service's variables from the mapping or list form.
func environment(svc map[string]any) map[string]string {
	env := map[string]string{}
	switch e := svc["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			if v == nil {
				env[k] = ""
			} else {
				env[k] = fmt.Sprint(v)
			}
		}
	case []any:
		for _, kv := range words(e) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	return env
}

func TestComposeServices(t *testing.T) {
	known := knownVariables(t)
	for _, cf := range loadCompose(t) {
		dir := filepath.Dir(cf.path)
		for name, svc := range cf.services {
			where := fmt.Sprintf("%s: service %s", cf.path, name)
			for _, dep := range dependsOn(svc) {
				require.Contains(t, cf.services, dep, "%s depends on an unknown service", where)
				require.NotEqual(t, name, dep, "%s depends on itself", where)
			}
			_, hasBuild := svc["build"]
			require.True(t, strAt(svc, "image") != "" || hasBuild, "%s has neither image nor build", where)
			if hasBuild {
				ctx := strAt(svc, "build")
				if m := mapAt(svc, "build"); m != nil {
					ctx = strAt(m, "context")
				}
				require.NotEmpty(t, ctx, "%s: build without a context", where)
				ctx = filepath.Join(dir, ctx)
				require.DirExists(t, ctx, where)
				dockerfile := strAt(svc, "build", "dockerfile")
				if dockerfile == "" {
					dockerfile = "Dockerfile"
				}
				require.FileExists(t, filepath.Join(ctx, dockerfile), "%s: build.dockerfile", where)
			}
			for _, v := range listAt(svc, "volumes") {
				var src string
				switch vol := v.(type) {
				case string:
					src, _, _ = strings.Cut(vol, ":")
				case map[string]any:
					if strAt(vol, "type") == "bind" {
						src = strAt(vol, "source")
					}
				}
				if strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") {
					_, err := os.Stat(filepath.Join(dir, src))
					require.NoError(t, err, "%s mounts %s, which is not in the repository", where, src)
				}
			}
			if isApimeter(svc) {
				env := environment(svc)
				require.NotEmpty(t, env, "%s: apimeter without an environment", where)
				for k := range env {
					require.True(t, known[k], "%s sets %s, which README.md's configuration table does not list", where, k)
				}
				c := words(svc["command"])
				require.NotEmpty(t, c, "%s: apimeter without a command", where)
				require.Contains(t, []string{"serve", "migrate"}, c[0], where)
			}
		}
	}
}

func TestComposeSingle(t *testing.T) {
	var cf composeFile
	for _, f := range loadCompose(t) {
		if filepath.Base(f.path) == "single.yaml" {
			cf = f
		}
	}
	require.NotEmpty(t, cf.services, "deploy/compose/single.yaml is missing")
	for _, name := range []string{"clickhouse", "kafka", "redis", "apimeter", "grafana"} {
		require.Contains(t, cf.services, name)
	}
	env := environment(cf.services["apimeter"])
	require.Equal(t, "clickhouse://clickhouse:9000/default", env["CLICKHOUSE_URL"])
	require.Equal(t, "kafka:9092", env["KAFKA_BROKERS"])
	require.Equal(t, "redis://redis:6379/0", env["REDIS_URL"])
	require.Contains(t, env["APIMETER_ADMIN_KEY"], "${APIMETER_ADMIN_KEY")
	require.Equal(t, "deploy/docker/Dockerfile", strAt(cf.services["apimeter"], "build", "dockerfile"))
	require.Equal(t, "grafana-clickhouse-datasource", environment(cf.services["grafana"])["GF_INSTALL_PLUGINS"])
	for _, name := range []string{"clickhouse", "kafka", "redis", "apimeter"} {
		require.NotNil(t, cf.services[name]["healthcheck"], "%s has no healthcheck", name)
	}
	for dep, cond := range mapAt(cf.services["apimeter"], "depends_on") {
		require.Equal(t, "service_healthy", strAt(cond, "condition"), "apimeter on %s", dep)
	}
}

func TestComposeCluster(t *testing.T) {
	var cf composeFile
	for _, f := range loadCompose(t) {
		if filepath.Base(f.path) == "cluster.yaml" {
			cf = f
		}
	}
	require.NotEmpty(t, cf.services, "deploy/compose/cluster.yaml is missing")
	dir := filepath.Dir(cf.path)

	clickhouse, kafka, keeper := 0, 0, 0
	roles := map[string]int{}
	var migrate string
	macros := map[string]bool{}
	for name, svc := range cf.services {
		image := strAt(svc, "image")
		switch {
		case strings.HasPrefix(image, "clickhouse/clickhouse-server"):
			clickhouse += replicas(svc)
			// Each node mounts the shared cluster file and its own macros.
			var mounts []string
			for _, v := range listAt(svc, "volumes") {
				if s, ok := v.(string); ok && strings.HasPrefix(s, "./clickhouse/") {
					mounts = append(mounts, s)
				}
			}
			joined := strings.Join(mounts, " ")
			require.Contains(t, joined, "./clickhouse/cluster.xml:", name)
			m := regexp.MustCompile(`\./clickhouse/(macros-[^:]+\.xml):`).FindStringSubmatch(joined)
			require.NotNil(t, m, "%s mounts no macros file", name)
			require.False(t, macros[m[1]], "%s shares %s with another node", name, m[1])
			macros[m[1]] = true
			require.Contains(t, readFile(t, filepath.Join(dir, "clickhouse", m[1])), "<replica>"+name+"</replica>", "%s: replica macro", name)
		case strings.HasPrefix(image, "clickhouse/clickhouse-keeper"):
			keeper += replicas(svc)
		case strings.HasPrefix(image, "apache/kafka"):
			kafka += replicas(svc)
		}
		if !isApimeter(svc) {
			continue
		}
		env := environment(svc)
		require.Equal(t, "apimeter", env["CLICKHOUSE_CLUSTER"], "%s: CLICKHOUSE_CLUSTER", name)
		require.Equal(t, "kafka-1:9092,kafka-2:9092,kafka-3:9092", env["KAFKA_BROKERS"], name)
		c := words(svc["command"])
		switch c[0] {
		case "migrate":
			require.Empty(t, migrate, "two migrate services")
			require.Equal(t, []string{"migrate", "--cluster", "apimeter"}, c)
			migrate = name
		case "serve":
			require.Contains(t, c, "--no-migrate", "%s: the serving roles leave migrations to the migrate service", name)
			i := indexOf(c, "--roles")
			require.GreaterOrEqual(t, i, 0, "%s: serve without --roles", name)
			require.Less(t, i+1, len(c), name)
			for _, r := range strings.Split(c[i+1], ",") {
				roles[r] += replicas(svc)
			}
		}
	}
	require.Equal(t, 4, clickhouse, "ClickHouse nodes (2 shards x 2 replicas)")
	require.Equal(t, 3, keeper, "ClickHouse Keeper nodes")
	require.Equal(t, 3, kafka, "Kafka brokers")
	require.Equal(t, map[string]int{"ingest": 2, "api": 2, "scheduler": 1}, roles)
	require.NotEmpty(t, migrate, "no service runs `migrate --cluster`")

	// Every serving role waits for the migration to succeed.
	for name, svc := range cf.services {
		if !isApimeter(svc) || name == migrate {
			continue
		}
		require.Equal(t, "service_completed_successfully", strAt(svc, "depends_on", migrate, "condition"), "%s on %s", name, migrate)
	}
	for dep := range mapAt(cf.services[migrate], "depends_on") {
		require.True(t, strings.HasPrefix(strAt(cf.services[dep], "image"), "clickhouse/"), "migrate waits only for ClickHouse, not %s", dep)
	}
}

// TestClickHouseConfig checks the cluster's XML: well-formed, the cluster
// `apimeter` with 2 shards of 2 replicas naming the compose services, the
// keeper ensemble, and one macros file per node.
func TestClickHouseConfig(t *testing.T) {
	dir := filepath.Join(deployDir, "compose", "clickhouse")
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		dec := xml.NewDecoder(strings.NewReader(readFile(t, f)))
		for {
			_, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
		}
	}

	var cfg struct {
		Shards []struct {
			Internal bool `xml:"internal_replication"`
			Replicas []struct {
				Host string `xml:"host"`
				Port int    `xml:"port"`
			} `xml:"replica"`
		} `xml:"remote_servers>apimeter>shard"`
		Keepers []struct {
			Host string `xml:"host"`
		} `xml:"zookeeper>node"`
	}
	require.NoError(t, xml.Unmarshal([]byte(readFile(t, filepath.Join(dir, "cluster.xml"))), &cfg))
	require.Len(t, cfg.Shards, 2)
	var compose composeFile
	for _, f := range loadCompose(t) {
		if filepath.Base(f.path) == "cluster.yaml" {
			compose = f
		}
	}
	for _, s := range cfg.Shards {
		require.True(t, s.Internal)
		require.Len(t, s.Replicas, 2)
		for _, r := range s.Replicas {
			require.Contains(t, compose.services, r.Host)
			require.Equal(t, 9000, r.Port)
		}
	}
	require.Len(t, cfg.Keepers, 3)
	for _, k := range cfg.Keepers {
		require.Contains(t, compose.services, k.Host)
	}

	seen := map[string]bool{}
	for s := 1; s <= 2; s++ {
		for r := 1; r <= 2; r++ {
			var m struct {
				Shard   string `xml:"macros>shard"`
				Replica string `xml:"macros>replica"`
			}
			require.NoError(t, xml.Unmarshal([]byte(readFile(t, filepath.Join(dir, fmt.Sprintf("macros-s%d-r%d.xml", s, r)))), &m))
			require.Equal(t, fmt.Sprintf("0%d", s), m.Shard)
			require.False(t, seen[m.Replica], "replica macro %s is not unique", m.Replica)
			seen[m.Replica] = true
		}
	}
}

// ---- Kubernetes ----

type object struct {
	file string
	doc  map[string]any
}

func (o object) kind() string { return strAt(o.doc, "kind") }
func (o object) name() string { return strAt(o.doc, "metadata", "name") }

func loadK8s(t *testing.T) []object {
	t.Helper()
	var objs []object
	for _, path := range yamlFiles(t, "k8s") {
		for _, doc := range documents(t, path) {
			objs = append(objs, object{file: path, doc: doc})
		}
	}
	return objs
}

// refs collects the names referenced from configMapRef, secretRef,
// configMapKeyRef, secretKeyRef and configMap/secret volumes anywhere in v.
func refs(v any, cm, secret map[string]bool) {
	switch n := v.(type) {
	case map[string]any:
		for k, child := range n {
			switch k {
			case "configMapRef", "configMapKeyRef", "configMap":
				if name := strAt(child, "name"); name != "" {
					cm[name] = true
				}
			case "secretRef", "secretKeyRef":
				if name := strAt(child, "name"); name != "" {
					secret[name] = true
				}
			case "secret":
				if name := strAt(child, "secretName"); name != "" {
					secret[name] = true
				}
			}
			refs(child, cm, secret)
		}
	case []any:
		for _, child := range n {
			refs(child, cm, secret)
		}
	}
}

func subset(sel, labels map[string]any) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

func containers(o object) []any {
	return listAt(mapAt(o.doc, "spec", "template", "spec"), "containers")
}

func TestKubernetes(t *testing.T) {
	known := knownVariables(t)
	objs := loadK8s(t)
	byKind := map[string][]object{}
	names := map[string]bool{}
	for _, o := range objs {
		require.NotEmpty(t, strAt(o.doc, "apiVersion"), "%s: a document without apiVersion", o.file)
		require.NotEmpty(t, o.kind(), "%s: a document without kind", o.file)
		require.NotEmpty(t, o.name(), "%s: a %s without metadata.name", o.file, o.kind())
		key := o.kind() + "/" + o.name()
		require.False(t, names[key], "%s: %s is defined twice", o.file, key)
		names[key] = true
		if o.kind() != "Namespace" {
			require.Equal(t, "apimeter", strAt(o.doc, "metadata", "namespace"), "%s: %s namespace", o.file, key)
		}
		byKind[o.kind()] = append(byKind[o.kind()], o)
	}
	for _, k := range []string{"Namespace", "ConfigMap", "Secret", "Job", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		require.NotEmpty(t, byKind[k], "no %s in deploy/k8s", k)
	}

	// References name objects defined here; the ConfigMap and Secret hold
	// only variables apimeter knows.
	cms, secrets := map[string]bool{}, map[string]bool{}
	for _, o := range byKind["ConfigMap"] {
		cms[o.name()] = true
		for k := range mapAt(o.doc, "data") {
			require.True(t, known[k], "ConfigMap %s sets %s, which README.md does not list", o.name(), k)
		}
	}
	for _, o := range byKind["Secret"] {
		secrets[o.name()] = true
		data := mapAt(o.doc, "stringData")
		require.NotEmpty(t, data, "Secret %s", o.name())
		for k, v := range data {
			require.True(t, known[k], "Secret %s sets %s, which README.md does not list", o.name(), k)
			require.Contains(t, fmt.Sprint(v), "REPLACE-ME", "Secret %s: %s must be a marked placeholder", o.name(), k)
		}
		require.Contains(t, data, "APIMETER_ADMIN_KEY")
		require.Contains(t, data, "ALERT_WEBHOOK_SECRET")
	}
	for _, o := range objs {
		cm, sec := map[string]bool{}, map[string]bool{}
		refs(o.doc, cm, sec)
		for n := range cm {
			require.True(t, cms[n], "%s: %s refers to ConfigMap %s, not defined in deploy/k8s", o.file, o.name(), n)
		}
		for n := range sec {
			require.True(t, secrets[n], "%s: %s refers to Secret %s, not defined in deploy/k8s", o.file, o.name(), n)
		}
	}

	// Deployments: one image, probes, resources, the roles and replicas.
	image := ""
	roles := map[string]int{}
	deployLabels := map[string]map[string]any{}
	for _, o := range append(append([]object{}, byKind["Deployment"]...), byKind["Job"]...) {
		cs := containers(o)
		require.NotEmpty(t, cs, "%s has no containers", o.name())
		for _, c := range cs {
			img := strAt(c, "image")
			if image == "" {
				image = img
			}
			require.Equal(t, image, img, "%s: every apimeter container runs the same image", o.name())
			require.NotEmpty(t, mapAt(c, "resources", "requests"), "%s: resources.requests", o.name())
			require.NotEmpty(t, mapAt(c, "resources", "limits"), "%s: resources.limits", o.name())
			for _, e := range listAt(c, "env") {
				require.True(t, known[strAt(e, "name")], "%s sets %s, which README.md does not list", o.name(), strAt(e, "name"))
			}
			args := words(mapAt(c)["args"])
			if o.kind() == "Job" {
				require.Equal(t, []string{"migrate", "--cluster", "apimeter"}, args, o.name())
				continue
			}
			require.Equal(t, "/readyz", strAt(c, "readinessProbe", "httpGet", "path"), "%s: readiness", o.name())
			require.Equal(t, "/healthz", strAt(c, "livenessProbe", "httpGet", "path"), "%s: liveness", o.name())
			require.Contains(t, args, "--no-migrate", o.name())
			i := indexOf(args, "--roles")
			require.True(t, i >= 0 && i+1 < len(args), "%s: serve without --roles", o.name())
			n := 1
			if r := strAt(o.doc, "spec", "replicas"); r != "" {
				_, err := fmt.Sscan(r, &n)
				require.NoError(t, err)
			}
			for _, r := range strings.Split(args[i+1], ",") {
				roles[r] += n
			}
		}
		labels := mapAt(o.doc, "spec", "template", "metadata", "labels")
		if o.kind() == "Deployment" {
			require.True(t, subset(mapAt(o.doc, "spec", "selector", "matchLabels"), labels), "%s: selector does not match its pod labels", o.name())
			deployLabels[o.name()] = labels
		}
	}
	require.Equal(t, map[string]int{"api": 2, "ingest": 2, "scheduler": 1}, roles)

	matchesDeployment := func(sel map[string]any) string {
		for name, labels := range deployLabels {
			if subset(sel, labels) {
				return name
			}
		}
		return ""
	}
	for _, o := range byKind["Service"] {
		require.NotEmpty(t, matchesDeployment(mapAt(o.doc, "spec", "selector")), "Service %s selects no Deployment's pods", o.name())
	}
	pdbs := map[string]bool{}
	for _, o := range byKind["PodDisruptionBudget"] {
		d := matchesDeployment(mapAt(o.doc, "spec", "selector", "matchLabels"))
		require.NotEmpty(t, d, "PodDisruptionBudget %s selects no Deployment's pods", o.name())
		pdbs[d] = true
	}
	require.True(t, pdbs["apimeter-api"], "no PodDisruptionBudget for the api")
	require.True(t, pdbs["apimeter-ingest"], "no PodDisruptionBudget for the ingesters")

	// The ingest autoscaler targets the ingest Deployment on the lag metric.
	lag := false
	for _, o := range byKind["HorizontalPodAutoscaler"] {
		target := strAt(o.doc, "spec", "scaleTargetRef", "name")
		require.Contains(t, deployLabels, target, "HPA %s scales an unknown Deployment", o.name())
		for _, m := range listAt(o.doc, "spec", "metrics") {
			for _, kind := range []string{"external", "pods"} {
				if strAt(m, kind, "metric", "name") == "apimeter_ingest_lag_records" && target == "apimeter-ingest" {
					lag = true
				}
			}
		}
	}
	require.True(t, lag, "no HPA on apimeter_ingest_lag_records for apimeter-ingest")
	require.Equal(t, "apimeter_ingest_lag_records", metricName(t), "the product's lag metric was renamed")
}

// metricName checks that the metric the HPA reads is the one the ingester
// exports.
func metricName(t *testing.T) string {
	t.Helper()
	if strings.Contains(readFile(t, filepath.Join(repoRoot, "ingest", "metrics.go")), `"apimeter_ingest_lag_records"`) {
		return "apimeter_ingest_lag_records"
	}
	return ""
}

// ---- Dockerfiles ----

func TestDockerfiles(t *testing.T) {
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`)
	for _, name := range []string{"Dockerfile", "Dockerfile.embedded"} {
		text := readFile(t, filepath.Join(deployDir, "docker", name))
		require.GreaterOrEqual(t, strings.Count(text, "\nFROM "), 2, "%s: multi-stage", name)
		require.Contains(t, text, "CGO_ENABLED=0", name)
		require.Contains(t, text, "./cmd/apimeter", name)
		require.Contains(t, text, `ENTRYPOINT ["apimeter"]`, name)
		require.Contains(t, text, `CMD ["serve"]`, name)
		require.Contains(t, text, "EXPOSE 8080", name)
		users := user.FindAllStringSubmatch(text, -1)
		require.NotEmpty(t, users, "%s: no USER", name)
		last := users[len(users)-1][1]
		u, _, _ := strings.Cut(last, ":")
		require.NotContains(t, []string{"root", "0"}, u, "%s runs as root", name)
		// Files the build copies from the repository exist.
		for _, m := range regexp.MustCompile(`(?m)^COPY\s+(?:--chmod=\S+\s+)?(\S+)\s`).FindAllStringSubmatch(text, -1) {
			if m[1] == "." || strings.HasPrefix(m[1], "--from=") {
				continue
			}
			require.FileExists(t, filepath.Join(repoRoot, m[1]), "%s copies %s", name, m[1])
		}
	}
	embedded := readFile(t, filepath.Join(deployDir, "docker", "Dockerfile.embedded"))
	require.Contains(t, embedded, "CHDB_LIB_PATH=", "the embedded image says where the library is")
	require.Contains(t, embedded, "deploy/chdb/install.sh")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// TestComposeGrafana checks the Grafana services against the provisioning
// they mount: every ${VAR} of the data source is set, and the dashboards are
// mounted where the dashboard provider reads them.
func TestComposeGrafana(t *testing.T) {
	prov := filepath.Join(deployDir, "grafana", "provisioning")
	sources, err := filepath.Glob(filepath.Join(prov, "datasources", "*.yaml"))
	require.NoError(t, err)
	providers, err := filepath.Glob(filepath.Join(prov, "dashboards", "*.yaml"))
	require.NoError(t, err)
	if len(sources) == 0 || len(providers) == 0 {
		t.Skip("deploy/grafana/provisioning holds no data source or dashboard provider yet")
	}
	ref := regexp.MustCompile(`\$\{([A-Z_][A-Z0-9_]*)\}`)
	vars := map[string]bool{}
	for _, f := range sources {
		for _, line := range strings.Split(readFile(t, f), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			for _, m := range ref.FindAllStringSubmatch(line, -1) {
				vars[m[1]] = true
			}
		}
	}
	var paths []string
	for _, f := range providers {
		for _, doc := range documents(t, f) {
			for _, p := range listAt(doc, "providers") {
				if s := strAt(p, "options", "path"); s != "" {
					paths = append(paths, s)
				}
			}
		}
	}
	require.NotEmpty(t, paths, "no dashboard provider path")

	grafanas := 0
	for _, cf := range loadCompose(t) {
		for name, svc := range cf.services {
			if !strings.HasPrefix(strAt(svc, "image"), "grafana/grafana") {
				continue
			}
			grafanas++
			env := environment(svc)
			require.Equal(t, "grafana-clickhouse-datasource", env["GF_INSTALL_PLUGINS"], "%s: %s", cf.path, name)
			for v := range vars {
				require.Contains(t, env, v, "%s: %s does not set %s, which the data source reads", cf.path, name, v)
			}
			mounts := map[string]string{}
			for _, v := range listAt(svc, "volumes") {
				if s, ok := v.(string); ok {
					parts := strings.Split(s, ":")
					if len(parts) >= 2 {
						mounts[parts[0]] = parts[1]
					}
				}
			}
			require.Equal(t, "/etc/grafana/provisioning", mounts["../grafana/provisioning"], "%s: %s", cf.path, name)
			for _, p := range paths {
				require.True(t, strings.HasPrefix(p, mounts["../grafana/dashboards"]), "%s: %s mounts the dashboards at %q, the provider reads %q", cf.path, name, mounts["../grafana/dashboards"], p)
			}
		}
	}
	require.Equal(t, 2, grafanas, "a Grafana in each compose file")
}
