// Package config reads apimeter's configuration from the environment: the
// variable names and defaults of the product contract, validated at start
// with every problem reported at once.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/apimeter/apimeter/dims"
	"github.com/apimeter/apimeter/plans"
	"github.com/apimeter/apimeter/store"
)

// Config is every setting apimeter reads. Each field names its variable
// and default.
type Config struct {
	// HTTPAddr is APIMETER_HTTP_ADDR, the API's listen address. Default ":8080".
	HTTPAddr string
	// MetricsAddr is APIMETER_METRICS_ADDR: serve /metrics on this address
	// only (a private one) instead of on HTTPAddr. Default "".
	MetricsAddr string
	// DataDir is APIMETER_DATA_DIR, the embedded engine's data. Default "./data".
	DataDir string
	// ClickHouseURL is CLICKHOUSE_URL; empty selects the embedded engine.
	ClickHouseURL string
	// ClickHouseCluster is CLICKHOUSE_CLUSTER: the cluster the DDL is
	// rendered for (ON CLUSTER, Replicated and Distributed tables). Empty
	// for one server.
	ClickHouseCluster string
	// KafkaBrokers is KAFKA_BROKERS, comma separated; empty starts the
	// embedded Kafka-protocol broker.
	KafkaBrokers []string
	// KafkaTopic is KAFKA_TOPIC; rejected records go to KafkaTopic + "-dlq".
	// Default "api-usage".
	KafkaTopic string
	// KafkaGroup is KAFKA_GROUP, the ingesters' consumer group. Default
	// "apimeter-ingest".
	KafkaGroup string
	// KafkaPartitions is KAFKA_PARTITIONS, used when apimeter creates the
	// topic. Default 4.
	KafkaPartitions int
	// EmbeddedKafkaAddr is APIMETER_EMBEDDED_KAFKA_ADDR. Default "127.0.0.1:9092".
	EmbeddedKafkaAddr string
	// RedisURL is REDIS_URL; empty keeps limits in memory.
	RedisURL string
	// AdminKey is APIMETER_ADMIN_KEY, a bootstrap admin API key (16+ characters).
	AdminKey string
	// Dimensions is APIMETER_DIMENSIONS: the custom dimensions producers
	// may send in metadata (package dims).
	Dimensions []dims.Spec
	// PlansFile is APIMETER_PLANS_FILE, plans and limits overriding the defaults.
	PlansFile string
	// Plans are the plans, parsed once from PlansFile here for every
	// command to use. Default plans.DefaultPlans().
	Plans *plans.Plans
	// TrustedProxies is APIMETER_TRUSTED_PROXIES, comma-separated CIDRs
	// whose X-Forwarded-For names the client. Default: none.
	TrustedProxies []*net.IPNet
	// LimitsFail is APIMETER_LIMITS_FAIL: what a limit decision does while
	// its store (Redis) fails: "open" lets requests through, "closed"
	// answers 503. Default "open".
	LimitsFail string
	// DecisionSecret is APIMETER_DECISION_SECRET (at least 16 bytes):
	// the key decision ids are signed with. Default: with REDIS_URL, a
	// random one kept in Redis for every replica; without, a random one
	// per process.
	DecisionSecret string
	// ExportMaxRows is APIMETER_EXPORT_MAX_ROWS: larger exports are
	// refused with a 400. Default 10000000.
	ExportMaxRows int
	// AlertWebhookURL is ALERT_WEBHOOK_URL.
	AlertWebhookURL string
	// AlertWebhookSecret is ALERT_WEBHOOK_SECRET: the key of the webhook's
	// HMAC-SHA256 signature header. Empty sends unsigned webhooks.
	AlertWebhookSecret string
	// SMTPURL is SMTP_URL (smtp:// or smtps://).
	SMTPURL string
	// SMTPFrom is APIMETER_SMTP_FROM, the sender of alert e-mails.
	// Default apimeter@<hostname>.
	SMTPFrom string
	// OpsAlertEmail is OPS_ALERT_EMAIL.
	OpsAlertEmail string

	// RateLimitWindow is API_RATE_LIMIT_WINDOW_MS. Default 60000 ms.
	RateLimitWindow time.Duration
	// RateLimitMaxRequests is API_RATE_LIMIT_MAX_REQUESTS, per client IP for
	// unauthenticated calls. Default 100.
	RateLimitMaxRequests int
	// RetentionDays is API_USAGE_RETENTION_DAYS, for raw records. Default 90.
	RetentionDays int
	// AggregationInterval is API_USAGE_AGGREGATION_INTERVAL. Default 3600 s.
	AggregationInterval time.Duration
	// ErrorRateThreshold is API_ERROR_RATE_THRESHOLD, percent. Default 10.
	ErrorRateThreshold float64
	// SlowResponseThreshold is API_SLOW_RESPONSE_THRESHOLD. Default 3000 ms.
	SlowResponseThreshold time.Duration
	// HealthCheckInterval is API_HEALTH_CHECK_INTERVAL. Default 300 s.
	HealthCheckInterval time.Duration
	// HealthDegradedThreshold is API_HEALTH_DEGRADED_THRESHOLD, error rate
	// percent. Default 10.
	HealthDegradedThreshold float64
	// HealthUnhealthyThreshold is API_HEALTH_UNHEALTHY_THRESHOLD, error rate
	// percent. Default 25.
	HealthUnhealthyThreshold float64
	// HealthIncludesSelf is APIMETER_HEALTH_INCLUDE_SELF: count apimeter's
	// own API (tenant "apimeter") in global health and alerts. Default false.
	HealthIncludesSelf bool

	// ExportsMax is APIMETER_EXPORTS_MAX, the exports running at once.
	// Default 32.
	ExportsMax int
	// ExportsPerCaller is APIMETER_EXPORTS_PER_CALLER, the exports one
	// tenant's user runs at once. Default 4.
	ExportsPerCaller int
	// ExportSpoolBytes is APIMETER_EXPORT_SPOOL_BYTES, the disk exports on
	// their way to clients may use under APIMETER_DATA_DIR. Default 4 GiB.
	ExportSpoolBytes int64
	// AuthFailuresMax is APIMETER_AUTH_FAILURES_MAX: invalid API keys one
	// address may send per AuthFailuresWindow before its requests with a
	// key are answered 429 without a lookup. Default 20.
	AuthFailuresMax int
	// AuthFailuresWindow is APIMETER_AUTH_FAILURES_WINDOW_MS. Default 60000 ms.
	AuthFailuresWindow time.Duration
	// EngineConns is APIMETER_ENGINE_CONNS, the connections to the store;
	// exports, jobs and the ingester each have a share of at most two, the
	// rest is kept for interactive reads. Default 8 (a server's own
	// max_open_conns URL parameter wins).
	EngineConns int

	// LogLevel is LOG_LEVEL: debug, info, warn or error. Default info.
	LogLevel slog.Level
	// LogFormat is LOG_FORMAT: text or json. Default text.
	LogFormat string
	// UsageDebug is API_USAGE_DEBUG: log every tracked record at debug level.
	UsageDebug bool

	// IngestBatchRecords is APIMETER_INGEST_BATCH_RECORDS, the most records
	// in one load. Default 100000.
	IngestBatchRecords int
	// IngestBatchBytes is APIMETER_INGEST_BATCH_BYTES, the most message
	// bytes in one load. Default 33554432 (32 MiB).
	IngestBatchBytes int
	// IngestBatchWait is APIMETER_INGEST_BATCH_WAIT_MS, how long a batch
	// waits for more records. Default 1000 ms.
	IngestBatchWait time.Duration
	// DedupWindow is APIMETER_DEDUP_WINDOW_SECONDS, how far apart in Kafka
	// time two records with the same id may be for the later one to be
	// dropped as a producer retry, on any of an ingester's partitions; 0
	// turns it off. Default 900 s.
	DedupWindow time.Duration
	// DedupMaxIDs is APIMETER_DEDUP_MAX_IDS, the most ids remembered for
	// each partition an ingester consumes (about 75 bytes each). Default
	// 1000000.
	DedupMaxIDs int
}

