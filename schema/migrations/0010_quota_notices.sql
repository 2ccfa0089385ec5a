-- Quota notices sent: one row per user, billing period and threshold
-- (80, 90, 95 and 100 percent). The limiter reads the highest level of a
-- period back after a restart so no notice goes out twice.
CREATE TABLE IF NOT EXISTS {{table "quota_notices"}} {{onCluster}}
(
    tenant_id    LowCardinality(String),
    user_id      String,
    period_start DateTime('UTC'),
    level        UInt8,
    sent_at      DateTime64(3, 'UTC')
)
ENGINE = {{replicated "quota_notices" "ReplacingMergeTree" "sent_at"}}
PARTITION BY toYYYYMM(period_start)
ORDER BY (tenant_id, user_id, period_start, level);
