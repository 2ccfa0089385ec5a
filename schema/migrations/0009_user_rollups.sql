-- Per-user rollups without endpoint, method or status: one row per user
-- and hour (or day). The usage_* rollups keep those dimensions and so hold
-- nearly a row per record when users call many endpoints; the questions
-- asked most — a user's series and totals, top users, quota use — need
-- none of them and read these instead (BENCHMARKS.md has the effect).
-- Exact sums, like usage_*. user_hourly is read a user at a time (a month
-- is 720 rows): granules of 1024 rows keep that read small.

CREATE TABLE IF NOT EXISTS {{table "user_hourly"}} {{onCluster}}
(
    tenant_id            LowCardinality(String),
    user_id              String,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{sharded "user_hourly" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket)
SETTINGS {{dedupWindow}}, index_granularity = 1024;

{{distributed "user_hourly" "cityHash64(tenant_id, user_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "user_hourly_mv"}} {{onCluster}}
TO {{table "user_hourly"}} AS
SELECT
    tenant_id,
    user_id,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM {{table "usage_events"}}
GROUP BY tenant_id, user_id, bucket;

CREATE TABLE IF NOT EXISTS {{table "user_daily"}} {{onCluster}}
(
    tenant_id            LowCardinality(String),
    user_id              String,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{sharded "user_daily" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket)
SETTINGS {{dedupWindow}};

{{distributed "user_daily" "cityHash64(tenant_id, user_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "user_daily_mv"}} {{onCluster}}
TO {{table "user_daily"}} AS
SELECT
    tenant_id,
    user_id,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM {{table "usage_events"}}
GROUP BY tenant_id, user_id, bucket;