// Default is the configuration with nothing set.
func Default() Config {
	return Config{
		HTTPAddr:                 ":8080",
		DataDir:                  "./data",
		KafkaTopic:               "api-usage",
		KafkaGroup:               "apimeter-ingest",
		KafkaPartitions:          4,
		IngestBatchRecords:       100_000,
		IngestBatchBytes:         32 << 20,
		IngestBatchWait:          time.Second,
		DedupWindow:              15 * time.Minute,
		DedupMaxIDs:              1_000_000,
		ExportMaxRows:            10_000_000,
		EmbeddedKafkaAddr:        "127.0.0.1:9092",
		LimitsFail:               "open",
		RateLimitWindow:          60 * time.Second,
		RateLimitMaxRequests:     100,
		RetentionDays:            90,
		AggregationInterval:      time.Hour,
		ErrorRateThreshold:       10,
		SlowResponseThreshold:    3 * time.Second,
		HealthCheckInterval:      5 * time.Minute,
		HealthDegradedThreshold:  10,
		HealthUnhealthyThreshold: 25,
		ExportsMax:               32,
		ExportsPerCaller:         4,
		ExportSpoolBytes:         4 << 30,
		EngineConns:              store.DefaultConns,
		AuthFailuresMax:          20,
		AuthFailuresWindow:       time.Minute,
		LogLevel:                 slog.LevelInfo,
		LogFormat:                "text",
		Plans:                    plans.DefaultPlans(),
	}
}

