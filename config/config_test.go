package config

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsFollowTheContract(t *testing.T) {
	c, err := Parse(env(nil))
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, "./data", c.DataDir)
	require.Equal(t, "api-usage", c.KafkaTopic)
	require.Equal(t, "127.0.0.1:9092", c.EmbeddedKafkaAddr)
	require.Equal(t, 60*time.Second, c.RateLimitWindow)
	require.Equal(t, 100, c.RateLimitMaxRequests)
	require.Equal(t, 90, c.RetentionDays)
	require.Equal(t, time.Hour, c.AggregationInterval)
	require.Equal(t, 10.0, c.ErrorRateThreshold)
	require.Equal(t, 3*time.Second, c.SlowResponseThreshold)
	require.Equal(t, 5*time.Minute, c.HealthCheckInterval)
	require.Equal(t, 10.0, c.HealthDegradedThreshold)
	require.Equal(t, 25.0, c.HealthUnhealthyThreshold)
	require.Equal(t, slog.LevelInfo, c.LogLevel)
}

func TestParsesEveryVariable(t *testing.T) {
	c, err := Parse(env(map[string]string{
		"APIMETER_HTTP_ADDR":             "127.0.0.1:9000",
		"APIMETER_DATA_DIR":              "/var/lib/apimeter",
		"CLICKHOUSE_URL":                 "clickhouse://u:p@ch:9000/db",
		"CLICKHOUSE_CLUSTER":             "main",
		"KAFKA_BROKERS":                  "k1:9092, k2:9092",
		"KAFKA_TOPIC":                    "usage",
		"REDIS_URL":                      "redis://r:6379/0",
		"APIMETER_ADMIN_KEY":             "0123456789abcdef0123",
		"ALERT_WEBHOOK_URL":              "https://hooks.example.com/x",
		"SMTP_URL":                       "smtp://mail:25",
		"OPS_ALERT_EMAIL":                "ops@example.com",
		"API_RATE_LIMIT_WINDOW_MS":       "1000",
		"API_RATE_LIMIT_MAX_REQUESTS":    "7",
		"API_USAGE_RETENTION_DAYS":       "30",
		"API_USAGE_AGGREGATION_INTERVAL": "600",
		"API_ERROR_RATE_THRESHOLD":       "2.5",
		"API_SLOW_RESPONSE_THRESHOLD":    "1500",
		"API_HEALTH_CHECK_INTERVAL":      "60",
		"API_HEALTH_DEGRADED_THRESHOLD":  "5",
		"API_HEALTH_UNHEALTHY_THRESHOLD": "50",
		"LOG_LEVEL":                      "debug",
		"LOG_FORMAT":                     "json",
		"API_USAGE_DEBUG":                "true",
	}))
	require.NoError(t, err)
	require.Equal(t, []string{"k1:9092", "k2:9092"}, c.KafkaBrokers)
	require.Equal(t, time.Second, c.RateLimitWindow)
	require.Equal(t, 7, c.RateLimitMaxRequests)
	require.Equal(t, 30, c.RetentionDays)
	require.Equal(t, 10*time.Minute, c.AggregationInterval)
	require.Equal(t, 2.5, c.ErrorRateThreshold)
	require.Equal(t, 1500*time.Millisecond, c.SlowResponseThreshold)
	require.Equal(t, time.Minute, c.HealthCheckInterval)
	require.Equal(t, 50.0, c.HealthUnhealthyThreshold)
	require.Equal(t, slog.LevelDebug, c.LogLevel)
	require.True(t, c.UsageDebug)
	require.Equal(t, "main", c.ClickHouseCluster)
}

func TestReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse(env(map[string]string{
		"APIMETER_HTTP_ADDR":             "nope",
		"API_USAGE_RETENTION_DAYS":       "ninety",
		"API_RATE_LIMIT_WINDOW_MS":       "-5",
		"API_HEALTH_DEGRADED_THRESHOLD":  "30",
		"API_HEALTH_UNHEALTHY_THRESHOLD": "20",
		"LOG_LEVEL":                      "loud",
		"REDIS_URL":                      "http://r:1",
		"CLICKHOUSE_URL":                 "mysql://x",
		"APIMETER_ADMIN_KEY":             "short",
		"OPS_ALERT_EMAIL":                "not-an-address",
		"API_USAGE_DEBUG":                "maybe",
		"APIMETER_LIMITS_FAIL":           "sometimes",
		"APIMETER_TRUSTED_PROXIES":       "10.0.0.0/8, proxy",
	}))
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"APIMETER_HTTP_ADDR", "API_USAGE_RETENTION_DAYS=\"ninety\"", "API_RATE_LIMIT_WINDOW_MS",
		"API_HEALTH_UNHEALTHY_THRESHOLD", "LOG_LEVEL", "REDIS_URL", "CLICKHOUSE_URL", "APIMETER_ADMIN_KEY",
		"OPS_ALERT_EMAIL", "API_USAGE_DEBUG", "APIMETER_LIMITS_FAIL", "APIMETER_TRUSTED_PROXIES=\"proxy\"",
	} {
		require.Contains(t, msg, want)
	}
	require.Equal(t, 12, strings.Count(msg, "\n")+1, msg)
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	_, err := Parse(env(map[string]string{"REDIS_URL": "ftp://u:hunter2@r:1"}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestClickHousePasswordStaysOutOfErrors(t *testing.T) {
	_, err := Parse(env(map[string]string{"CLICKHOUSE_URL": "clickhouse://u:hunter2@h:9000/%zz"}))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
}

func TestPlansFileIsCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/plans.yaml"
	require.NoError(t, os.WriteFile(bad, []byte("plans:\n  - name: a\n    hourlyRequests: -3\n"), 0o644))
	_, err := Parse(env(map[string]string{"APIMETER_PLANS_FILE": bad}))
	require.ErrorContains(t, err, "APIMETER_PLANS_FILE")
	require.ErrorContains(t, err, "line 3")
	good := dir + "/ok.json"
	require.NoError(t, os.WriteFile(good, []byte(`{"plans":[{"name":"free","hourlyRequests":5}]}`), 0o644))
	c, err := Parse(env(map[string]string{"APIMETER_PLANS_FILE": good, "APIMETER_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.0/24"}))
	require.NoError(t, err)
	require.Len(t, c.TrustedProxies, 2)
	require.Equal(t, "open", c.LimitsFail)
	// The file parsed at start is the one every command uses.
	require.Equal(t, []string{"free"}, c.Plans.Names())
	free, _ := c.Plans.Get("free")
	require.EqualValues(t, 5, free.HourlyRequests)
	require.EqualValues(t, 0, free.MonthlyRequests)
}

func TestNoPlansFileIsTheDefaultPlans(t *testing.T) {
	c, err := Parse(env(nil))
	require.NoError(t, err)
	require.Equal(t, []string{"free", "starter", "pro", "enterprise"}, c.Plans.Names())
	pro, _ := c.Plans.Get("pro")
	require.Equal(t, [2]uint64{100_000, 2_000}, [2]uint64{pro.MonthlyRequests, pro.HourlyRequests})
}
