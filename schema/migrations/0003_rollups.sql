-- Rollups of usage_events, fed by materialized views on every insert.
--
-- Two families, split by question because the number of groups a block
-- builds sets the ingest rate (BENCHMARKS.md):
--   usage_{hourly,daily}     per tenant, user, endpoint, method, status code:
--                            counts and sums only, exact.
--   endpoint_{hourly,daily}  per tenant, endpoint, method, status class:
--                            the same sums plus a latency sketch
--                            (DDSketch, 1% relative error, deterministic and
--                            mergeable, so a rebuild gives the same numbers).
-- Buckets are UTC hours and days; a view only sees new inserts, so
-- backfills and changes use `apimeter rollups rebuild`.

CREATE TABLE IF NOT EXISTS {{table "usage_hourly"}} {{onCluster}}
(
    tenant_id            LowCardinality(String),
    user_id              String,
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_code          UInt16,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{sharded "usage_hourly" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket, endpoint, method, status_code)
SETTINGS {{dedupWindow}};

{{distributed "usage_hourly" "cityHash64(tenant_id, user_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "usage_hourly_mv"}} {{onCluster}}
TO {{table "usage_hourly"}} AS
SELECT
    tenant_id,
    user_id,
    endpoint,
    method,
    status_code,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM {{table "usage_events"}}
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

CREATE TABLE IF NOT EXISTS {{table "usage_daily"}} {{onCluster}}
(
    tenant_id            LowCardinality(String),
    user_id              String,
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_code          UInt16,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{sharded "usage_daily" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, user_id, bucket, endpoint, method, status_code)
SETTINGS {{dedupWindow}};

{{distributed "usage_daily" "cityHash64(tenant_id, user_id)"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "usage_daily_mv"}} {{onCluster}}
TO {{table "usage_daily"}} AS
SELECT
    tenant_id,
    user_id,
    endpoint,
    method,
    status_code,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes
FROM {{table "usage_events"}}
GROUP BY tenant_id, user_id, endpoint, method, status_code, bucket;

CREATE TABLE IF NOT EXISTS {{table "endpoint_hourly"}} {{onCluster}}
(
    tenant_id            LowCardinality(String),
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_class         UInt8,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    latency_us           AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), UInt64)
)
ENGINE = {{sharded "endpoint_hourly" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, endpoint, method, status_class)
SETTINGS {{dedupWindow}};

{{distributed "endpoint_hourly" "rand()"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "endpoint_hourly_mv"}} {{onCluster}}
TO {{table "endpoint_hourly"}} AS
SELECT
    tenant_id,
    endpoint,
    method,
    intDiv(status_code, 100) AS status_class,
    toStartOfHour(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS latency_us
FROM {{table "usage_events"}}
GROUP BY tenant_id, endpoint, method, status_class, bucket;

CREATE TABLE IF NOT EXISTS {{table "endpoint_daily"}} {{onCluster}}
(
    tenant_id            LowCardinality(String),
    endpoint             LowCardinality(String),
    method               LowCardinality(String),
    status_class         UInt8,
    bucket               DateTime('UTC'),
    requests             SimpleAggregateFunction(sum, UInt64),
    errors_4xx           SimpleAggregateFunction(sum, UInt64),
    errors_5xx           SimpleAggregateFunction(sum, UInt64),
    response_time_sum_us SimpleAggregateFunction(sum, UInt64),
    response_time_max_us SimpleAggregateFunction(max, UInt64),
    request_bytes        SimpleAggregateFunction(sum, UInt64),
    response_bytes       SimpleAggregateFunction(sum, UInt64),
    latency_us           AggregateFunction(quantilesDD(0.01, 0.5, 0.9, 0.95, 0.99), UInt64)
)
ENGINE = {{sharded "endpoint_daily" "AggregatingMergeTree"}}
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, bucket, endpoint, method, status_class)
SETTINGS {{dedupWindow}};

{{distributed "endpoint_daily" "rand()"}}

CREATE MATERIALIZED VIEW IF NOT EXISTS {{table "endpoint_daily_mv"}} {{onCluster}}
TO {{table "endpoint_daily"}} AS
SELECT
    tenant_id,
    endpoint,
    method,
    intDiv(status_code, 100) AS status_class,
    toStartOfDay(event_time) AS bucket,
    count() AS requests,
    countIf(status_code >= 400 AND status_code < 500) AS errors_4xx,
    countIf(status_code >= 500) AS errors_5xx,
    sum(response_time_us) AS response_time_sum_us,
    max(response_time_us) AS response_time_max_us,
    sum(request_bytes) AS request_bytes,
    sum(response_bytes) AS response_bytes,
    quantilesDDState(0.01, 0.5, 0.9, 0.95, 0.99)(response_time_us) AS latency_us
FROM {{table "usage_events"}}
GROUP BY tenant_id, endpoint, method, status_class, bucket;