// FromEnv reads the configuration from the process environment.
func FromEnv() (Config, error) { return Parse(os.Getenv) }

// Parse reads the configuration through getenv and validates it; the
// error lists every problem.
func Parse(getenv func(string) string) (Config, error) {
	c := Default()
	p := &parser{getenv: getenv}
	p.str("APIMETER_HTTP_ADDR", &c.HTTPAddr)
	p.str("APIMETER_METRICS_ADDR", &c.MetricsAddr)
	p.str("APIMETER_DATA_DIR", &c.DataDir)
	p.str("CLICKHOUSE_URL", &c.ClickHouseURL)
	p.str("CLICKHOUSE_CLUSTER", &c.ClickHouseCluster)
	if v := getenv("KAFKA_BROKERS"); v != "" {
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "" {
				c.KafkaBrokers = append(c.KafkaBrokers, b)
			}
		}
	}
	p.str("KAFKA_TOPIC", &c.KafkaTopic)
	p.str("KAFKA_GROUP", &c.KafkaGroup)
	p.integer("KAFKA_PARTITIONS", &c.KafkaPartitions)
	p.integer("APIMETER_INGEST_BATCH_RECORDS", &c.IngestBatchRecords)
	p.integer("APIMETER_INGEST_BATCH_BYTES", &c.IngestBatchBytes)
	p.millis("APIMETER_INGEST_BATCH_WAIT_MS", &c.IngestBatchWait)
	p.seconds("APIMETER_DEDUP_WINDOW_SECONDS", &c.DedupWindow)
	p.integer("APIMETER_DEDUP_MAX_IDS", &c.DedupMaxIDs)
	p.str("APIMETER_EMBEDDED_KAFKA_ADDR", &c.EmbeddedKafkaAddr)
	p.str("REDIS_URL", &c.RedisURL)
	p.str("APIMETER_ADMIN_KEY", &c.AdminKey)
	p.str("APIMETER_PLANS_FILE", &c.PlansFile)
	if c.PlansFile != "" {
		ps, err := plans.LoadPlans(c.PlansFile)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("APIMETER_PLANS_FILE: %v", err))
		} else {
			c.Plans = ps
		}
	}
	if v := getenv("APIMETER_DIMENSIONS"); v != "" {
		specs, err := dims.Parse(v)
		if err != nil {
			p.fail("APIMETER_DIMENSIONS", v, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		c.Dimensions = specs
	}
	p.str("APIMETER_LIMITS_FAIL", &c.LimitsFail)
	p.str("APIMETER_DECISION_SECRET", &c.DecisionSecret)
	if v := getenv("APIMETER_TRUSTED_PROXIES"); v != "" {
		for _, part := range strings.Split(v, ",") {
			_, n, err := net.ParseCIDR(strings.TrimSpace(part))
			if err != nil {
				p.fail("APIMETER_TRUSTED_PROXIES", strings.TrimSpace(part), "want CIDRs such as 10.0.0.0/8, comma separated")
				continue
			}
			c.TrustedProxies = append(c.TrustedProxies, n)
		}
	}
	p.integer("APIMETER_EXPORT_MAX_ROWS", &c.ExportMaxRows)
	p.str("ALERT_WEBHOOK_URL", &c.AlertWebhookURL)
	p.str("ALERT_WEBHOOK_SECRET", &c.AlertWebhookSecret)
	p.str("SMTP_URL", &c.SMTPURL)
	p.str("APIMETER_SMTP_FROM", &c.SMTPFrom)
	p.str("OPS_ALERT_EMAIL", &c.OpsAlertEmail)
	p.millis("API_RATE_LIMIT_WINDOW_MS", &c.RateLimitWindow)
	p.integer("API_RATE_LIMIT_MAX_REQUESTS", &c.RateLimitMaxRequests)
	p.integer("API_USAGE_RETENTION_DAYS", &c.RetentionDays)
	p.seconds("API_USAGE_AGGREGATION_INTERVAL", &c.AggregationInterval)
	p.float("API_ERROR_RATE_THRESHOLD", &c.ErrorRateThreshold)
	p.millis("API_SLOW_RESPONSE_THRESHOLD", &c.SlowResponseThreshold)
	p.seconds("API_HEALTH_CHECK_INTERVAL", &c.HealthCheckInterval)
	p.float("API_HEALTH_DEGRADED_THRESHOLD", &c.HealthDegradedThreshold)
	p.float("API_HEALTH_UNHEALTHY_THRESHOLD", &c.HealthUnhealthyThreshold)
	p.boolean("APIMETER_HEALTH_INCLUDE_SELF", &c.HealthIncludesSelf)
	p.integer("APIMETER_EXPORTS_MAX", &c.ExportsMax)
	p.integer("APIMETER_EXPORTS_PER_CALLER", &c.ExportsPerCaller)
	p.int64("APIMETER_EXPORT_SPOOL_BYTES", &c.ExportSpoolBytes)
	p.integer("APIMETER_ENGINE_CONNS", &c.EngineConns)
	p.integer("APIMETER_AUTH_FAILURES_MAX", &c.AuthFailuresMax)
	p.millis("APIMETER_AUTH_FAILURES_WINDOW_MS", &c.AuthFailuresWindow)
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			p.fail("LOG_LEVEL", v, "want debug, info, warn or error")
		}
	}
	p.str("LOG_FORMAT", &c.LogFormat)
	p.boolean("API_USAGE_DEBUG", &c.UsageDebug)
	return c, errors.Join(append(p.errs, c.Validate())...)
}

