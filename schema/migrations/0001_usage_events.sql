-- Raw usage records, one row per metered API call.
--
-- Sorted for the question asked most: one tenant's (or one user's) calls
-- over a time range. Daily partitions let retention drop whole days
-- (ttl_only_drop_parts) instead of rewriting parts. The deduplication
-- window makes a replayed insert with the same token a no-op here and, with
-- deduplicate_blocks_in_dependent_materialized_views, in every rollup.
CREATE TABLE IF NOT EXISTS {{table "usage_events"}} {{onCluster}}
(
    id               String,
    event_time       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    ingested_at      DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    stored_at        DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    tenant_id        LowCardinality(String),
    user_id          String,
    api_key_id       String,
    endpoint         LowCardinality(String),
    method           LowCardinality(String),
    status_code      UInt16,
    response_time_us UInt64 CODEC(T64, ZSTD(1)),
    request_bytes    UInt64 CODEC(T64, ZSTD(1)),
    response_bytes   UInt64 CODEC(T64, ZSTD(1)),
    metadata         Map(LowCardinality(String), String),
    kafka_topic      LowCardinality(String),
    kafka_partition  Int32,
    kafka_offset     Int64
)
ENGINE = {{sharded "usage_events" "MergeTree"}}
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (tenant_id, user_id, event_time)
TTL toDateTime(event_time) + toIntervalDay(90)
SETTINGS {{dedupWindow}}, ttl_only_drop_parts = 1;

{{distributed "usage_events" "cityHash64(tenant_id, user_id)"}}
