-- Raw metered feature uses (records with type "feature") and their daily
-- totals per user and feature.
CREATE TABLE IF NOT EXISTS {{table "feature_usage"}} {{onCluster}}
(
    id              String,
    event_time      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    stored_at       DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    tenant_id       LowCardinality(String),
    user_id         String,
    feature         LowCardinality(String),
    quantity        Float64,
    metadata        Map(LowCardinality(String), String),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = {{sharded "feature_usage" "MergeTree"}}
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (tenant_id, user_id, feature, event_time)
TTL toDateTime(event_time) + toIntervalDay(90)
SETTINGS {{dedupWindow}}, ttl_only_drop_parts = 1;

{{distributed "feature_usage" "cityHash64(tenant_id, user_id)"}}

CREATE TABLE IF NOT EXISTS {{table "feature_usage_daily"}} {{onCluster}}
(
    tenant_id LowCardinality(String),
    user_id   String,
    feature   LowCardinality(String),
    bucket    DateTime('UTC'),
    events    SimpleAggregateFunction(sum, UInt64),
    quantity  SimpleAggregateFunction(sum, Float64)
)
ENGINE = {{sharded "feature_usage_daily" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket, feature)
SETTINGS {{dedupWindow}};

{{distributed "feature_usage_daily" "cityHash64(tenant_id, user_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "feature_usage_daily_mv"}} {{onCluster}}
TO {{table "feature_usage_daily"}} AS
SELECT
    tenant_id,
    user_id,
    feature,
    toStartOfDay(event_time) AS bucket,
    count() AS events,
    sum(quantity) AS quantity
FROM {{table "feature_usage"}}
GROUP BY tenant_id, user_id, feature, bucket;