// Validate checks values that parsed but make no sense together or alone.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("APIMETER_HTTP_ADDR", "%q is not host:port", c.HTTPAddr)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("APIMETER_METRICS_ADDR", "%q is not host:port", c.MetricsAddr)
		} else if c.MetricsAddr == c.HTTPAddr {
			bad("APIMETER_METRICS_ADDR", "is APIMETER_HTTP_ADDR: give metrics an address of their own")
		}
	}
	if c.ClickHouseURL == "" && c.DataDir == "" {
		bad("APIMETER_DATA_DIR", "must not be empty when CLICKHOUSE_URL is unset")
	}
	if _, err := store.ParseURL(c.ClickHouseURL, c.DataDir); err != nil {
		errs = append(errs, err)
	}
	if c.ClickHouseCluster != "" && c.ClickHouseURL == "" {
		bad("CLICKHOUSE_CLUSTER", "needs CLICKHOUSE_URL: the embedded engine is a single node")
	}
	for _, b := range c.KafkaBrokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("KAFKA_BROKERS", "%q is not host:port", b)
		}
	}
	if !topicRE.MatchString(c.KafkaTopic) {
		bad("KAFKA_TOPIC", "%q: want 1 to 200 letters, digits, '.', '_' or '-'", c.KafkaTopic)
	}
	if !topicRE.MatchString(c.KafkaGroup) {
		bad("KAFKA_GROUP", "%q: want 1 to 200 letters, digits, '.', '_' or '-'", c.KafkaGroup)
	}
	if c.KafkaPartitions < 1 || c.KafkaPartitions > 10000 {
		bad("KAFKA_PARTITIONS", "%d: want 1 to 10000", c.KafkaPartitions)
	}
	if c.IngestBatchRecords < 1 {
		bad("APIMETER_INGEST_BATCH_RECORDS", "must be positive")
	}
	if c.IngestBatchBytes < 1<<20 {
		bad("APIMETER_INGEST_BATCH_BYTES", "%d: want at least 1048576", c.IngestBatchBytes)
	}
	if c.IngestBatchWait < 10*time.Millisecond {
		bad("APIMETER_INGEST_BATCH_WAIT_MS", "want at least 10")
	}
	if c.DedupWindow < 0 {
		bad("APIMETER_DEDUP_WINDOW_SECONDS", "must not be negative")
	}
	if c.DedupMaxIDs < 1 {
		bad("APIMETER_DEDUP_MAX_IDS", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.EmbeddedKafkaAddr); err != nil {
		bad("APIMETER_EMBEDDED_KAFKA_ADDR", "%q is not host:port", c.EmbeddedKafkaAddr)
	}
	checkURL := func(name, raw string, schemes ...string) {
		if raw == "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			bad(name, "%q is not a URL with a host", store.RedactURL(raw))
			return
		}
		for _, s := range schemes {
			if u.Scheme == s {
				return
			}
		}
		bad(name, "scheme %q: want %s", u.Scheme, strings.Join(schemes, " or "))
	}
	checkURL("REDIS_URL", c.RedisURL, "redis", "rediss")
	checkURL("ALERT_WEBHOOK_URL", c.AlertWebhookURL, "http", "https")
	checkURL("SMTP_URL", c.SMTPURL, "smtp", "smtps")
	if c.ExportMaxRows < 1 {
		bad("APIMETER_EXPORT_MAX_ROWS", "must be positive")
	}
	if c.ExportsMax < 1 {
		bad("APIMETER_EXPORTS_MAX", "must be positive")
	}
	if c.ExportsPerCaller < 1 {
		bad("APIMETER_EXPORTS_PER_CALLER", "must be positive")
	}
	if c.ExportSpoolBytes < 64<<20 {
		bad("APIMETER_EXPORT_SPOOL_BYTES", "%d: want at least 67108864 (64 MiB)", c.ExportSpoolBytes)
	}
	if c.AuthFailuresMax < 1 {
		bad("APIMETER_AUTH_FAILURES_MAX", "must be positive")
	}
	if c.AuthFailuresWindow < time.Second {
		bad("APIMETER_AUTH_FAILURES_WINDOW_MS", "want at least 1000")
	}
	if c.EngineConns < 4 || c.EngineConns > 256 {
		bad("APIMETER_ENGINE_CONNS", "%d: want 4 to 256", c.EngineConns)
	}
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		bad("APIMETER_ADMIN_KEY", "too short: use at least 16 random characters")
	}
	if c.DecisionSecret != "" && len(c.DecisionSecret) < 16 {
		bad("APIMETER_DECISION_SECRET", "%d bytes: want at least 16", len(c.DecisionSecret))
	}
	if c.LimitsFail != "open" && c.LimitsFail != "closed" {
		bad("APIMETER_LIMITS_FAIL", "%q: want open or closed", c.LimitsFail)
	}
	if c.SMTPURL != "" && c.OpsAlertEmail == "" {
		bad("OPS_ALERT_EMAIL", "set it to receive alert e-mails through SMTP_URL")
	}
	if c.SMTPFrom != "" {
		if _, err := mail.ParseAddress(c.SMTPFrom); err != nil {
			bad("APIMETER_SMTP_FROM", "%q is not an e-mail address", c.SMTPFrom)
		}
	}
	if c.OpsAlertEmail != "" {
		if _, err := mail.ParseAddress(c.OpsAlertEmail); err != nil {
			bad("OPS_ALERT_EMAIL", "%q is not an e-mail address", c.OpsAlertEmail)
		}
	}
	if c.RateLimitWindow <= 0 {
		bad("API_RATE_LIMIT_WINDOW_MS", "must be positive")
	}
	if c.RateLimitMaxRequests <= 0 {
		bad("API_RATE_LIMIT_MAX_REQUESTS", "must be positive")
	}
	if c.RetentionDays < 1 || c.RetentionDays > 36500 {
		bad("API_USAGE_RETENTION_DAYS", "%d: want 1 to 36500", c.RetentionDays)
	}
	if c.AggregationInterval < time.Minute {
		bad("API_USAGE_AGGREGATION_INTERVAL", "%s: want at least 60 seconds", c.AggregationInterval)
	}
	if c.HealthCheckInterval < 10*time.Second {
		bad("API_HEALTH_CHECK_INTERVAL", "%s: want at least 10 seconds", c.HealthCheckInterval)
	}
	if c.SlowResponseThreshold <= 0 {
		bad("API_SLOW_RESPONSE_THRESHOLD", "must be positive")
	}
	percent := func(name string, v float64) {
		if v <= 0 || v > 100 {
			bad(name, "%v: want a percentage above 0 and at most 100", v)
		}
	}
	percent("API_ERROR_RATE_THRESHOLD", c.ErrorRateThreshold)
	percent("API_HEALTH_DEGRADED_THRESHOLD", c.HealthDegradedThreshold)
	percent("API_HEALTH_UNHEALTHY_THRESHOLD", c.HealthUnhealthyThreshold)
	if c.HealthUnhealthyThreshold < c.HealthDegradedThreshold {
		bad("API_HEALTH_UNHEALTHY_THRESHOLD", "%v is below API_HEALTH_DEGRADED_THRESHOLD (%v)", c.HealthUnhealthyThreshold, c.HealthDegradedThreshold)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("LOG_FORMAT", "%q: want text or json", c.LogFormat)
	}
	return errors.Join(errs...)
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// Store is the store configuration.
func (c Config) Store() store.Config {
	return store.Config{URL: c.ClickHouseURL, DataDir: c.DataDir, Conns: c.EngineConns}
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, value, why string) {
	p.errs = append(p.errs, fmt.Errorf("%s=%q: %s", name, value, why))
}

func (p *parser) str(name string, dst *string) {
	if v := p.getenv(name); v != "" {
		*dst = v
	}
}

// integer parses a whole number into dst; it reports whether one was set.
func (p *parser) integer(name string, dst *int) bool {
	v := p.getenv(name)
	if v == "" {
		return false
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		p.fail(name, v, "want a whole number")
		return false
	}
	*dst = n
	return true
}

func (p *parser) int64(name string, dst *int64) {
	v := p.getenv(name)
	if v == "" {
		return
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		p.fail(name, v, "want a whole number")
		return
	}
	*dst = n
}

func (p *parser) float(name string, dst *float64) {
	v := p.getenv(name)
	if v == "" {
		return
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		p.fail(name, v, "want a number")
		return
	}
	*dst = f
}

func (p *parser) duration(name string, unit time.Duration, dst *time.Duration) {
	var n int
	if p.integer(name, &n) {
		*dst = time.Duration(n) * unit
	}
}

func (p *parser) millis(name string, dst *time.Duration)  { p.duration(name, time.Millisecond, dst) }
func (p *parser) seconds(name string, dst *time.Duration) { p.duration(name, time.Second, dst) }

func (p *parser) boolean(name string, dst *bool) {
	v := p.getenv(name)
	if v == "" {
		return
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		p.fail(name, v, "want true or false")
		return
	}
	*dst = b
}
